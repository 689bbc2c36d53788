package pitfalls

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/gracefulgo/walkthrough/internal/demotest"
)

// quickDrain ends a graceful shutdown the moment the last busy connection
// is done, instead of at Shutdown's next poll, which comes up to half a
// second later (BenchmarkShutdownLag measures both). It is not a step's
// code: no step needs the half second (docs/internals.md, "What the
// polling costs").
//
// It counts, with the server's ConnState hook, the connections that are
// new or active. Its Shutdown calls the server's, which does the work
// (closes the listeners, stops keep-alives, closes idle connections,
// keeps the deadline), and returns as soon as Shutdown has begun and the
// count is zero.
//
// That cuts no request that Shutdown would have completed. After Shutdown
// has begun, conn.serve reads a request and then returns without serving
// it (its shuttingDown check), so the only requests Shutdown completes are
// those that passed that check before: their connection reported
// StateActive first (the hook runs before the check), and reports
// StateIdle or StateClosed only once the response is written. Counting new
// connections as busy too is the cautious side: the drain waits for a
// client that has connected and not yet sent its request as long as
// Shutdown would (until ReadHeaderTimeout drops it), although that request
// would not be served.
type quickDrain struct {
	srv *http.Server

	mu      sync.Mutex
	states  map[net.Conn]http.ConnState // the connections not yet closed
	busy    int                         // how many of them are new or active
	changed chan struct{}               // closed and replaced whenever busy changes

	began     chan struct{} // closed once Shutdown has begun
	beganOnce sync.Once
}

// newQuickDrain installs the drain's hooks on srv, which must not be
// serving yet. A ConnState hook srv already has is still called.
func newQuickDrain(srv *http.Server) *quickDrain {
	d := &quickDrain{
		srv:     srv,
		states:  map[net.Conn]http.ConnState{},
		changed: make(chan struct{}),
		began:   make(chan struct{}),
	}
	next := srv.ConnState
	srv.ConnState = func(c net.Conn, state http.ConnState) {
		d.track(c, state)
		if next != nil {
			next(c, state)
		}
	}
	// Shutdown runs these once it has stopped keep-alives and closed the
	// listeners.
	srv.RegisterOnShutdown(func() { d.beganOnce.Do(func() { close(d.began) }) })
	return d
}

func isBusy(state http.ConnState) bool { return state == http.StateNew || state == http.StateActive }

// track is the ConnState hook: it keeps each connection's state and the
// count of busy ones.
func (d *quickDrain) track(c net.Conn, state http.ConnState) {
	d.mu.Lock()
	defer d.mu.Unlock()
	was, known := d.states[c]
	wasBusy := known && isBusy(was)
	if state == http.StateClosed || state == http.StateHijacked {
		delete(d.states, c) // terminal: the hook will not hear of it again
	} else {
		d.states[c] = state
	}
	if isBusy(state) == wasBusy {
		return
	}
	if wasBusy {
		d.busy--
	} else {
		d.busy++
	}
	close(d.changed)
	d.changed = make(chan struct{})
}

// Shutdown shuts the server down as srv.Shutdown does, and returns nil as
// soon as no connection is new or active, or what srv.Shutdown returns if
// that comes first (its deadline). srv.Shutdown may still be running when
// it returns; it has nothing left to wait for.
func (d *quickDrain) Shutdown(ctx context.Context) error {
	shutdownErr := make(chan error, 1)
	go func() { shutdownErr <- d.srv.Shutdown(ctx) }()
	select {
	case <-d.began:
	case err := <-shutdownErr:
		return err
	}
	for {
		d.mu.Lock()
		busy, changed := d.busy, d.changed
		d.mu.Unlock()
		if busy == 0 {
			return nil
		}
		select {
		case <-changed:
		case err := <-shutdownErr:
			return err
		}
	}
}

// drains are the two ways to drain that TestQuickDrainCutsNothing and
// BenchmarkShutdownLag compare. install is called before the server
// serves, and returns the drain.
var drains = []struct {
	name    string
	install func(*http.Server) func(context.Context) error
}{
	{"Shutdown", func(srv *http.Server) func(context.Context) error { return srv.Shutdown }},
	{"quick", func(srv *http.Server) func(context.Context) error { return newQuickDrain(srv).Shutdown }},
}

// TestQuickDrainCutsNothing: for each kind of connection a drain meets,
// the client sees the same with quickDrain as with Shutdown. The program's
// exit is played by srv.Close right after the drain returns: whatever the
// drain left running is cut then.
func TestQuickDrainCutsNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		// before runs once the client's connection is accepted, and
		// before the drain; after runs once the drain has begun, and
		// returns what the client saw.
		before func(c *rawConn, h *blockingHandler)
		after  func(c *rawConn, h *blockingHandler) string
		want   string
	}{
		{
			name:   "request in flight on a new connection",
			before: func(c *rawConn, h *blockingHandler) { c.send("/hold"); <-h.started },
			after:  finish,
			want:   "200 done",
		},
		{
			name: "request in flight on a kept-alive connection",
			before: func(c *rawConn, h *blockingHandler) {
				c.send("/")
				c.answer() // idle now, kept alive; then it turns active
				c.send("/hold")
				<-h.started
			},
			after: finish,
			want:  "200 done",
		},
		{
			name:   "request in flight with Connection: close",
			before: func(c *rawConn, h *blockingHandler) { c.send("/hold", "Connection: close"); <-h.started },
			after:  finish,
			want:   "200 done",
		},
		{
			// conn.serve reads the request, sees the shutdown, and
			// returns without an answer: Shutdown would not serve it.
			name:   "first request of a just-accepted connection, sent after the drain began",
			before: func(c *rawConn, h *blockingHandler) {},
			after:  func(c *rawConn, h *blockingHandler) string { c.send("/"); return c.answer() },
			want:   "no response",
		},
		{
			// Closed as idle, or read and not served: either way Shutdown
			// would not serve it.
			name:   "kept-alive connection turning active after the drain began",
			before: func(c *rawConn, h *blockingHandler) { c.send("/"); c.answer() },
			after:  func(c *rawConn, h *blockingHandler) string { c.send("/"); return c.answer() },
			want:   "no response",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, drain := range drains {
				if got := drainOnce(t, drain.install, tc.before, tc.after); got != tc.want {
					t.Errorf("with %s, the client saw %s, want %s", drain.name, got, tc.want)
				}
			}
		})
	}
}

// finish lets the request in flight end a moment into the drain, and
// returns what its client saw. The moment is the rest of the request's
// work, not a synchronisation: a drain that did not wait for the request
// would have returned and cut it long before.
func finish(c *rawConn, h *blockingHandler) string {
	time.Sleep(50 * time.Millisecond)
	close(h.release)
	return c.answer()
}

// drainOnce serves one client connection, runs before, drains with the
// drain install gives, runs after while it drains, then plays the exit.
func drainOnce(t *testing.T, install func(*http.Server) func(context.Context) error,
	before func(*rawConn, *blockingHandler), after func(*rawConn, *blockingHandler) string) string {
	h := newBlockingHandler()
	mux := http.NewServeMux()
	mux.Handle("/hold", h)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello\n") })
	accepted := make(chan struct{}, 1)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: demotest.EventTimeout,
		ConnState: func(_ net.Conn, state http.ConnState) {
			if state == http.StateNew {
				accepted <- struct{}{}
			}
		}}
	began := make(chan struct{})
	srv.RegisterOnShutdown(func() { close(began) })
	drain := install(srv)
	ln := mustListen(t)
	go srv.Serve(ln)
	defer srv.Close()

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := &rawConn{Conn: conn, r: bufio.NewReader(conn)}
	await(t, accepted, "the connection to be accepted")
	before(c, h)

	ctx, cancel := context.WithTimeout(context.Background(), demotest.EventTimeout)
	defer cancel()
	drained := make(chan error, 1)
	go func() {
		err := drain(ctx)
		srv.Close() // the exit
		drained <- err
	}()
	await(t, began, "the drain to begin")
	saw := after(c, h)
	if err := await(t, drained, "the drain to end"); err != nil {
		t.Errorf("the drain returned %v", err)
	}
	return saw
}

// rawConn is a client connection written by hand, so that the test decides
// when each request goes out; http.Transport would retry or redial.
type rawConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *rawConn) send(path string, headers ...string) {
	req := "GET " + path + " HTTP/1.1\r\nHost: pitfalls\r\n"
	for _, h := range headers {
		req += h + "\r\n"
	}
	io.WriteString(c, req+"\r\n") // a failed write shows in answer
}

// answer reads a response: "200 <body>", or "no response".
func (c *rawConn) answer() string {
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return "no response"
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Sprintf("%d, then %v", resp.StatusCode, err)
	}
	return fmt.Sprintf("%d %s", resp.StatusCode, bytesTrim(body))
}

func bytesTrim(b []byte) string {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return string(b)
}
