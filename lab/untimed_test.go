package main

import (
	"github.com/gracefulgo/walkthrough/internal/demotest"

	"github.com/gracefulgo/walkthrough/internal/noretry"

	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

const rawOK = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"

// serveRaw accepts connections on loopback and hands each to handle, which
// speaks HTTP/1.1 by hand, so that a test can end a connection exactly
// where a server under shutdown does. It returns the address and the
// listener, which the test may close to refuse new connections.
func serveRaw(t *testing.T, handle func(c net.Conn, r *bufio.Reader)) (string, net.Listener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c, bufio.NewReader(c))
			}()
		}
	}()
	return ln.Addr().String(), ln
}

// readRequest reads one whole request, or fails the test's server side
// quietly: the client's view is what the tests check.
func readRequest(r *bufio.Reader) bool {
	_, err := http.ReadRequest(r)
	return err == nil
}

// Each way a server under shutdown ends a kept-alive connection, as the
// untimed client must count it: a drop only where the client had sent its
// request on a connection that nothing from the server had said was over.
func TestUntimedClientCounts(t *testing.T) {
	t.Parallel()
	until := time.Now().Add(10 * time.Second) // a bound: each case ends long before

	t.Run("read, then closed unanswered", func(t *testing.T) {
		t.Parallel()
		// What conn.serve does with a request it reads once Shutdown has
		// begun: it returns, and the deferred close sends a FIN.
		addr, _ := serveRaw(t, func(c net.Conn, r *bufio.Reader) {
			if !readRequest(r) || !write(c, rawOK) {
				return
			}
			readRequest(r)
		})
		reqs, found := untimedClient(addr, 0, "/", until)
		checkOutcomes(t, reqs, Completed, Dropped)
		if k := dropKind(reqs[1]); k != dropEOF {
			t.Errorf("drop kind %q (%s), want %q", k, reqs[1].Err, dropEOF)
		}
		if found != 0 {
			t.Errorf("found closed %d, want 0: the request was sent before the close", found)
		}
	})

	t.Run("closed with the request unread", func(t *testing.T) {
		t.Parallel()
		// What closeIdleConns does to an idle connection whose next request
		// has arrived but has not been read: Linux answers the close with
		// RST, since data was left unread.
		addr, _ := serveRaw(t, func(c net.Conn, r *bufio.Reader) {
			if !readRequest(r) || !write(c, rawOK) {
				return
			}
			// One byte of the next request, from the socket itself (r would
			// read all it can): the rest stays unread there.
			_, _ = c.Read(make([]byte, 1)) // the close comes next either way
		})
		reqs, _ := untimedClient(addr, 0, "/", until)
		checkOutcomes(t, reqs, Completed, Dropped)
		if k := dropKind(reqs[1]); k != dropReset {
			t.Errorf("drop kind %q (%s), want %q", k, reqs[1].Err, dropReset)
		}
	})

	t.Run("Connection: close, then refused", func(t *testing.T) {
		t.Parallel()
		// What a response written once Shutdown has begun says; the
		// listener is closed by then, so the client's next dial is refused.
		var ln net.Listener
		addr, ln := serveRaw(t, func(c net.Conn, r *bufio.Reader) {
			if readRequest(r) {
				ln.Close()
				write(c, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nok\n")
			}
		})
		reqs, _ := untimedClient(addr, 0, "/", until)
		checkOutcomes(t, reqs, Completed, TurnedAway)
	})

	t.Run("the load ends", func(t *testing.T) {
		t.Parallel()
		closed := make(chan bool, 1)
		addr, _ := serveRaw(t, func(c net.Conn, r *bufio.Reader) {
			for readRequest(r) && write(c, rawOK) {
			}
			_, err := r.ReadByte()
			closed <- errors.Is(err, io.EOF)
		})
		reqs, _ := untimedClient(addr, 0, "/", time.Now().Add(20*time.Millisecond))
		if len(reqs) == 0 {
			t.Fatal("no request sent")
		}
		for _, r := range reqs {
			if r.Outcome != Completed {
				t.Fatalf("%v (%s), want every request completed", r.Outcome, r.Err)
			}
		}
		select {
		case clean := <-closed:
			if !clean {
				t.Error("the server did not read a clean EOF: the client should close its connection when the load ends")
			}
		case <-time.After(demotest.EventTimeout):
			t.Errorf("the connection is still open %s after the load ended: the client should close it", demotest.EventTimeout)
		}
	})
}

// write writes s to c, and reports whether it could: the server side of
// these tests stops at its first failure, and the client's view says why.
func write(c net.Conn, s string) bool {
	_, err := io.WriteString(c, s)
	return err == nil
}

func checkOutcomes(t *testing.T, reqs []Request, want ...Outcome) {
	t.Helper()
	if len(reqs) > len(want)+5 {
		t.Errorf("%d requests, want %d: the client went on", len(reqs), len(want))
		return
	}
	var got []string
	for _, r := range reqs {
		got = append(got, r.Outcome.String())
	}
	var w []string
	for _, o := range want {
		w = append(w, o.String())
	}
	if strings.Join(got, ", ") != strings.Join(w, ", ") {
		t.Errorf("requests: %s; want %s (the last: %s)", strings.Join(got, ", "), strings.Join(w, ", "), reqs[len(reqs)-1].Err)
	}
}

// A connection the server has closed before the client reuses it is not
// sent on: the client dials again, and is turned away by a closed listener.
func TestClosedByServer(t *testing.T) {
	t.Parallel()
	answered := make(chan struct{})
	hangUp := make(chan struct{})
	addr, ln := serveRaw(t, func(c net.Conn, r *bufio.Reader) {
		if readRequest(r) {
			write(c, rawOK)
			close(answered)
		}
		<-hangUp
	})
	c := newClient(addr, 0)
	defer c.Close()
	if r := c.get("/"); r.Outcome != Completed {
		t.Fatalf("GET /: %v (%s)", r.Outcome, r.Err)
	}
	<-answered
	if c.ClosedByServer() {
		t.Fatal("ClosedByServer on an open, quiet connection")
	}
	ln.Close()
	close(hangUp)                               // the server closes the connection: a FIN is on its way
	deadline := time.Now().Add(noretry.Timeout) // a hang bound
	for !c.ClosedByServer() {
		if time.Now().After(deadline) {
			t.Fatal("ClosedByServer never saw the server's close")
		}
		time.Sleep(time.Millisecond) // waiting for the FIN to arrive; nothing else to wait on
	}
	r, found := c.getFresh("/")
	if !found || r.Outcome != TurnedAway {
		t.Errorf("getFresh on a connection the server closed: found %t, %v (%s); want found, and a new dial turned away", found, r.Outcome, r.Err)
	}
}

// One untimed run against the fake step (run_test.go), end to end: every
// client stops at its first request that did not complete, or at the end
// of the load, and the step drains and exits 0.
func TestUntimedRun(t *testing.T) {
	t.Setenv(fakeStepEnv, "1")
	s := &step{Name: "00-fake", Bin: os.Args[0], HasShutdownTimeout: true}
	offset := untimedSignalFrom
	run := runUntimedOnce(s, offset)
	if run.Err != nil {
		t.Fatal(run.Err)
	}
	if run.ExitStatus != "0" {
		t.Errorf("exit %s, want 0", run.ExitStatus)
	}
	if run.Offset < offset {
		t.Errorf("signal at %v after the start, before the %v asked for", run.Offset, offset)
	}
	lanes := map[int][]Request{}
	for _, r := range run.Requests {
		lanes[r.Lane] = append(lanes[r.Lane], r)
	}
	if len(lanes) != untimedClients {
		t.Errorf("%d clients sent requests, want %d", len(lanes), untimedClients)
	}
	c := run.counts()
	if c.Completed == 0 {
		t.Error("no request completed")
	}
	if c.Dropped[dropOther] != 0 {
		t.Errorf("%d drops of kind %q: the fake step only drops by closing", c.Dropped[dropOther], dropOther)
	}
	for lane, reqs := range lanes {
		for i, r := range reqs {
			if r.Outcome != Completed && i != len(reqs)-1 {
				t.Errorf("lane %d: request %d of %d was %v, and the client went on: it must stop", lane, i+1, len(reqs), r.Outcome)
			}
			if r.Outcome == Dropped && r.End.Before(run.Signal) {
				t.Errorf("lane %d: dropped before the signal: %s", lane, r.Err)
			}
		}
	}
}

func TestUntimedTable(t *testing.T) {
	t.Parallel()
	at := func(d time.Duration) time.Time { return ms(0).Add(d) }
	run := func(offset time.Duration, status string, outcomes map[Outcome]int, errs ...string) untimedRun {
		r := untimedRun{Run: Run{Signal: ms(0), Exit: ms(10), ExitStatus: status}, Offset: offset, FoundClosed: 1}
		for o, n := range outcomes {
			for range n {
				r.Requests = append(r.Requests, Request{Outcome: o, Start: at(-time.Millisecond), End: at(-time.Millisecond)})
			}
		}
		for i, e := range errs {
			r.Requests = append(r.Requests, Request{Outcome: Dropped, Start: ms(0), End: at(time.Duration(i+1) * time.Millisecond), Err: e})
		}
		return r
	}
	reset := "read tcp 127.0.0.1:1->127.0.0.1:2: read: connection reset by peer"
	s := &step{Name: "04-notifycontext", Untimed: []untimedRun{
		run(120*time.Millisecond, "0", map[Outcome]int{Completed: 10, TurnedAway: 14}, "unexpected EOF", reset),
		run(150*time.Millisecond, "0", map[Outcome]int{Completed: 12, TurnedAway: 16}),
		run(199*time.Millisecond, "0", map[Outcome]int{Completed: 8}, "write tcp 127.0.0.1:1->127.0.0.1:2: write: broken pipe", ""),
	}}
	r := &report{Steps: []*step{s, {Name: "09-broken", BuildErr: "syntax error"}}}
	got := r.UntimedTable()
	for _, line := range []string{
		"| [04-notifycontext](../04-notifycontext/) | 120, 150, 199 ms | 2, 0, 2 | 4 | 1 | 2 | 1 | 1.00 ms to 2.00 ms | 30 | 3 | 30 | 0 |",
		"| [09-broken](../09-broken/) | did not build | | | | | | | | | | |",
	} {
		if !strings.Contains(got, line+"\n") {
			t.Errorf("table lacks\n%s\ngot:\n%s", line, got)
		}
	}
	if n := r.UntimedDropped("04"); n != 4 {
		t.Errorf("UntimedDropped(04) = %d, want 4", n)
	}
	s.Untimed[1].ExitStatus = "1"
	if got := r.UntimedTable(); !strings.Contains(got, "| 0, 1, 0 |") {
		t.Errorf("exit statuses that differ are not listed run by run:\n%s", got)
	}
}

// The page's template renders with the untimed runs in it, and says what
// they found.
func TestDocHasUntimed(t *testing.T) {
	t.Parallel()
	r := twoSteps()
	r.Steps[0].Untimed = []untimedRun{{
		Run: Run{Signal: ms(0), Exit: ms(5), ExitStatus: "0", Requests: []Request{
			{Outcome: Completed, Start: ms(-3), End: ms(-1)},
			{Outcome: Dropped, Start: ms(0), End: ms(2), Err: "unexpected EOF"},
		}},
		Offset: 150 * time.Millisecond,
	}}
	path := t.TempDir() + "/lab.md"
	if err := r.writeDoc(path); err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"### untimed keep-alive\n",
		"| [04-notifycontext](../04-notifycontext/) | 150 ms | 1 | 1 | 1 | 0 | 0 | 2.00 ms to 2.00 ms |",
		"dropped 1 request (step 04) in all",
		"within 2.00 ms of the signal",
		"**Step 10 (Kubernetes) is where they are fixed**",
	} {
		if !strings.Contains(string(doc), want) {
			t.Errorf("docs/lab.md would lack %q", want)
		}
	}
}
