package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/gracefulgo/walkthrough/internal/noretry"
	"github.com/gracefulgo/walkthrough/internal/proc"
)

// The streams scenario: one Server-Sent Events client on /events and one
// WebSocket client on /ws, both open at SIGTERM, on every step, whether it
// serves those routes (step 11) or answers 404 (the others, which then
// show their plain drain). Step 05 runs it a second time with a long /slow
// open too, standing in for a stream that its Shutdown would wait for.

// streamsAbout describes the scenario, for the doc and the terminal.
var streamsAbout = fmt.Sprintf("`-shutdown-timeout=%s`; one client reads `/events` and one opens a WebSocket on `/ws` and has `hello` echoed; SIGTERM once both are open (or have their answer, a 404 where the step has no such route). Step 05 runs it again with a request to `/slow?d=%s` in flight too, the way its `Shutdown` would treat a stream.", drainTimeout, streamsSlow)

// streamsSlow is the long request of step 05's second row.
const streamsSlow = "1m"

// streamsRun is what one run of the scenario saw.
type streamsRun struct {
	Label            string // the step, and what was added, for the table
	Added            string // what was added, for the terminal
	Events, Socket   string // what each client saw
	Slow             string // what the long /slow saw, or ""
	SignalToExit     time.Duration
	ExitStatus, Note string
}

// runStreams runs the scenario on the step: once, and on step 05 once more
// with the long /slow.
func runStreams(s *step) []streamsRun {
	runs := []streamsRun{streamsOnce(s, false)}
	if strings.HasPrefix(s.Name, "05-") {
		runs = append(runs, streamsOnce(s, true))
	}
	return runs
}

func streamsOnce(s *step, withSlow bool) streamsRun {
	run := streamsRun{Label: fmt.Sprintf("[%s](../%s/)", s.Name, s.Name)}
	if withSlow {
		run.Added = " + /slow?d=" + streamsSlow
		run.Label += " + `/slow?d=" + streamsSlow + "`"
	}
	dir, err := os.MkdirTemp("", "lab-streams-"+s.Name+"-")
	if err != nil {
		run.Note = err.Error()
		return run
	}
	defer os.RemoveAll(dir)
	args := s.roleArgs()
	if s.HasShutdownTimeout {
		args = append(args, "-shutdown-timeout="+drainTimeout.String())
	}
	p, err := start(s.Bin, dir, args...)
	if err != nil {
		run.Note = "did not start: " + oneLine(err.Error())
		return run
	}
	defer p.Kill()

	// Each client says when it is open (or has its answer), then reports
	// what it saw after the signal. The lab kills the step if it outlives
	// its deadline by EventTimeout, which ends every client's wait.
	signalled := make(chan struct{})
	var ready, done sync.WaitGroup
	ready.Add(2)
	done.Add(2)
	go func() { defer done.Done(); run.Events = watchEvents(p.Addr, ready.Done, signalled) }()
	go func() { defer done.Done(); run.Socket = watchSocket(p.Addr, ready.Done, signalled) }()
	if withSlow {
		done.Add(1)
		go func() {
			defer done.Done()
			c := newClient(p.Addr, 0)
			r := c.get("/slow?d=" + streamsSlow)
			c.Close()
			run.Slow = r.Outcome.String()
		}()
		if err := p.awaitLog("slow request started", 1); err != nil {
			run.Note = oneLine(err.Error())
		}
	}
	ready.Wait()
	at, err := p.Signal(syscall.SIGTERM)
	close(signalled)
	if err != nil {
		run.Note = err.Error()
	}
	if err := p.awaitExit(drainTimeout + proc.EventTimeout); err != nil {
		run.Note = err.Error()
	}
	done.Wait()
	exit, _ := p.Exited()
	run.SignalToExit, run.ExitStatus = exit.At.Sub(at), exitStatus(exit)
	return run
}

// watchEvents reads /events; it calls open once it has the first event or
// an answer that is not a stream, and returns what it saw after signalled.
func watchEvents(addr string, open func(), signalled <-chan struct{}) string {
	transport := &http.Transport{}
	defer transport.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), noretry.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/events", nil)
	if err != nil {
		open()
		return err.Error()
	}
	resp, err := transport.RoundTrip(req)
	if err != nil {
		open()
		return "error: " + err.Error()
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		open()
		return resp.Status
	}
	lines := bufio.NewReader(resp.Body)
	opened := false
	var before, after int // tick events before and after the signal
	shutdownEvent := false
	for {
		line, err := lines.ReadString('\n')
		if err != nil {
			if !opened {
				open()
			}
			return describeStreamEnd(before, after, shutdownEvent, err)
		}
		switch strings.TrimSpace(line) {
		case "event: tick":
			select {
			case <-signalled:
				after++
			default:
				before++
			}
		case "event: shutdown":
			shutdownEvent = true
		case "":
			if !opened && before > 0 {
				opened = true
				open()
			}
		}
	}
}

// describeStreamEnd says how an event stream ended, in the table's words.
func describeStreamEnd(before, after int, shutdownEvent bool, err error) string {
	var end string
	switch {
	case errors.Is(err, io.EOF):
		end = "a clean end"
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		end = "cut mid-stream"
	default:
		end = "error: " + err.Error()
	}
	saw := fmt.Sprintf("%d ticks", before+after)
	if before+after == 1 {
		saw = "1 tick"
	}
	if shutdownEvent {
		saw += ", the shutdown event"
	}
	return saw + ", then " + end
}

// watchSocket opens a WebSocket on /ws and has one message echoed; it
// calls open once that is done (or the handshake failed), and returns how
// the connection ended after signalled.
func watchSocket(addr string, open func(), signalled <-chan struct{}) string {
	ctx, cancel := context.WithTimeout(context.Background(), noretry.Timeout)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, "ws://"+addr+"/ws", nil)
	if err != nil {
		open()
		if resp != nil {
			return resp.Status
		}
		return "error: " + err.Error()
	}
	defer conn.CloseNow()
	err = conn.Write(ctx, websocket.MessageText, []byte("hello"))
	if err == nil {
		_, _, err = conn.Read(ctx)
	}
	open()
	if err != nil {
		return "echo failed: " + err.Error()
	}
	<-signalled
	// The library client answers a close frame as it reads it.
	_, _, err = conn.Read(ctx)
	switch code := websocket.CloseStatus(err); code {
	case -1:
	case websocket.StatusGoingAway:
		return "close frame 1001, going away"
	default:
		return fmt.Sprintf("close frame %d", int(code))
	}
	return "dropped, no close frame"
}

// StreamsAbout is the scenario's description, for the template.
func (r *report) StreamsAbout() string { return streamsAbout }

// StreamsTable is the scenario's table, a row per run.
func (r *report) StreamsTable() string {
	var b, notes strings.Builder
	b.WriteString("| step | event stream (`/events`) | WebSocket (`/ws`) | long `/slow` | signal → exit | exit status |\n")
	b.WriteString("|---|---|---|---|--:|---|\n")
	for _, s := range r.Steps {
		if s.BuildErr != "" {
			continue
		}
		for _, run := range s.Streams {
			if run.Note != "" {
				fmt.Fprintf(&notes, "- %s: %s\n", run.Label, run.Note)
			}
			slow := run.Slow
			if slow == "" {
				slow = "–"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", run.Label, run.Events, run.Socket, slow, formatDuration(run.SignalToExit), run.ExitStatus)
		}
	}
	if notes.Len() > 0 {
		b.WriteString("\n" + notes.String())
	}
	return b.String()
}

// StreamsOf is the run of the step with the given number, with or without
// the long /slow, or nil, for the template.
func (r *report) StreamsOf(number string, withSlow bool) *streamsRun {
	for _, s := range r.Steps {
		if !strings.HasPrefix(s.Name, number+"-") {
			continue
		}
		for i := range s.Streams {
			if (s.Streams[i].Slow != "") == withSlow {
				return &s.Streams[i]
			}
		}
	}
	return nil
}
