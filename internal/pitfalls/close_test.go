package pitfalls

import (
	"context"
	"io"
	"net/http"
	"testing"
	"testing/synctest"
)

// TestCloseCancelsContextOnlyWhenReading: Close closes a connection under
// its handler, but the handler's context is cancelled only by a read or a
// write on that connection failing. While a handler runs, the server keeps
// a read going in the background, to notice a dead connection; it starts
// that read at once for a request without a body, and for one with a body
// only once the handler has read the body to EOF. A handler that has not
// read its body, and neither reads nor writes, is not told that Close cut
// it: its context stays alive until it returns, or until it reads the
// body or writes its answer, and that read or write fails.
//
// The test runs in a synctest bubble, over in-memory connections:
// synctest.Wait returns once every goroutine of the server is blocked, so
// a cancellation that was going to happen has happened.
func TestCloseCancelsContextOnlyWhenReading(t *testing.T) {
	for _, tc := range []struct {
		name      string
		request   string
		handler   func(w http.ResponseWriter, r *http.Request) // runs before the handler waits
		cancelled bool
		after     string // what the handler does after Close: "read" its body or "write"
	}{
		{"GET without a body", "GET / HTTP/1.1\r\nHost: pitfalls\r\n\r\n", nil, true, ""},
		{"POST, body read to EOF", post, readAll, true, ""},
		{"POST, body not read, then read", post, nil, false, "read"},
		{"POST, body half read, then a write", post, readHalf, false, "write"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ln := newPipeListener()
				ready := make(chan context.Context, 1)
				release := make(chan struct{})
				srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if tc.handler != nil {
						tc.handler(w, r)
					}
					ready <- r.Context()
					if _, ok := <-release; ok {
						switch tc.after {
						case "read":
							io.ReadAll(r.Body)
						case "write":
							io.WriteString(w, "too late\n")
							http.NewResponseController(w).Flush()
						}
						<-release
					}
				})}
				go srv.Serve(ln)
				client := ln.dial()
				defer client.Close()
				go io.WriteString(client, tc.request)
				ctx := <-ready

				srv.Close()
				synctest.Wait() // every read that Close made fail has failed
				if got := ctx.Err() != nil; got != tc.cancelled {
					t.Errorf("after Close, the handler's context cancelled: %v, want %v", got, tc.cancelled)
				}
				if tc.cancelled {
					close(release)
					return
				}
				// The handler that was not told reads its body, or writes.
				release <- struct{}{}
				synctest.Wait()
				if ctx.Err() == nil {
					t.Errorf("the handler's own %s after Close did not cancel its context", tc.after)
				}
				close(release)
			})
		})
	}
}

func readAll(_ http.ResponseWriter, r *http.Request)  { io.ReadAll(r.Body) }
func readHalf(_ http.ResponseWriter, r *http.Request) { io.ReadFull(r.Body, make([]byte, 3)) }

// post is a request with a five-byte body.
const post = "POST / HTTP/1.1\r\nHost: pitfalls\r\nContent-Length: 5\r\n\r\nhello"
