package main

// The untimed keep-alive scenario: the load a user's traffic is, with the
// signal at a moment that nothing in the load or the step's log chose.
//
// The keep-alive load in scenarios.go sends its SIGTERM on a "slow request
// started" line, while every client has a request in flight: that steps
// around HTTP/1.1's keep-alive race, so that its table can show the drain
// itself. This scenario does not. Its clients send short requests back to
// back, so that at any moment some of them are between two requests, and
// the signal goes out at a wall-clock offset after the load began, drawn
// at random. It runs several times per step, each on a fresh process, and
// reports each run's drops and their kinds.

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	untimedName    = "untimed keep-alive"
	untimedClients = 16
	untimedDelay   = "2ms"
	untimedRuns    = 5
	// The signal goes out at an offset drawn uniformly from
	// [untimedSignalFrom, untimedSignalTo) after the clients started: late
	// enough for every client to be sending, and not tied to any request.
	untimedSignalFrom = 100 * time.Millisecond
	untimedSignalTo   = 200 * time.Millisecond
	// untimedLoad is how long, from the start, the clients go on sending
	// if nothing stops them first; then each closes its connection. It is
	// what ends the drain of a step that never closes a kept-alive
	// connection (step 02).
	untimedLoad = 400 * time.Millisecond
	// untimedDrainDelay is step 10's -drain-delay here: longer than what
	// is left of the load after the latest signal, so that the clients
	// leave during the delay, as they would for another instance once the
	// load balancer has heard. What it shows is the delay's answer to the
	// race: Connection: close on a response, instead of an idle close.
	untimedDrainDelay = 500 * time.Millisecond
)

// untimedRun is one run of the untimed scenario.
type untimedRun struct {
	Run
	// Offset is when the signal went out, counted from the start of the load.
	Offset time.Duration
	// FoundClosed counts the kept-alive connections that a client found
	// closed by the server before it sent its next request on them: it
	// sent nothing on them, so nothing was lost there.
	FoundClosed int
}

// untimedAbout says what the scenario does, for the doc and the terminal.
func untimedAbout() string {
	return fmt.Sprintf("%d clients, each sending `/slow?d=%s` back to back on one kept-alive connection, all starting at once; "+
		"SIGTERM at a moment drawn at random between %s and %s after they started, not tied to any request or log line; "+
		"%d runs per step, each on a fresh process. A client never retries: it stops at its first request that is not answered "+
		"(dropped), or at its first refused connection (turned away), or after %s, when it closes its connection.",
		untimedClients, untimedDelay, formatDuration(untimedSignalFrom), formatDuration(untimedSignalTo), untimedRuns, formatDuration(untimedLoad))
}

// runUntimed runs the untimed scenario untimedRuns times on the step.
func runUntimed(s *step, verbose bool) []untimedRun {
	var runs []untimedRun
	for i := range untimedRuns {
		run := runUntimedOnce(s, untimedSignalFrom+rand.N(untimedSignalTo-untimedSignalFrom))
		fmt.Fprintf(os.Stderr, "%s / %s, run %d: %s\n", s.Name, untimedName, i+1, untimedSummary(run))
		if verbose {
			printDetails(run.Run)
		}
		runs = append(runs, run)
	}
	return runs
}

// runUntimedOnce starts the step and puts the untimed load on it, with the
// signal at offset after the load began.
func runUntimedOnce(s *step, offset time.Duration) untimedRun {
	var began time.Time
	var foundClosed int
	sc := scenario{
		Name:            untimedName,
		ShutdownTimeout: drainTimeout,
		DrainDelay:      untimedDrainDelay,
		drive: func(p *process, signal func()) ([]Request, error) {
			began = time.Now()
			var requests []Request
			requests, foundClosed = driveUntimed(p.Addr, began, offset, signal)
			return requests, nil
		},
	}
	run := untimedRun{Run: runScenario(s, sc), FoundClosed: foundClosed}
	if !run.Signal.IsZero() && !began.IsZero() {
		run.Offset = run.Signal.Sub(began)
	}
	return run
}

// driveUntimed starts the clients at began, sends the signal at offset
// after it (a bare sleep, on purpose: the moment must not depend on what
// the clients or the step are doing), and returns every request once each
// client has stopped, and how many connections were found closed before
// reuse.
func driveUntimed(addr string, began time.Time, offset time.Duration, signal func()) ([]Request, int) {
	perClient := make([][]Request, untimedClients)
	found := make([]int, untimedClients)
	until := began.Add(untimedLoad)
	var wg sync.WaitGroup
	for i := range untimedClients {
		wg.Go(func() { perClient[i], found[i] = untimedClient(addr, i, "/slow?d="+untimedDelay, until) })
	}
	time.Sleep(time.Until(began.Add(offset)))
	signal()
	wg.Wait()
	var requests []Request
	total := 0
	for i, rs := range perClient {
		requests = append(requests, rs...)
		total += found[i]
	}
	return requests, total
}

// untimedClient sends GET path back to back until the time until, on one
// kept-alive connection while the server keeps it, and stops at its first
// request that did not complete: it never retries. A connection the server
// closed before the client reused it is not sent on (see getFresh);
// the client dials a new one for its next request, as it does after a
// response with Connection: close.
func untimedClient(addr string, lane int, path string, until time.Time) (requests []Request, foundClosed int) {
	c := newClient(addr, lane)
	defer c.Close()
	// At least one request, however late the lane starts: a busy machine
	// may start it after until.
	for first := true; first || time.Now().Before(until); first = false {
		r, found := c.getFresh(path)
		if found {
			foundClosed++
		}
		requests = append(requests, r)
		if r.Outcome != Completed {
			break
		}
	}
	return requests, foundClosed
}

// getFresh is get, except that it first checks whether the server has
// closed the kept-alive connection, and if so dials a new one rather than
// send on it; found reports that it did. A careful client does not send on
// such a connection: net/http's Transport keeps a read pending on every
// idle connection and drops the connection as soon as that read ends. So a
// request counts as sent to a server that had accepted it only if, when
// the client wrote it, nothing from the server had said the connection was
// over.
func (c *client) getFresh(path string) (r Request, found bool) {
	c.Peek = true
	defer func() { c.Peek = false }()
	res := c.Get(path)
	return c.place(res), res.Redialed
}

// Kinds of drop, as the client saw them.
const (
	dropEOF   = "EOF"   // the connection ended with no answer, or part of one: the server closed it (FIN)
	dropReset = "reset" // ECONNRESET or EPIPE: the server's side answered with RST
	dropOther = "other" // a status other than 200, a timeout, anything else
)

// dropKind names how a dropped request failed, from its error's text. The
// texts are the standard library's own: io.ErrUnexpectedEOF is what
// http.ReadResponse returns for a connection closed before or inside the
// status line, io.EOF for one closed inside the body, and a syscall.Errno
// ends a net.OpError's text.
func dropKind(r Request) string {
	e := r.Err
	switch {
	case e == io.EOF.Error(), e == io.ErrUnexpectedEOF.Error():
		return dropEOF
	case strings.HasSuffix(e, syscall.ECONNRESET.Error()), strings.HasSuffix(e, syscall.EPIPE.Error()):
		return dropReset
	}
	return dropOther
}

// untimedCounts sums one run's requests by what became of them.
type untimedCounts struct {
	Completed, TurnedAway, FoundClosed int
	Dropped                            map[string]int // by kind
	// FirstDrop and LastDrop are when the drops ended, after the signal.
	FirstDrop, LastDrop time.Duration
}

func (c untimedCounts) dropped() int {
	n := 0
	for _, v := range c.Dropped {
		n += v
	}
	return n
}

func (r untimedRun) counts() untimedCounts {
	c := untimedCounts{Dropped: map[string]int{}, FoundClosed: r.FoundClosed}
	for _, req := range r.Requests {
		switch req.Outcome {
		case Completed:
			c.Completed++
		case TurnedAway:
			c.TurnedAway++
		case Dropped:
			at := req.End.Sub(r.Signal)
			if c.dropped() == 0 || at < c.FirstDrop {
				c.FirstDrop = at
			}
			c.LastDrop = max(c.LastDrop, at)
			c.Dropped[dropKind(req)]++
		}
	}
	return c
}

func untimedSummary(r untimedRun) string {
	if r.Signal.IsZero() {
		return r.Err.Error()
	}
	c := r.counts()
	s := fmt.Sprintf("SIGTERM at %s; %d completed, %d dropped (%d EOF, %d reset, %d other), %d found closed, %d turned away, exit %s",
		formatDuration(r.Offset), c.Completed, c.dropped(), c.Dropped[dropEOF], c.Dropped[dropReset], c.Dropped[dropOther], c.FoundClosed, c.TurnedAway, r.ExitStatus)
	if r.Err != nil {
		s += " (" + r.Err.Error() + ")"
	}
	return s
}

// UntimedAbout is untimedAbout, for the template.
func (r *report) UntimedAbout() string { return untimedAbout() }

// UntimedRuns is how many runs each step had, for the template.
func (r *report) UntimedRuns() int { return untimedRuns }

// UntimedTable is the untimed scenario's table: a row per step, its runs'
// figures summed, and the drops run by run.
func (r *report) UntimedTable() string {
	var b, notes strings.Builder
	b.WriteString("| step | SIGTERM after the start, run by run | dropped, run by run | dropped in all | EOF | reset | other | drops ended, after SIGTERM | completed | found closed | turned away | exit status |\n")
	b.WriteString("|---|---|---|--:|--:|--:|--:|---|--:|--:|--:|---|\n")
	for _, s := range r.Steps {
		fmt.Fprintf(&b, "| [%s](../%s/) ", s.Name, s.Name)
		if s.BuildErr != "" {
			b.WriteString("| did not build | | | | | | | | | | |\n")
			continue
		}
		var offsets, drops, statuses []string
		total := untimedCounts{Dropped: map[string]int{}}
		ran := 0
		for _, run := range s.Untimed {
			if run.Err != nil {
				fmt.Fprintf(&notes, "- %s: %s\n", s.Name, oneLine(run.Err.Error()))
			}
			if run.Signal.IsZero() {
				continue
			}
			c := run.counts()
			offsets = append(offsets, fmt.Sprint(run.Offset.Round(time.Millisecond).Milliseconds()))
			drops = append(drops, fmt.Sprint(c.dropped()))
			statuses = append(statuses, run.ExitStatus)
			if d := c.dropped(); d > 0 {
				if total.dropped() == 0 || c.FirstDrop < total.FirstDrop {
					total.FirstDrop = c.FirstDrop
				}
				total.LastDrop = max(total.LastDrop, c.LastDrop)
			}
			for k, v := range c.Dropped {
				total.Dropped[k] += v
			}
			total.Completed += c.Completed
			total.TurnedAway += c.TurnedAway
			total.FoundClosed += c.FoundClosed
			ran++
		}
		if ran == 0 {
			b.WriteString("| did not run | | | | | | | | | | |\n")
			continue
		}
		ended := "–"
		if total.dropped() > 0 {
			ended = formatDuration(total.FirstDrop) + " to " + formatDuration(total.LastDrop)
		}
		if slices.Equal(statuses, slices.Repeat(statuses[:1], len(statuses))) {
			statuses = statuses[:1]
		}
		fmt.Fprintf(&b, "| %s ms | %s | %d | %d | %d | %d | %s | %d | %d | %d | %s |\n",
			strings.Join(offsets, ", "), strings.Join(drops, ", "), total.dropped(),
			total.Dropped[dropEOF], total.Dropped[dropReset], total.Dropped[dropOther], ended,
			total.Completed, total.FoundClosed, total.TurnedAway, strings.Join(statuses, ", "))
	}
	if notes.Len() > 0 {
		b.WriteString("\n" + notes.String())
	}
	return b.String()
}

// UntimedDropped is the drops in all of the step numbered number (such as
// "03") over its untimed runs, or -1 when it has none.
func (r *report) UntimedDropped(number string) int {
	for _, s := range r.Steps {
		if !strings.HasPrefix(s.Name, number+"-") || len(s.Untimed) == 0 {
			continue
		}
		n := 0
		for _, run := range s.Untimed {
			n += run.counts().dropped()
		}
		return n
	}
	return -1
}

// UntimedClients is how many clients the scenario runs, for the template.
func (r *report) UntimedClients() int { return untimedClients }

// UntimedDroppedList is the drops in all of each step built on Shutdown,
// as "30 requests (step 03), 12 (04), ...".
func (r *report) UntimedDroppedList() string {
	var parts []string
	for _, s := range r.Steps {
		if s.UsesShutdown && len(s.Untimed) > 0 {
			n, number := r.UntimedDropped(s.Name[:2]), s.Name[:2]
			switch {
			case len(parts) > 0:
				parts = append(parts, fmt.Sprintf("%d (%s)", n, number))
			case n == 1:
				parts = append(parts, fmt.Sprintf("1 request (step %s)", number))
			default:
				parts = append(parts, fmt.Sprintf("%d requests (step %s)", n, number))
			}
		}
	}
	if len(parts) == 0 {
		return "no requests"
	}
	return strings.Join(parts, ", ")
}

// UntimedLastDrop is the latest a drop ended after the signal, over the
// untimed runs of the steps built on Shutdown.
func (r *report) UntimedLastDrop() time.Duration {
	var last time.Duration
	for _, s := range r.Steps {
		if !s.UsesShutdown {
			continue
		}
		for _, run := range s.Untimed {
			if c := run.counts(); c.dropped() > 0 {
				last = max(last, c.LastDrop)
			}
		}
	}
	return last
}

// untimedSection is the scenario's heading, description and table, for the
// terminal.
func (r *report) untimedSection() string {
	return fmt.Sprintf("### %s\n\n%s\n\n%s\n", untimedName, untimedAbout(), r.UntimedTable())
}
