package pitfalls

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gracefulgo/walkthrough/internal/demotest"
)

// blockingHandler is a request that runs until the test releases it.
type blockingHandler struct {
	started  chan struct{} // closed when the request has started
	release  chan struct{} // close to let it finish
	finished chan struct{} // closed when it has written its answer
	once     sync.Once
}

func newBlockingHandler() *blockingHandler {
	return &blockingHandler{started: make(chan struct{}), release: make(chan struct{}), finished: make(chan struct{})}
}

func (h *blockingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.once.Do(func() { close(h.started) })
	select {
	case <-h.release:
		io.WriteString(w, "done\n")
		close(h.finished)
	case <-r.Context().Done():
	}
}

// TestExitOnErrServerClosed: Serve (and ListenAndServe) return
// ErrServerClosed the moment Shutdown begins, while requests are still in
// flight. A program that exits when Serve returns, instead of waiting for
// Shutdown to return, cuts the requests that Shutdown was draining.
func TestExitOnErrServerClosed(t *testing.T) {
	t.Run("Serve returns before the drain ends", serveReturnsBeforeTheDrainEnds)
	t.Run("the program exits 0 and cuts the request", func(t *testing.T) {
		p := startProgram(t, "exit-when-serve-ends")
		resp := p.GetAsync("/slow")
		p.WaitLog("slow request started")
		p.Signal(syscall.SIGTERM)
		if exit := p.WaitExit(); exit.Code != 0 {
			t.Errorf("%s, want exit status 0: nothing reports the cut request", exit)
		}
		if r := await(t, resp, "the client's answer"); r.Err == nil {
			t.Errorf("the in-flight request got %v; want it cut by the exit", r)
		}
	})
}

func serveReturnsBeforeTheDrainEnds(t *testing.T) {
	h := newBlockingHandler()
	s := startServer(t, &http.Server{Handler: h})
	resp := s.get("/")
	await(t, h.started, "the request to start")
	shutdownDone := s.shutdownAsync(context.Background())

	if err := await(t, s.serveErr, "Serve to return"); !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Serve returned %v, want ErrServerClosed", err)
	}
	// Serve has returned: a main that exits now exits here.
	select {
	case <-h.finished:
		t.Fatal("the request finished before Serve returned; the pitfall needs it in flight")
	case err := <-shutdownDone:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	default:
	}
	// Only Shutdown's return says that the drain is over.
	close(h.release)
	if r := demotest.AwaitResponse(resp, demotest.EventTimeout); !r.OK() {
		t.Errorf("the in-flight request got %v, want 200", r)
	}
	if err := await(t, shutdownDone, "Shutdown to return"); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// TestLogFatalInServeGoroutine: log.Fatal calls os.Exit(1), which ends the
// process without running deferred calls, in that goroutine or in main. The
// cleanup deferred in main (flushing logs, closing a database, removing a
// pid file) never runs.
func TestLogFatalInServeGoroutine(t *testing.T) {
	for _, tc := range []struct {
		program     string
		cleanupRuns bool
	}{
		{"log-fatal-in-serve", false},
		{"return-serve-error", true},
	} {
		t.Run(tc.program, func(t *testing.T) {
			// A taken port makes ListenAndServe fail at once.
			taken, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer taken.Close()
			t.Setenv(programEnv, tc.program)
			p := demotest.StartAt(t, taken.Addr().String())
			p.WaitExit()
			_, ran := p.Logged("deferred cleanup ran")
			if ran != tc.cleanupRuns {
				t.Errorf("deferred cleanup ran: %v, want %v\n%s", ran, tc.cleanupRuns, p.Output())
			}
		})
	}
}

// TestNoShutdownDeadline: Shutdown(context.Background()) waits as long as a
// request runs. With a request that never ends, the program never exits,
// until the orchestrator kills it. The test runs on synctest's fake clock:
// an hour passes at once.
func TestNoShutdownDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ln := newPipeListener()
		h := newBlockingHandler()
		srv := &http.Server{Handler: h}
		go srv.Serve(ln)
		client := ln.dial()
		go io.WriteString(client, "GET / HTTP/1.1\r\nHost: pitfalls\r\n\r\n")
		<-h.started

		shutdownDone := make(chan error, 1)
		go func() { shutdownDone <- srv.Shutdown(context.Background()) }()
		time.Sleep(time.Hour)
		synctest.Wait()
		select {
		case err := <-shutdownDone:
			t.Errorf("Shutdown returned %v with a request still running", err)
		default:
			// Still draining after an hour, as documented.
		}
		// Cut the request, so that Shutdown and the bubble can end.
		srv.Close()
		client.Close()
		<-shutdownDone
	})
}

// TestDeadlineLongerThanGracePeriod: an orchestrator sends SIGTERM, waits
// its grace period (Kubernetes: terminationGracePeriodSeconds, 30 s by
// default), then sends SIGKILL. A shutdown deadline longer than that is
// never reached: the process is killed mid-drain, and neither "shutdown
// forced" nor any cleanup happens. Here the grace period is scaled down to
// gracePeriod; the deadline stays above or goes below it.
func TestDeadlineLongerThanGracePeriod(t *testing.T) {
	const gracePeriod = time.Second
	for _, tc := range []struct {
		shutdownTimeout time.Duration
		killed          bool
	}{
		{10 * time.Second, true},        // longer than the grace period
		{100 * time.Millisecond, false}, // shorter: the program gives up itself
	} {
		t.Run("shutdown-timeout="+tc.shutdownTimeout.String(), func(t *testing.T) {
			p := startProgram(t, "shutdown-with-budget", "-shutdown-timeout="+tc.shutdownTimeout.String())
			resp := p.GetAsync("/slow")
			p.WaitLog("slow request started")
			p.Signal(syscall.SIGTERM)
			p.WaitLog("shutdown started")
			// The orchestrator's grace period, which is a timer.
			exit, exited := p.AwaitExit(gracePeriod)
			if !exited {
				p.Signal(syscall.SIGKILL)
				exit = p.WaitExit()
			}
			_, forced := p.Logged("shutdown forced")
			if tc.killed {
				if exit.Signal != syscall.SIGKILL || forced {
					t.Errorf("%s, logged shutdown forced: %v; want killed by SIGKILL before the deadline", exit, forced)
				}
			} else if exit.Code != 1 || !forced {
				t.Errorf("%s, logged shutdown forced: %v; want the program to give up at its deadline and exit 1", exit, forced)
			}
			if r := await(t, resp, "the client's answer"); r.Err == nil {
				t.Errorf("the endless request got %v, want it cut", r)
			}
		})
	}
}

// TestCloseInsteadOfShutdown: Close is not a faster Shutdown. It closes
// every connection at once, so a request in flight loses its connection and
// its context is cancelled, mid-work.
func TestCloseInsteadOfShutdown(t *testing.T) {
	cancelled := make(chan error, 1)
	started := make(chan struct{})
	s := startServer(t, &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done()
		cancelled <- context.Cause(r.Context())
	})})
	resp := s.get("/")
	await(t, started, "the request to start")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if r := await(t, resp, "the client's answer"); r.Err == nil {
		t.Errorf("the in-flight request got %v after Close, want its connection cut", r)
	}
	t.Logf("the handler's context was cancelled: %v", await(t, cancelled, "the request's context to be cancelled"))
}

// TestConnStateCountingRequests: a ConnState hook that counts requests
// (up on StateActive, down on StateIdle) never comes back to zero for a
// request sent with Connection: close, whose connection goes from
// StateActive straight to StateClosed. A drain waiting for zero waits
// forever. Counting connections (up on StateNew, down on StateClosed or
// StateHijacked), as step 02 does, comes back to zero.
func TestConnStateCountingRequests(t *testing.T) {
	var mu sync.Mutex
	var seen []http.ConnState
	requests, conns := 0, 0
	closed := make(chan struct{})
	s := startServer(t, &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello\n") }),
		ConnState: func(_ net.Conn, state http.ConnState) {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, state)
			switch state {
			case http.StateActive:
				requests++
			case http.StateIdle:
				requests--
			}
			switch state {
			case http.StateNew:
				conns++
			case http.StateClosed, http.StateHijacked:
				conns--
			}
			if state == http.StateClosed {
				close(closed) // terminal: the hook will not be called again
			}
		},
	})
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: pitfalls\r\nConnection: close\r\n\r\n")
	if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET with Connection: close: %v %v", resp, err)
	}
	await(t, closed, "the connection to close")
	mu.Lock()
	defer mu.Unlock()
	t.Logf("states: %v", seen)
	if requests != 1 {
		t.Errorf("the request counter ended at %d; the pitfall is that it stays at 1", requests)
	}
	if conns != 0 {
		t.Errorf("the connection counter ended at %d, want 0", conns)
	}
}

// TestHijackedConnectionIgnoredByShutdown: once a handler hijacks its
// connection (as WebSocket libraries do), the server forgets it. Shutdown
// returns without closing it or waiting for it, and the program exits
// under a client in mid-conversation. A RegisterOnShutdown callback is the
// hook to tell such connections to wind down.
func TestHijackedConnectionIgnoredByShutdown(t *testing.T) {
	echo := func(w http.ResponseWriter, r *http.Request) {
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		go func() { // a chat: echo lines until the client leaves
			defer conn.Close()
			rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
			rw.Flush()
			for {
				line, err := rw.ReadString('\n')
				if err != nil {
					return
				}
				rw.WriteString(line)
				rw.Flush()
			}
		}()
	}
	s := startServer(t, &http.Server{Handler: http.HandlerFunc(echo)})
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	io.WriteString(c, "GET /chat HTTP/1.1\r\nHost: pitfalls\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	if resp, err := http.ReadResponse(r, nil); err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), demotest.EventTimeout)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	// Shutdown has returned, and the conversation goes on.
	io.WriteString(c, "still there?\n")
	c.SetReadDeadline(time.Now().Add(demotest.EventTimeout))
	if line, err := r.ReadString('\n'); err != nil || line != "still there?\n" {
		t.Errorf("after Shutdown the hijacked connection answered %q, %v; want it still open, echoing", line, err)
	}
}
