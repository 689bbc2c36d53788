package pitfalls

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestShutdownDeadlineCutsNothing: Shutdown does not cut the connections
// that are still busy when its context ends. It returns the context's error
// and leaves them running: whatever cuts them afterwards is the program's
// own doing (Close, or exiting). Both ways a context ends are shown, with a
// real server on a loopback port and a request held by its handler: a
// deadline that passes, and a deadline made from a context that was
// cancelled already, as a signal context is once its signal has come
// (pitfall 15). Each time the request, released after Shutdown returned,
// gets its whole answer.
func TestShutdownDeadlineCutsNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"deadline-passed", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 100*time.Millisecond)
		}, context.DeadlineExceeded},
		{"parent-cancelled", func() (context.Context, context.CancelFunc) {
			signalCtx, signalled := context.WithCancel(context.Background())
			signalled() // the signal has come
			return context.WithTimeout(signalCtx, time.Minute)
		}, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			started := make(chan struct{})
			release := make(chan struct{})
			mux := http.NewServeMux()
			mux.HandleFunc("GET /held", func(w http.ResponseWriter, r *http.Request) {
				close(started)
				select {
				case <-release:
					io.WriteString(w, "held request finished\n")
				case <-r.Context().Done():
				}
			})
			srv := &http.Server{Handler: mux, ReadHeaderTimeout: 2 * time.Second}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go srv.Serve(ln)
			t.Cleanup(func() { srv.Close() })

			type answer struct {
				body string
				err  error
			}
			answered := make(chan answer, 1)
			go func() {
				client := &http.Client{Transport: &http.Transport{}}
				resp, err := client.Get("http://" + ln.Addr().String() + "/held")
				if err != nil {
					answered <- answer{err: err}
					return
				}
				defer resp.Body.Close()
				body, err := io.ReadAll(resp.Body)
				answered <- answer{string(body), err}
			}()
			<-started

			ctx, cancel := tc.ctx()
			defer cancel()
			if err := srv.Shutdown(ctx); !errors.Is(err, tc.want) {
				t.Fatalf("Shutdown returned %v, want %v", err, tc.want)
			}
			// Shutdown has returned; the request is still being served.
			close(release)
			select {
			case a := <-answered:
				if a.err != nil || a.body != "held request finished\n" {
					t.Errorf("the request got %q, %v; want its whole answer: Shutdown cut it", a.body, a.err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("no answer after 30s")
			}
		})
	}
}
