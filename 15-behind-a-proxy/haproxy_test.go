package main

import (
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gracefulgo/walkthrough/internal/demotest"
	"github.com/gracefulgo/walkthrough/internal/frontproxy"
	"github.com/gracefulgo/walkthrough/internal/goclient"
	"github.com/gracefulgo/walkthrough/internal/noretry"
	"github.com/gracefulgo/walkthrough/internal/proc"
)

// TestHAProxyCheckMarksDownDuringDrain: with deploy/haproxy.cfg's
// option httpchk GET /readyz (inter 100ms, fall 2), HAProxy marks the
// replica DOWN while its drain delay runs: the runtime API's show servers
// state says so before the program logs drain delay finished, and
// HAProxy's log says why (a check failed with the 503 of /readyz). From
// then on HAProxy sends it nothing new, before Shutdown closes anything.
func TestHAProxyCheckMarksDownDuringDrain(t *testing.T) {
	t.Parallel()
	needProxy(t, "haproxy")
	a := demotest.Start(t, "-drain-delay=1s")
	b := demotest.Start(t, "-drain-delay=0s")
	haproxy := startHAProxy(t, nil, a, b)
	mark := haproxy.Written()
	sent := a.Signal(syscall.SIGTERM)
	down, err := haproxy.AwaitState("s1", frontproxy.Stopped)
	if err != nil {
		t.Fatal(err)
	}
	if l, ok := a.Logged("drain delay finished"); ok {
		t.Errorf("HAProxy marked s1 DOWN only after the drain delay ended (%s): Shutdown ran while HAProxy could still send it requests", l.Raw)
	}
	t.Logf("s1 DOWN %s after SIGTERM", down.Sub(sent).Round(time.Millisecond))
	if _, err := haproxy.AwaitLine("Server app/s1 is DOWN", mark); err != nil {
		t.Error(err)
	} else if why := haproxy.Since(mark, "Layer7 wrong status, code: 503"); len(why) == 0 {
		t.Errorf("HAProxy logged no check of s1 failing with the 503 of /readyz:\n%s", haproxy.Output())
	}
	exitCount(t, a)
	stopCount(t, b)
}

// TestHAProxyRollingUpdate: two replicas replaced one at a time, each
// new one put in a free slot through the runtime API and the old one
// SIGTERMed, under a load of GET and POST that keeps its connections to
// HAProxy alive and never retries. The health check takes each old one
// out during its drain delay: no request fails, and the replicas' counts
// add up to the POSTs answered.
func TestHAProxyRollingUpdate(t *testing.T) {
	t.Parallel()
	needProxy(t, "haproxy")
	haproxy := startHAProxy(t, nil)
	f := &frontproxy.Fleet{Proxy: haproxy, Log: t.Logf, Start: func() (*proc.Process, error) {
		return demotest.Start(t, "-drain-delay=1s").Process, nil
	}}
	for range 2 {
		if _, err := f.Add(); err != nil {
			t.Fatal(err)
		}
	}
	load := frontproxy.StartLoad(haproxy.Listen, 2, true)
	<-load.Answered()
	if err := f.Roll(); err != nil {
		t.Fatal(err)
	}
	res := load.Stop()
	if err := f.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s; count=%d", res, f.Count)
	if res.Failed() != 0 || f.Count != res.POSTs[noretry.OK] {
		t.Errorf("%s %v; count=%d: want no failure, and count equal to the POSTs answered", res, res.FailedExamples, f.Count)
	}
}

// TestHAProxyDelayShorterThanCheck (a known failure): with a drain delay
// shorter than inter × fall, Shutdown closes HAProxy's idle connection to
// a server HAProxy still believes UP, and HAProxy sends the next request
// of the client's session on it. The relay (HAProxy's data connections go
// through it, its checks straight to the program: check-port) holds the
// program's close until HAProxy writes, so this happens every time; the
// check is slowed to inter 1s fall 3 so that the server stays UP however
// slow the machine. The client's POST gets no answer (HAProxy closes the
// client's connection: an EOF it cannot tell from a lost answer), and the
// count shows nobody processed it. deploy/haproxy.cfg's retry-on
// empty-response does send it again, but there is no other server to
// redispatch it to: A is the only one, and its listener is closed.
func TestHAProxyDelayShorterThanCheck(t *testing.T) {
	t.Parallel()
	needProxy(t, "haproxy")
	a := demotest.Start(t, "-drain-delay=0s")
	relay, err := frontproxy.NewRelay(a.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	haproxy := startHAProxy(t, map[string]string{frontproxy.ServerLine: strings.Replace(frontproxy.ServerLine, "inter 100ms fall 2", "inter 1s fall 3", 1)})
	_, port, _ := net.SplitHostPort(a.Addr)
	if out, err := haproxy.Command("set server app/s1 check-port " + port); err != nil {
		t.Fatalf("check-port: %v %s", err, out)
	}
	if err := haproxy.SetServer("s1", relay.Addr); err != nil {
		t.Fatal(err)
	}
	if _, err := haproxy.AwaitState("s1", frontproxy.Running); err != nil {
		t.Fatal(err)
	}
	c := goclient.New(false, nil) // keep-alive: one session, two requests
	if body, kind, err := goclient.Post(c, haproxy.Listen, "/count", ""); kind != noretry.OK || body != "1\n" {
		t.Fatalf("first POST: %s %q %v", kind, body, err)
	}
	conn, ok := relay.AwaitConn(0)
	if !ok {
		t.Fatal("HAProxy opened no connection to A")
	}
	a.Signal(syscall.SIGTERM)
	awaitClosed(t, conn.ClosedByProgram, "A never closed HAProxy's idle connection")
	_, kind, err := goclient.Post(c, haproxy.Listen, "/count", "")
	states, _ := haproxy.ServerStates()
	count := exitCount(t, a)
	t.Logf("second POST: %s (%v), s1 op state %s; count=%d", kind, err, states["s1"].OpState, count)
	if states["s1"].OpState != frontproxy.Running {
		t.Errorf("s1 was no longer UP (%+v): the test must send while HAProxy still believes it up", states["s1"])
	}
	if kind == noretry.OK || kind == noretry.Refused {
		t.Errorf("second POST: %s; the step declares a delay shorter than the check known to fail with an ambiguous error: update the test", kind)
	}
	if count != 1 {
		t.Errorf("count=%d, want 1: the second POST reached no handler", count)
	}
}
