package main

import (
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/gracefulgo/walkthrough/internal/demotest"
	"github.com/gracefulgo/walkthrough/internal/frontproxy"
)

// The helpers of nginx_test.go and haproxy_test.go: the real proxies are
// started by internal/frontproxy, with the step's own deploy/ files.

// needProxy skips the test when the proxy is not installed, saying how to
// install it; under CI=true it fails instead, as CI must run it.
func needProxy(t *testing.T, name string) {
	t.Helper()
	_ = os.Getenv("TOOLS_PRESENT") // so that make test does not replay a skip once the proxy is installed (tools/present.sh)
	if _, err := frontproxy.Lookup(name); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v; CI must run this test", err)
		}
		t.Skip(err)
	}
}

// startNginx runs nginx with deploy/nginx.conf (lines replaced as given)
// in front of servers, and stops it when the test ends.
func startNginx(t *testing.T, replace map[string]string, servers ...string) *frontproxy.Proxy {
	t.Helper()
	p, err := frontproxy.StartNginx(frontproxy.Config{File: "deploy/nginx.conf", Dir: t.TempDir(), Listen: demotest.FreeAddr(t), Replace: replace}, servers)
	if err != nil {
		t.Fatal(err)
	}
	stopWithTest(t, p)
	return p
}

// startHAProxy runs HAProxy with deploy/haproxy.cfg (lines replaced as
// given), with replica i in slot s(i+1), and returns once each is UP.
func startHAProxy(t *testing.T, replace map[string]string, replicas ...*demotest.Process) *frontproxy.Proxy {
	t.Helper()
	p, err := frontproxy.StartHAProxy(frontproxy.Config{File: "deploy/haproxy.cfg", Dir: t.TempDir(), Listen: demotest.FreeAddr(t), Replace: replace})
	if err != nil {
		t.Fatal(err)
	}
	stopWithTest(t, p)
	for i, r := range replicas {
		slot := "s" + strconv.Itoa(i+1)
		if err := p.SetServer(slot, r.Addr); err != nil {
			t.Fatal(err)
		}
		if _, err := p.AwaitState(slot, frontproxy.Running); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func stopWithTest(t *testing.T, p *frontproxy.Proxy) {
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("%s output:\n%s", p.Name, p.Output())
		}
	})
}

// server is an upstream line of nginx.conf's servers.conf.
func server(addr string, params ...string) string {
	return strings.Join(append([]string{"server", addr, "max_fails=0"}, params...), " ")
}

// client sends each request on a new connection: the race between the
// client and the proxy is not what these tests are about.
var client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// send sends GET / or POST /count through the proxy and returns the
// status and body; a failed connection is the test's failure.
func send(t *testing.T, p *frontproxy.Proxy, method string) (int, string) {
	t.Helper()
	var resp *http.Response
	var err error
	if method == http.MethodPost {
		resp, err = client.Post("http://"+p.Listen+"/count", "text/plain", strings.NewReader("one more"))
	} else {
		resp, err = client.Get("http://" + p.Listen + "/")
	}
	if err != nil {
		t.Fatalf("%s through %s: %v", method, p.Name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s through %s: reading the body: %v", method, p.Name, err)
	}
	return resp.StatusCode, string(b)
}

// stopCount sends SIGTERM to a replica, waits for its exit, and returns
// its count=: how many POST /count it processed.
func stopCount(t *testing.T, p *demotest.Process) int {
	t.Helper()
	p.Signal(syscall.SIGTERM)
	return exitCount(t, p)
}

// exitCount waits for the exit of a replica already sent SIGTERM, which
// must have drained (exit 0), and returns its count=.
func exitCount(t *testing.T, p *demotest.Process) int {
	t.Helper()
	return endCount(t, p, 0, "shutdown finished")
}

// forcedCount is exitCount for a replica whose shutdown deadline cut a
// request (exit 1, shutdown forced).
func forcedCount(t *testing.T, p *demotest.Process) int {
	t.Helper()
	return endCount(t, p, 1, "shutdown forced")
}

func endCount(t *testing.T, p *demotest.Process, code int, msg string) int {
	t.Helper()
	if e := p.WaitExit(); e.Code != code {
		t.Errorf("replica %s: %v, want exit %d", p.Addr, e, code)
	}
	l, ok := p.Logged(msg)
	if !ok {
		t.Fatalf("replica %s logged no %s:\n%s", p.Addr, msg, p.Output())
	}
	n, err := strconv.Atoi(l.Attr("count"))
	if err != nil {
		t.Fatalf("count=%q: %v", l.Attr("count"), err)
	}
	return n
}

// pidOf is the pid a replica's GET / names.
func pidOf(p *demotest.Process) string { return "pid " + strconv.Itoa(p.Pid()) }

// bodyOf reads a response's body whole.
func bodyOf(resp *http.Response) string {
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
