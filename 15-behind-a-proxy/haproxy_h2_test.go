package main

import (
	"net/http"
	"syscall"
	"testing"

	"github.com/gracefulgo/walkthrough/internal/demotest"
	"github.com/gracefulgo/walkthrough/internal/frontproxy"
	"github.com/gracefulgo/walkthrough/internal/goclient"
	"github.com/gracefulgo/walkthrough/internal/noretry"
)

// HAProxy speaking HTTP/2 to the program (proto h2), as a replica's
// GOAWAY reaches it. The variants of deploy/haproxy.cfg these tests run:
//
//   - h2Servers: the server slots with proto h2 and no health check, so
//     that what a test forces does not depend on when a check notices the
//     replica going (and the relay, which speaks HTTP/2 only, sees no
//     HTTP/1.1 check); balance first sends every request to s1 while it
//     is up, so that the request the race is about goes to the replica
//     the relay is in front of, and a retry that redispatches (option
//     redispatch 1: on every retry) goes to s2, the only other.
//   - noEmptyResponse: HAProxy's default retry-on, conn-failure alone,
//     which deploy/haproxy.cfg had before: a request is resent only when
//     its connection failed before anything was sent.
var (
	h2Servers = map[string]string{
		frontproxy.ServerLine: "server-template s 4 127.0.0.1:9 disabled proto h2 pool-purge-delay 5s",
		"balance roundrobin":  "balance first",
	}
	noEmptyResponse = map[string]string{retryOn: "retry-on conn-failure"}
)

// retryOn is deploy/haproxy.cfg's retry-on line.
const retryOn = "retry-on conn-failure empty-response"

func with(maps ...map[string]string) map[string]string {
	all := map[string]string{}
	for _, m := range maps {
		for k, v := range m {
			all[k] = v
		}
	}
	return all
}

// TestHAProxyGoAwayRefusedStream: the race HTTP/2 leaves. HAProxy keeps
// its HTTP/2 connection to replica A alive; A is SIGTERMed and sends a
// GOAWAY whose last stream is the one it has answered; the relay holds
// that GOAWAY until HAProxy opens its next stream on the connection, as
// the network can when the two cross. A drops that stream unread (its id
// is above the GOAWAY's last stream: h2_bundle.go's processFrame), and
// HAProxy learns from the GOAWAY that it was refused. HAProxy 2.6 gives a
// refused stream the error a broken connection gets (mux_h2.c,
// h2s_wake_one_stream), so what the client is told depends on retry-on:
//
//   - conn-failure alone (HAProxy's default): nothing is resent. The
//     client's second POST on its kept-alive connection gets an EOF
//     (http_ana.c's abort_keep_alive: close the client's connection so
//     that it may retry, and log nothing), for a POST nobody processed.
//   - conn-failure empty-response (deploy/haproxy.cfg's), with option
//     redispatch 1: HAProxy sends it again (a read error before any
//     answer is an empty response since 2.6.10), to B, which answers it:
//     counted once.
func TestHAProxyGoAwayRefusedStream(t *testing.T) {
	t.Parallel()
	needProxy(t, "haproxy")
	for _, tc := range []struct {
		name    string
		replace map[string]string
		want    noretry.Kind
		countB  int
	}{
		{name: "conn-failure", replace: with(h2Servers, noEmptyResponse), want: noretry.EOF, countB: 0},
		{name: "conn-failure-empty-response", replace: h2Servers, want: noretry.OK, countB: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := demotest.Start(t, "-drain-delay=0s")
			b := demotest.Start(t, "-drain-delay=0s")
			relay, err := frontproxy.NewGoAwayRelay(a.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer relay.Close()
			haproxy := startHAProxy(t, tc.replace)
			for slot, addr := range map[string]string{"s1": relay.Addr, "s2": b.Addr} {
				if err := haproxy.SetServer(slot, addr); err != nil {
					t.Fatal(err)
				}
				if _, err := haproxy.AwaitState(slot, frontproxy.Running); err != nil {
					t.Fatal(err)
				}
			}
			c := goclient.New(false, nil) // HTTP/1.1, kept alive: one session, two requests
			if body, kind, err := goclient.Post(c, haproxy.Listen, "/count", ""); kind != noretry.OK || body != "1\n" {
				t.Fatalf("first POST: %s %q %v, want 200 1 from A", kind, body, err)
			}
			conn, ok := relay.AwaitConn(0)
			if !ok {
				t.Fatal("HAProxy opened no connection to A")
			}
			a.Signal(syscall.SIGTERM)
			awaitClosed(t, conn.GoAwayHeld, "A sent HAProxy no GOAWAY")
			body, kind, err := goclient.Post(c, haproxy.Listen, "/count", "")
			countA := exitCount(t, a)
			countB := stopCount(t, b)
			t.Logf("second POST: %s %q (%v); A count=%d, B count=%d", kind, body, err, countA, countB)
			if n := len(relay.Conns()); n != 1 {
				t.Errorf("HAProxy opened %d connections to A, want 1: the second POST must go on the connection A sent its GOAWAY on", n)
			}
			if kind != tc.want || countA != 1 || countB != tc.countB {
				t.Errorf("second POST: %s; A count=%d, B count=%d; want %s, 1 and %d", kind, countA, countB, tc.want, tc.countB)
			}
			if tc.want == noretry.OK && body != "1\n" {
				t.Errorf("second POST answered %q, want B's first count, 1", body)
			}
		})
	}
}

// TestHAProxyRetryDoesTheWorkTwice: the catch, pitfall 25 through
// HAProxy. retry-on empty-response cannot tell a stream A refused from
// one A processed and then cut: both are a read error with no answer
// (mux_h2.c gives both SE_FL_ERROR), and HAProxy's L7 retry does not look
// at the method. Here A processed it: a POST /count?d=1s counts at once,
// then waits, and A's shutdown deadline (300ms) cuts it. HAProxy sends it
// to B, which counts it again and answers 200: one POST, counted twice.
// With conn-failure alone the same POST is a 502, for a POST that was
// processed: the client knows it failed, not whether the work was done.
func TestHAProxyRetryDoesTheWorkTwice(t *testing.T) {
	t.Parallel()
	needProxy(t, "haproxy")
	for _, tc := range []struct {
		name       string
		replace    map[string]string
		wantStatus int
		wantB      int
	}{
		{name: "conn-failure-empty-response", replace: h2Servers, wantStatus: http.StatusOK, wantB: 1},
		{name: "conn-failure", replace: with(h2Servers, noEmptyResponse), wantStatus: http.StatusBadGateway, wantB: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := demotest.Start(t, "-drain-delay=0s", "-shutdown-timeout=300ms")
			b := demotest.Start(t, "-drain-delay=0s")
			haproxy := startHAProxy(t, tc.replace, a, b)
			type answer struct {
				status int
				body   string
			}
			done := make(chan answer, 1)
			go func() {
				resp, err := client.Post("http://"+haproxy.Listen+"/count?d=1s", "text/plain", http.NoBody)
				if err != nil {
					done <- answer{body: err.Error()}
					return
				}
				defer resp.Body.Close()
				done <- answer{resp.StatusCode, bodyOf(resp)}
			}()
			a.WaitLog("count request waiting")
			a.Signal(syscall.SIGTERM)
			r := <-done
			countA := forcedCount(t, a)
			countB := stopCount(t, b)
			t.Logf("POST: %d %q; A count=%d, B count=%d", r.status, r.body, countA, countB)
			if r.status != tc.wantStatus || countA != 1 || countB != tc.wantB {
				t.Errorf("POST: %d; A count=%d, B count=%d; want %d, 1 and %d", r.status, countA, countB, tc.wantStatus, tc.wantB)
			}
		})
	}
}
