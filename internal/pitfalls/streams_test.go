package pitfalls

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/gracefulgo/walkthrough/internal/demotest"
)

func init() {
	programs["websocket-shutdown-only"] = websocketShutdownOnly
}

// websocketShutdownOnly echoes WebSocket messages and shuts down the way
// step 05 does: Shutdown with a budget, and nothing for the WebSockets.
func websocketShutdownOnly(addr string) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	echo := func(w http.ResponseWriter, r *http.Request) {
		conn, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer conn.CloseNow()
		for {
			typ, msg, err := conn.Read(r.Context())
			if err != nil || conn.Write(r.Context(), typ, msg) != nil {
				return
			}
		}
	}
	srv := &http.Server{Handler: http.HandlerFunc(echo), ReadHeaderTimeout: 2 * time.Second}
	ln := listen(addr)
	go srv.Serve(ln)
	<-ctx.Done()
	slog.Info("shutdown started")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		slog.Error("shutdown forced", "err", err)
		os.Exit(1)
	}
	slog.Info("shutdown finished")
}

// TestWebSocketLeftToDieWithTheProcess: with only Shutdown, a program with
// an open WebSocket exits 0 at once, a clean shutdown by its own account,
// and its client sees the connection drop with no close frame: no status,
// no reason, nothing that says "reconnect elsewhere". Step 11's
// TestWebSocketClosedWithGoingAway is the fix: 1001, then exit 0.
func TestWebSocketLeftToDieWithTheProcess(t *testing.T) {
	p := startProgram(t, "websocket-shutdown-only")
	ctx, cancel := context.WithTimeout(context.Background(), demotest.EventTimeout)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws://"+p.Addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	if err := conn.Write(ctx, websocket.MessageText, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := conn.Read(ctx); err != nil || string(msg) != "hello" {
		t.Fatalf("echo: %q, %v", msg, err)
	}
	p.Signal(syscall.SIGTERM)
	if exit := p.WaitExit(); exit.Code != 0 {
		t.Errorf("%s, want exit status 0: Shutdown had nothing to wait for", exit)
	}
	_, _, err = conn.Read(ctx)
	if code := websocket.CloseStatus(err); code != -1 {
		t.Errorf("the client got a close frame with status %v; want none, only the connection dropped (%v)", code, err)
	}
}

// TestServerWideWriteTimeoutCutsStreams: WriteTimeout is a deadline for
// the whole response, set when the request has been read. An event stream
// that only writes and flushes is cut when it passes, however healthy;
// one that moves its own deadline on at each event with
// http.ResponseController lives on. Step 11's TestStreamOutlivesWriteTimeout
// proves the fix in the program.
func TestServerWideWriteTimeoutCutsStreams(t *testing.T) {
	t.Parallel()
	const writeTimeout = 200 * time.Millisecond
	for _, extend := range []bool{false, true} {
		t.Run(fmt.Sprintf("SetWriteDeadline-per-event=%v", extend), func(t *testing.T) {
			t.Parallel()
			stream := func(w http.ResponseWriter, r *http.Request) {
				rc := http.NewResponseController(w)
				w.Header().Set("Content-Type", "text/event-stream")
				for n := 1; ; n++ {
					if extend {
						if err := rc.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
							return
						}
					}
					fmt.Fprintf(w, "data: %d\n\n", n)
					if rc.Flush() != nil {
						return
					}
					select {
					case <-time.After(writeTimeout / 10):
					case <-r.Context().Done():
						return
					}
				}
			}
			s := startServer(t, &http.Server{Handler: http.HandlerFunc(stream), ReadHeaderTimeout: time.Second, WriteTimeout: writeTimeout})
			resp, err := http.Get("http://" + s.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			lines := bufio.NewReader(resp.Body)
			opened := time.Now()
			var readErr error
			// With its own deadlines the stream must outlive WriteTimeout
			// three times over; without, it must end, and the limit is
			// only a hang bound.
			limit := 3 * writeTimeout
			if !extend {
				limit = demotest.EventTimeout
			}
			for readErr == nil && time.Since(opened) < limit {
				_, readErr = lines.ReadString('\n')
			}
			lived := time.Since(opened).Round(10 * time.Millisecond)
			switch {
			case !extend && readErr == nil:
				t.Errorf("the stream lived %s past WriteTimeout %s: want it cut", lived, writeTimeout)
			case !extend && readErr != io.ErrUnexpectedEOF:
				t.Errorf("the stream ended after %s with %v, want unexpected EOF (cut mid-response)", lived, readErr)
			case extend && readErr != nil:
				t.Errorf("with its own deadline per event the stream was cut after %s: %v", lived, readErr)
			}
		})
	}
}

// TestBaseContextCancelEndsEveryRequest: a base context that the shutdown
// cancels does end the streams, but it is the parent of every request's
// context, so it also cancels the ordinary requests in flight, which the
// drain was meant to let finish. Step 11 ends its streams on a context of
// their own, cancelled by RegisterOnShutdown.
func TestBaseContextCancelEndsEveryRequest(t *testing.T) {
	t.Parallel()
	base, endStreams := context.WithCancel(context.Background())
	started, cancelled := make(chan struct{}), make(chan bool, 1)
	slow := func(w http.ResponseWriter, r *http.Request) {
		close(started)
		select {
		case <-time.After(demotest.EventTimeout):
			cancelled <- false
			fmt.Fprintln(w, "finished")
		case <-r.Context().Done():
			// Cancelled with the base: the work stops halfway.
			cancelled <- true
		}
	}
	s := startServer(t, &http.Server{
		Handler:           http.HandlerFunc(slow),
		ReadHeaderTimeout: time.Second,
		BaseContext:       func(net.Listener) context.Context { return base },
	})
	s.get("/slow")
	<-started
	endStreams() // what a shutdown would do, to end the streams
	if !<-cancelled {
		t.Errorf("the ordinary request in flight finished its work: want it cancelled with the base context")
	}
}
