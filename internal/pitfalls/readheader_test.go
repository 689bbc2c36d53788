package pitfalls

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"testing/synctest"
	"time"
)

// TestNoReadHeaderTimeout: a client that connects and sends only part of
// its headers keeps its connection in StateNew. The server drops it after
// ReadHeaderTimeout or, when that is zero, after ReadTimeout
// (Server.readHeaderTimeout falls back to it); with neither, it holds a
// goroutine and a file descriptor for as long as it likes. At shutdown,
// Shutdown counts a StateNew connection as busy until it is more than five
// seconds old (golang/go#22682), the age kept in whole Unix seconds: from
// 5 to 6 s after the client connected, depending on where in its second it
// connected, and noticed at the next poll, up to half a second later.
//
// The test runs on synctest's fake clock, which starts on a second
// boundary, so each case chooses where in its second the client connects.
func TestNoReadHeaderTimeout(t *testing.T) {
	t.Run("while serving, an hour later", func(t *testing.T) {
		for _, tc := range []struct {
			name                           string
			readHeaderTimeout, readTimeout time.Duration
			stillOpen                      bool
		}{
			{"no timeouts", 0, 0, true},
			{"ReadHeaderTimeout=2s", 2 * time.Second, 0, false},
			{"ReadTimeout=2s", 0, 2 * time.Second, false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					srv, client := stalledClient(t, tc.readHeaderTimeout, tc.readTimeout, 0)
					defer srv.Close()
					closed := make(chan struct{})
					go func() {
						io.Copy(io.Discard, client) // returns when the server drops it
						close(closed)
					}()
					time.Sleep(time.Hour)
					synctest.Wait()
					select {
					case <-closed:
						if tc.stillOpen {
							t.Error("the server dropped the stalled client; want it held for the hour")
						}
					default:
						if !tc.stillOpen {
							t.Error("the stalled client still holds its connection after an hour; want it dropped")
						}
					}
				})
			})
		}
	})

	t.Run("at shutdown", func(t *testing.T) {
		// A poll falls at most one interval (500 ms, plus up to 10 %
		// jitter) after the connection is released.
		const pollSlack = 550 * time.Millisecond
		for _, tc := range []struct {
			name                           string
			readHeaderTimeout, readTimeout time.Duration
			intoSecond                     time.Duration // where in its second the client connects
			held                           time.Duration // when the connection is released
		}{
			{"no timeouts, connected at the start of a second", 0, 0, 0, 6 * time.Second},
			{"no timeouts, connected 0.9s into a second", 0, 0, 900 * time.Millisecond, 5100 * time.Millisecond},
			{"ReadHeaderTimeout=2s", 2 * time.Second, 0, 0, 2 * time.Second},
			{"ReadTimeout=2s", 0, 2 * time.Second, 0, 2 * time.Second},
		} {
			t.Run(tc.name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					srv, client := stalledClient(t, tc.readHeaderTimeout, tc.readTimeout, tc.intoSecond)
					defer client.Close()
					connected := time.Now()
					if err := srv.Shutdown(context.Background()); err != nil {
						t.Fatal(err)
					}
					took := time.Since(connected)
					t.Logf("the stalled client held Shutdown for %s", took)
					if took < tc.held || took > tc.held+pollSlack {
						t.Errorf("Shutdown returned %s after the client connected, want from %s to %s", took, tc.held, tc.held+pollSlack)
					}
				})
			})
		}
	})
}

// stalledClient starts a server with the given timeouts on an in-memory
// listener, waits until intoSecond past the next whole second of the fake
// clock, connects a client that sends one line of its request and no more,
// and returns once the server has accepted it.
func stalledClient(t *testing.T, readHeaderTimeout, readTimeout, intoSecond time.Duration) (*http.Server, net.Conn) {
	t.Helper()
	ln := newPipeListener()
	accepted := make(chan struct{}, 1)
	srv := &http.Server{
		Handler:           http.NotFoundHandler(),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		ConnState: func(_ net.Conn, state http.ConnState) {
			if state == http.StateNew {
				accepted <- struct{}{}
			}
		},
	}
	go srv.Serve(ln)
	now := time.Now()
	time.Sleep(now.Truncate(time.Second).Add(time.Second).Sub(now) + intoSecond)
	client := ln.dial()
	go io.WriteString(client, "GET / HTTP/1.1\r\n") // and then nothing
	<-accepted
	synctest.Wait()
	return srv, client
}
