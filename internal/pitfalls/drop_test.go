package pitfalls

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gracefulgo/walkthrough/internal/demotest"
)

// TestFirstRequestDroppedDuringShutdown: a drain completes the requests
// whose headers the server had read before Shutdown began, not every
// request of every open connection. A connection the server accepted just
// before its listener closed, whose first request arrives after Shutdown
// began, is read, dropped unanswered and closed: the client sees EOF on a
// fresh connection, which Transport never retries, GET or POST. Shutdown
// returns nil all the same. (Step 10 avoids it: it keeps serving, with
// Connection: close, during a drain delay before it calls Shutdown.)
func TestFirstRequestDroppedDuringShutdown(t *testing.T) {
	t.Parallel()
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			accepted := make(chan struct{}, 1)
			var handled atomic.Int32
			s := startServer(t, &http.Server{
				ReadHeaderTimeout: demotest.EventTimeout,
				Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					handled.Add(1)
					io.WriteString(w, "order taken\n")
				}),
				ConnState: func(_ net.Conn, state http.ConnState) {
					if state == http.StateNew {
						accepted <- struct{}{}
					}
				},
			})

			// The client's dial returns only once the server has accepted
			// the connection and Shutdown has begun: the request goes out
			// on a connection the drain already knows about.
			var dials atomic.Int32
			shutdownBegun := make(chan struct{})
			dialed := make(chan struct{})
			transport := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				dials.Add(1)
				c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				close(dialed)
				select {
				case <-shutdownBegun:
					return c, nil
				case <-ctx.Done():
					c.Close()
					return nil, ctx.Err()
				}
			}}
			defer transport.CloseIdleConnections()
			resp := make(chan demotest.Response, 1)
			go func() {
				req, _ := http.NewRequest(method, "http://"+s.addr+"/orders", strings.NewReader("one order\n"))
				r, err := (&http.Client{Transport: transport}).Do(req)
				if err != nil {
					resp <- demotest.Response{Err: err}
					return
				}
				defer r.Body.Close()
				body, err := io.ReadAll(r.Body)
				resp <- demotest.Response{Status: r.StatusCode, Body: string(body), Err: err}
			}()
			await(t, dialed, "the client to connect")
			await(t, accepted, "the server to accept the connection")
			shutdownDone := s.shutdownAsync(context.Background())
			// Serve returns once the flag is set and the listener closed.
			if err := await(t, s.serveErr, "Serve to return"); !errors.Is(err, http.ErrServerClosed) {
				t.Fatalf("Serve returned %v, want ErrServerClosed", err)
			}
			close(shutdownBegun)

			r := await(t, resp, "the client's answer")
			if r.Err == nil || !errors.Is(r.Err, io.EOF) && !errors.Is(r.Err, io.ErrUnexpectedEOF) {
				t.Errorf("%s on a connection accepted before Shutdown got %v; want it dropped: EOF", method, r)
			}
			if n := dials.Load(); n != 1 {
				t.Errorf("the client dialed %d times, want 1: Transport does not retry on a fresh connection", n)
			}
			if n := handled.Load(); n != 0 {
				t.Errorf("the handler ran %d times, want 0", n)
			}
			if err := await(t, shutdownDone, "Shutdown to return"); err != nil {
				t.Errorf("Shutdown returned %v, want nil: the drain reports success", err)
			}
			t.Logf("%s: client got %v; Shutdown returned nil", method, r.Err)
		})
	}
}

// TestConnectionCloseDuringShutdown: once Shutdown has begun, every
// response whose header is written carries "Connection: close"
// (chunkWriter.writeHeader reads the flag through doKeepAlives), and the
// connection closes after it; an answer written before carries none.
func TestConnectionCloseDuringShutdown(t *testing.T) {
	t.Parallel()
	slow := newBlockingHandler()
	mux := http.NewServeMux()
	mux.Handle("/slow", slow)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello\n") })
	s := startServer(t, &http.Server{ReadHeaderTimeout: demotest.EventTimeout, Handler: mux})

	before := await(t, getHeaders(s.addr, "/"), "the answer before Shutdown")
	if before.Err != nil || before.Close {
		t.Fatalf("before Shutdown: %+v; want 200 without Connection: close", before)
	}

	resp := getHeaders(s.addr, "/slow")
	await(t, slow.started, "the request to start")
	shutdownDone := s.shutdownAsync(context.Background())
	await(t, s.serveErr, "Serve to return") // the flag is set
	close(slow.release)                     // the handler writes its header now
	during := await(t, resp, "the answer written during the drain")
	if during.Err != nil || !during.Close {
		t.Errorf("answer written during Shutdown: %+v; want 200 with Connection: close", during)
	}
	if err := await(t, shutdownDone, "Shutdown to return"); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// headers is what getHeaders saw. Close is the response's Connection:
// close, which Transport takes out of Header and reports here.
type headers struct {
	Close bool
	Err   error
}

// getHeaders sends GET path on a connection of its own and reports whether
// the answer said Connection: close, its body read to the end.
func getHeaders(addr, path string) <-chan headers {
	ch := make(chan headers, 1)
	go func() {
		transport := &http.Transport{}
		defer transport.CloseIdleConnections()
		r, err := (&http.Client{Transport: transport}).Get("http://" + addr + path)
		if err != nil {
			ch <- headers{Err: err}
			return
		}
		defer r.Body.Close()
		if _, err := io.ReadAll(r.Body); err != nil {
			ch <- headers{Err: err}
			return
		}
		if r.StatusCode != http.StatusOK {
			err = fmt.Errorf("status %d", r.StatusCode)
		}
		ch <- headers{Close: r.Close, Err: err}
	}()
	return ch
}
