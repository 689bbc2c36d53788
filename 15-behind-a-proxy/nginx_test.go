package main

import (
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gracefulgo/walkthrough/internal/demotest"
	"github.com/gracefulgo/walkthrough/internal/frontproxy"
	"github.com/gracefulgo/walkthrough/internal/noretry"
)

// oneWorker makes nginx run one worker: each worker has its own pool of
// idle upstream connections, and the forced race needs the request that
// crosses the close to go through the worker that holds the connection.
var oneWorker = map[string]string{"worker_processes auto;": "worker_processes 1;"}

// TestNginxKeepAliveRace: nginx keeps its connection to replica A alive
// (upstream keepalive), A is SIGTERMed, and the relay holds A's close
// until nginx sends its next request on that connection: the keep-alive
// race, between nginx and the program, every time. B is a backup server,
// so that nginx sends everything to A while A is in its list. A never sees
// that request, and what its client is told depends on the method:
//
//   - GET: nginx sends it to the next server itself (proxy_next_upstream
//     error), and B answers 200.
//   - POST: nginx does not (a request that was sent may have been
//     processed; nginx 1.9.13 and later): 502, for a POST that A's count
//     and B's show nobody processed. The step's known failure behind
//     nginx.
//   - POST to a program with step 10's drain delay: the same 502. The
//     connection stays idle through the whole delay, so no response can
//     carry it Connection: close, and Shutdown closes it.
func TestNginxKeepAliveRace(t *testing.T) {
	t.Parallel()
	needProxy(t, "nginx")
	for _, tc := range []struct {
		name, method string
		delay        string
		want         int
	}{
		{name: "GET", method: http.MethodGet, delay: "0s", want: http.StatusOK},
		{name: "POST", method: http.MethodPost, delay: "0s", want: http.StatusBadGateway},
		{name: "POST-drain-delay-alone", method: http.MethodPost, delay: "300ms", want: http.StatusBadGateway},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := demotest.Start(t, "-drain-delay="+tc.delay)
			b := demotest.Start(t, "-drain-delay=0s")
			relay, err := frontproxy.NewRelay(a.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer relay.Close()
			nginx := startNginx(t, oneWorker, server(relay.Addr), server(b.Addr, "backup"))

			if status, body := send(t, nginx, tc.method); status != http.StatusOK {
				t.Fatalf("first %s: %d %q, want 200 from A", tc.method, status, body)
			}
			conn, ok := relay.AwaitConn(0)
			if !ok {
				t.Fatal("nginx opened no connection to A")
			}
			a.Signal(syscall.SIGTERM)
			awaitClosed(t, conn.ClosedByProgram, "A never closed nginx's idle connection")
			countA := exitCount(t, a)

			mark := nginx.Written()
			status, body := send(t, nginx, tc.method)
			if _, err := nginx.AwaitLine("upstream prematurely closed connection", mark); err != nil {
				t.Errorf("the request did not cross A's close: %v", err)
			}
			countB := stopCount(t, b)
			t.Logf("second %s: %d %q; A count=%d, B count=%d", tc.method, status, body, countA, countB)
			if status != tc.want {
				t.Errorf("second %s: %d %q, want %d", tc.method, status, body, tc.want)
			}
			if tc.method == http.MethodGet && !strings.Contains(body, pidOf(b)) {
				t.Errorf("second GET answered %q, want B's (%s)", body, pidOf(b))
			}
			if tc.method == http.MethodPost && (countA != 1 || countB != 0) {
				t.Errorf("A count=%d, B count=%d: want 1 and 0, the 502'd POST processed by nobody", countA, countB)
			}
		})
	}
}

// TestNginxReloadBeforeSIGTERM: the fix behind nginx. The deploy marks A
// down and reloads nginx before it sends A SIGTERM, and waits until the
// reload has reached every worker (each old worker exited): the old worker
// closes its idle connection to A itself, so no request can cross A's
// close, and the forced race of TestNginxKeepAliveRace ends. A POST after
// A's shutdown goes to B, and is answered.
func TestNginxReloadBeforeSIGTERM(t *testing.T) {
	t.Parallel()
	needProxy(t, "nginx")
	a := demotest.Start(t, "-drain-delay=300ms")
	b := demotest.Start(t, "-drain-delay=0s")
	relay, err := frontproxy.NewRelay(a.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	nginx := startNginx(t, oneWorker, server(relay.Addr), server(b.Addr, "backup"))
	if status, body := send(t, nginx, http.MethodPost); status != http.StatusOK || body != "1\n" {
		t.Fatalf("first POST: %d %q, want 200 1 from A", status, body)
	}
	conn, ok := relay.AwaitConn(0)
	if !ok {
		t.Fatal("nginx opened no connection to A")
	}
	took, err := nginx.Reload([]string{server(relay.Addr, "down"), server(b.Addr)})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the reload reached every worker in %s", took.Round(time.Millisecond))
	awaitClosed(t, conn.ClosedByProxy, "the old worker did not close its idle connection to A")
	a.Signal(syscall.SIGTERM)
	countA := exitCount(t, a)
	status, body := send(t, nginx, http.MethodPost)
	countB := stopCount(t, b)
	if status != http.StatusOK || body != "1\n" {
		t.Errorf("POST after A's shutdown: %d %q, want 200 1 from B", status, body)
	}
	if countA != 1 || countB != 1 {
		t.Errorf("A count=%d, B count=%d, want 1 and 1", countA, countB)
	}
	if n := len(relay.Conns()); n != 1 {
		t.Errorf("nginx opened %d connections to A, want 1: after the reload it must send A nothing", n)
	}
}

// TestNginxRollingUpdate: two replicas replaced one at a time under a load
// of GET and POST that never retries, as the fix does it: start the new
// replica, reload nginx with it in the list and the old one out, wait for
// the reload to reach every worker, then SIGTERM the old one, whose drain
// delay covers the reload in a deploy that does not wait. No request
// fails, and the replicas' counts add up to the POSTs answered.
func TestNginxRollingUpdate(t *testing.T) {
	t.Parallel()
	needProxy(t, "nginx")
	live := []*demotest.Process{demotest.Start(t, "-drain-delay=300ms"), demotest.Start(t, "-drain-delay=300ms")}
	servers := func() []string {
		var s []string
		for _, r := range live {
			s = append(s, server(r.Addr))
		}
		return s
	}
	nginx := startNginx(t, nil, servers()...)
	load := frontproxy.StartLoad(nginx.Listen, 2, false)
	<-load.Answered()
	counted := 0
	for i := range live {
		old := live[i]
		live[i] = demotest.Start(t, "-drain-delay=300ms")
		took, err := nginx.Reload(servers())
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("roll %d: the reload reached every worker in %s", i+1, took.Round(time.Millisecond))
		counted += stopCount(t, old)
	}
	res := load.Stop()
	for _, r := range live {
		counted += stopCount(t, r)
	}
	t.Logf("%s; count=%d", res, counted)
	if res.Failed() != 0 || counted != res.POSTs[noretry.OK] {
		t.Errorf("%s %v; count=%d: want no failure, and count equal to the POSTs answered", res, res.FailedExamples, counted)
	}
}

// TestNginxNonIdempotentDoesTheWorkTwice: pitfall 25 through a proxy.
// With proxy_next_upstream ... non_idempotent, nginx sends a POST to the
// next server when the first one closed the connection without an answer,
// and it cannot know whether the first one did the work. Here it did: a
// POST /count?d=1s counts at once, then waits, and A's shutdown deadline
// (300ms) cuts it. B counts it again and answers 200: one POST, counted
// twice. With deploy/nginx.conf's line (no non_idempotent) the same POST
// is a 502, for a POST that was processed: the client knows it failed,
// not whether the work was done, and must not assume it was not.
func TestNginxNonIdempotentDoesTheWorkTwice(t *testing.T) {
	t.Parallel()
	needProxy(t, "nginx")
	for _, tc := range []struct {
		name       string
		replace    map[string]string
		wantStatus int
		wantB      int
	}{
		{name: "non_idempotent", replace: map[string]string{"proxy_next_upstream error timeout;": "proxy_next_upstream error timeout non_idempotent;"},
			wantStatus: http.StatusOK, wantB: 1},
		{name: "deploy-nginx.conf", wantStatus: http.StatusBadGateway, wantB: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := demotest.Start(t, "-drain-delay=0s", "-shutdown-timeout=300ms")
			b := demotest.Start(t, "-drain-delay=0s")
			nginx := startNginx(t, tc.replace, server(a.Addr), server(b.Addr, "backup"))
			type answer struct {
				status int
				body   string
			}
			done := make(chan answer, 1)
			go func() {
				resp, err := client.Post("http://"+nginx.Listen+"/count?d=1s", "text/plain", http.NoBody)
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

// awaitClosed waits for ch, or fails with msg after EventTimeout.
func awaitClosed(t *testing.T, ch <-chan struct{}, msg string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(demotest.EventTimeout):
		t.Fatalf("%s within %s", msg, demotest.EventTimeout)
	}
}

// TestNginxDrainDelayAloneAcceptQueue: why step 10's drain delay alone
// only narrows the race behind nginx, when the deploy SIGTERMs first and
// nginx still lists the replica. During the delay the program answers
// every request with Connection: close (so that no connection is idle when
// Shutdown runs), and nginx, whose pooled connection each answer closes,
// opens a new connection for each next request: two POSTs, two
// connections. A connect completes in the kernel before the program
// accepts it, and nginx writes its request at once. One that completes
// as the delay ends waits in the listener's accept queue when Shutdown
// closes the listener, and the kernel resets it, with nginx's request in
// it unread. The relay plays that queue (HoldDials): it takes nginx's
// third connection and passes it on only once the program has stopped
// listening. The POST is a 502 that nobody processed.
func TestNginxDrainDelayAloneAcceptQueue(t *testing.T) {
	t.Parallel()
	needProxy(t, "nginx")
	// Long enough for two requests through nginx on a busy machine; the
	// test checks that they came within it.
	a := demotest.Start(t, "-drain-delay=3s")
	relay, err := frontproxy.NewRelay(a.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	nginx := startNginx(t, oneWorker, server(relay.Addr))
	a.Signal(syscall.SIGTERM)
	a.WaitLog("drain delay started")
	for i := 1; i <= 2; i++ {
		if status, body := send(t, nginx, http.MethodPost); status != http.StatusOK || body != strconv.Itoa(i)+"\n" {
			t.Fatalf("POST %d during the drain delay: %d %q, want 200 %d", i, status, body, i)
		}
	}
	if l, ok := a.Logged("drain delay finished"); ok {
		t.Fatalf("the drain delay ended before the two POSTs were answered (%s): the test needs them inside it", l.Raw)
	}
	if n := len(relay.Conns()); n != 2 {
		t.Errorf("nginx opened %d connections for two POSTs during the drain delay, want 2: each answer's Connection: close ends one", n)
	}
	release := make(chan struct{})
	relay.HoldDials(release)
	type answer struct {
		status int
		body   string
	}
	done := make(chan answer, 1)
	go func() {
		resp, err := client.Post("http://"+nginx.Listen+"/count", "text/plain", strings.NewReader("one more"))
		if err != nil {
			done <- answer{body: err.Error()}
			return
		}
		defer resp.Body.Close()
		done <- answer{resp.StatusCode, bodyOf(resp)}
	}()
	if _, ok := relay.AwaitConn(2); !ok {
		t.Fatal("nginx opened no third connection")
	}
	a.WaitLog("drain delay finished")
	awaitRefused(t, a.Addr)
	mark := nginx.Written()
	close(release)
	r := <-done
	count := exitCount(t, a)
	lines := nginx.Since(mark, "upstream")
	t.Logf("third POST: %d; count=%d; nginx: %v", r.status, count, lines)
	if r.status != http.StatusBadGateway || count != 2 {
		t.Errorf("third POST: %d %q; count=%d; want 502 and 2, a POST nobody processed", r.status, r.body, count)
	}
	if !strings.Contains(strings.Join(lines, "\n"), "Connection reset by peer") {
		t.Errorf("nginx logged no reset for the third POST: %v", lines)
	}
}

// awaitRefused waits until addr refuses connections: the program's
// listener has closed.
func awaitRefused(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(demotest.EventTimeout)
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("%s still accepts connections after %s", addr, demotest.EventTimeout)
		}
		time.Sleep(5 * time.Millisecond) // poll interval while the listener closes
	}
}
