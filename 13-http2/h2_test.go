package main

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/gracefulgo/walkthrough/internal/demotest"
	"github.com/gracefulgo/walkthrough/internal/goclient"
	"github.com/gracefulgo/walkthrough/internal/noretry"
)

// A slow request over HTTP/2 in flight at SIGTERM gets its 200, and the
// program exits 0: the drain of step 05, on an HTTP/2 stream.
func TestHTTP2Drain(t *testing.T) {
	t.Parallel()
	p := demotest.Start(t)
	c := goClient(true, nil)
	type answer struct {
		proto, body string
		err         error
	}
	done := make(chan answer, 1)
	go func() {
		resp, err := c.Get("http://" + p.Addr + "/slow?d=1s")
		if err != nil {
			done <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, _ := readAll(resp)
		done <- answer{resp.Proto, b, nil}
	}()
	p.WaitLog("slow request started")
	p.Signal(syscall.SIGTERM)
	a := <-done
	if a.err != nil || a.proto != "HTTP/2.0" || !strings.Contains(a.body, "slow request finished") {
		t.Errorf("GET /slow over h2c = %q %q, %v; want its answer over HTTP/2.0", a.proto, a.body, a.err)
	}
	if e := p.WaitExit(); e.Code != 0 {
		t.Errorf("exit: %v, want 0", e)
	}
}

// Shutdown sends GOAWAY on an HTTP/2 connection, seen here on the wire by
// a raw client: the last stream the server will process is the one in
// flight, the error code NO_ERROR, and that stream's answer still follows.
func TestGoAwayOnTheWire(t *testing.T) {
	t.Parallel()
	p := demotest.Start(t)
	c := dialH2(t, p.Addr)
	c.get(t, 1, "/slow?d=1s")
	p.WaitLog("slow request started")
	p.Signal(syscall.SIGTERM)
	f, _ := c.until(t, frameGoAway)
	if last, code := f.goAway(); last != 1 || code != errCodeNo {
		t.Errorf("GOAWAY last stream %d, error code %d; want 1 and NO_ERROR (0)", last, code)
	}
	data := ""
	for {
		f := c.next(t)
		if f.Type == frameData && f.Stream == 1 {
			data += string(f.Payload)
			if f.Flags&flagEndStream != 0 {
				break
			}
		}
	}
	if !strings.Contains(data, "slow request finished") {
		t.Errorf("stream 1 after GOAWAY: %q, want its answer", data)
	}
	if e := p.WaitExit(); e.Code != 0 {
		t.Errorf("exit: %v, want 0", e)
	}
}

// The keep-alive race, made to happen on purpose (see finHolder): a client
// has POSTed once; at SIGTERM the server closes the idle connection, and
// the client writes its next POST /count on it before it learns of the
// close. The server never processes that POST (count=1), but what the
// client is told depends on the protocol:
//
//   - HTTP/1.1: an EOF it cannot tell from a POST processed and its answer
//     lost, so it may not send it again. The step's known failure.
//   - HTTP/1.1 with an Idempotency-Key: net/http sends it again on a new
//     connection, which is refused. The refusal is no proof that the first
//     copy was never processed: shouldRetryRequest (transport.go) replays
//     a keyed request whose handler ran and was cut by Close too. count=1
//     is the proof, with Shutdown dropping unrun a request read after
//     inShutdown is set (conn.serve, server.go). The replay is safe only
//     if the server honours the key.
//   - h2c: the GOAWAY came before the close; net/http sends it on a new
//     connection, refused too.
func TestKeepAliveRace(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		args     []string
		h2c      bool
		key      string
		knownBad bool
	}{
		{name: "http1", args: []string{"-http2=false"}, knownBad: true},
		{name: "http1-idempotency-key", args: []string{"-http2=false"}, key: "race-1"},
		{name: "h2c", h2c: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := demotest.Start(t, tc.args...)
			var holder finHolder
			c := goClient(tc.h2c, holder.dial)
			if body, kind, err := post(c, p.Addr, tc.key); kind != noretry.OK || body != "1\n" {
				t.Fatalf("first POST /count: %s %q %v", kind, body, err)
			}
			p.Signal(syscall.SIGTERM)
			holder.awaitEnd(t)
			_, kind, err := post(c, p.Addr, tc.key)
			if e := p.WaitExit(); e.Code != 0 {
				t.Errorf("exit: %v, want 0", e)
			}
			n := finishedCount(t, p)
			t.Logf("shutdown finished with count=%d", n)
			if n != 1 {
				t.Errorf("count=%d, want 1: the second POST reached no handler", n)
			}
			switch {
			case tc.knownBad && !ambiguous(kind):
				t.Errorf("second POST: %s (%v); the step declares HTTP/1.1 without a key known to fail with an ambiguous error: update the test", kind, err)
			case tc.knownBad:
				t.Logf("fails as declared: %s (%v), and the client cannot know the server never did the work", kind, err)
			case kind != noretry.Refused:
				t.Errorf("second POST: %s (%v), want refused: sent again by net/http, and that copy refused (count=1 above is what proves the first was never processed)", kind, err)
			}
		})
	}
}

// A no-retry load of POST /count through SIGTERM: every lane POSTs until a
// dial is refused. Over h2c, and over HTTP/1.1 with an Idempotency-Key, no
// failure on a reused connection is ambiguous (net/http sends the request
// again, after a GOAWAY or, with the key, after the race's EOF), and count
// equals the answers. /count does not honour the key: count is what shows
// that no copy net/http sent again had been run before. Over
// HTTP/1.1 without a key the race may or may not happen in a given run:
// its result is logged, not asserted (TestKeepAliveRace asserts it).
//
// An ambiguous failure on a fresh connection is counted apart, and not
// asserted: Shutdown marks the server as shutting down before it closes
// the listener (server.go, Shutdown: inShutdown.Store, then
// closeListenersLocked), so a connection that ends after its answer in
// that moment sends its client to dial again into a listener about to
// close, and net/http never sends a request again on a fresh connection.
// One ambiguous EOF in the key's lane failed a soak run once (go1.27.3,
// both cores busy), and 80 runs after did not show it again; whether it
// was on a fresh connection is what this count now tells.
func TestPOSTLoadThroughSIGTERM(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		args   []string
		h2c    bool
		key    bool
		assert bool
	}{
		{name: "h2c", h2c: true, assert: true},
		{name: "http1-idempotency-key", args: []string{"-http2=false"}, key: true, assert: true},
		{name: "http1", args: []string{"-http2=false"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := demotest.Start(t, tc.args...)
			n, onFresh := postLoad(t, p, 8, tc.h2c, tc.key)
			if e := p.WaitExit(); e.Code != 0 {
				t.Errorf("exit: %v, want 0", e)
			}
			count := finishedCount(t, p)
			amb := n.Failed() - n[noretry.Refused] - onFresh
			t.Logf("%s: %s (of the ambiguous, %d on a fresh connection); count=%d", tc.name, n, onFresh, count)
			if !tc.assert {
				return
			}
			if amb != 0 || count != n[noretry.OK] {
				t.Errorf("%s, %d of them ambiguous on a reused connection; count=%d: want none, and count equal to the answers", n, amb, count)
			}
		})
	}
}

// postLoad runs lanes of POST /count, each with its own client, until
// each has had a dial refused. It sends SIGTERM once every lane has had an
// answer.
func postLoad(t *testing.T, p *demotest.Process, lanes int, h2c, key bool) (total noretry.Counts, ambiguousOnFresh int) {
	t.Helper()
	total = noretry.Counts{}
	var (
		mu       sync.Mutex
		answered sync.WaitGroup
		done     sync.WaitGroup
	)
	answered.Add(lanes)
	for lane := range lanes {
		done.Add(1)
		go func() {
			defer done.Done()
			c := goClient(h2c, nil)
			first := true
			for i := 0; ; i++ {
				k := ""
				if key {
					k = fmt.Sprintf("lane-%d-%d", lane, i)
				}
				r := goclient.PostOn(c, p.Addr, "/count", k)
				kind := r.Kind
				mu.Lock()
				total[kind]++
				if r.Fresh && ambiguous(kind) {
					ambiguousOnFresh++
				}
				mu.Unlock()
				if first && kind == noretry.OK {
					first = false
					answered.Done()
				}
				if kind == noretry.Refused {
					if first {
						answered.Done()
					}
					return
				}
			}
		}()
	}
	answered.Wait()
	p.Signal(syscall.SIGTERM)
	done.Wait()
	return total, ambiguousOnFresh
}

// finishedCount is the count= of the program's last line, shutdown
// finished or shutdown forced.
func finishedCount(t *testing.T, p *demotest.Process) int {
	t.Helper()
	for _, msg := range []string{"shutdown finished", "shutdown forced"} {
		if l, ok := p.Logged(msg); ok {
			n, err := strconv.Atoi(l.Attr("count"))
			if err != nil {
				t.Fatalf("%s: count=%q: %v", msg, l.Attr("count"), err)
			}
			return n
		}
	}
	t.Fatalf("no shutdown line with a count:\n%s", p.Output())
	return 0
}
