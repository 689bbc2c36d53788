package main

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gracefulgo/walkthrough/internal/demotest"
	"github.com/gracefulgo/walkthrough/internal/frontproxy"
	"github.com/gracefulgo/walkthrough/internal/noretry"
)

// The proxy's own restart. An nginx reload starts new workers and tells
// the old ones to finish: each old worker closes its idle client
// connections at once, and waits for its requests in flight, for at most
// worker_shutdown_timeout.

// TestNginxReloadClosesIdleClientConnections: a client's kept-alive
// connection to nginx, idle at the reload, is closed by nginx. A client
// that writes its next request on it at that moment gets a reset or an
// EOF (the keep-alive line of make measure-15): the race one hop before
// the program, which no setting of the program removes.
func TestNginxReloadClosesIdleClientConnections(t *testing.T) {
	t.Parallel()
	needProxy(t, "nginx")
	a := demotest.Start(t, "-drain-delay=0s")
	nginx := startNginx(t, nil, server(a.Addr))
	c := &noretry.Client{Addr: nginx.Listen}
	defer c.Close()
	if r := c.Get("/"); !r.OK() || r.Close {
		t.Fatalf("GET / = %v (close %t), want 200 on a kept-alive connection", r, r.Close)
	}
	if _, err := nginx.Reload([]string{server(a.Addr)}); err != nil {
		t.Fatal(err)
	}
	if err := c.AwaitClosed(demotest.EventTimeout); !errors.Is(err, io.EOF) {
		t.Errorf("the idle client connection after the reload: %v, want nginx's close (EOF)", err)
	}
	stopCount(t, a)
}

// TestNginxWorkerShutdownTimeout: a request in flight through an old
// worker holds that worker after the reload. With deploy/nginx.conf's
// worker_shutdown_timeout (75s, longer than the slowest answer) it is
// answered, and the reload reaches every worker only once it is; with a
// worker_shutdown_timeout of 1s, shorter than the request, the old worker
// exits at that bound and cuts it: the client gets no answer, and the
// program sees its request cancelled.
func TestNginxWorkerShutdownTimeout(t *testing.T) {
	t.Parallel()
	needProxy(t, "nginx")
	for _, tc := range []struct {
		name    string
		replace map[string]string
		path    string
		wantOK  bool
	}{
		{name: "75s", path: "/slow?d=1s", wantOK: true},
		{name: "1s", replace: map[string]string{"worker_shutdown_timeout 75s;": "worker_shutdown_timeout 1s;"}, path: "/slow?d=5s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := demotest.Start(t, "-drain-delay=0s")
			nginx := startNginx(t, tc.replace, server(a.Addr))
			answered := make(chan error, 1)
			go func() {
				resp, err := client.Get("http://" + nginx.Listen + tc.path)
				if err == nil {
					_ = bodyOf(resp)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = &statusError{resp.StatusCode}
					}
				}
				answered <- err
			}()
			a.WaitLog("slow request started")
			took, err := nginx.Reload([]string{server(a.Addr)})
			if err != nil {
				t.Fatal(err)
			}
			err = <-answered
			t.Logf("the reload reached every worker in %s; the request: %v", took.Round(time.Millisecond), err)
			if tc.wantOK && err != nil {
				t.Errorf("the request through the old worker: %v, want its answer", err)
			}
			if !tc.wantOK {
				if err == nil {
					t.Errorf("the request longer than worker_shutdown_timeout was answered; want it cut")
				}
				a.WaitLog("slow request cancelled")
			}
			stopCount(t, a)
		})
	}
}

type statusError struct{ code int }

func (e *statusError) Error() string { return http.StatusText(e.code) }

// TestHAProxyReload: HAProxy's own restart, a new process started with
// -sf and the old one's pid. The new process starts from the
// configuration file, in which every server slot is in maintenance: the
// replicas the runtime API put in the slots come back only because the
// deploy saved show servers state to deploy/haproxy.cfg's
// server-state-file before the reload, and the new process loaded it
// (load-server-state-from-file). After the reload the replica is still s1
// and UP, and a request is answered. And the client's idle kept-alive
// connection to the old process, once that process has stopped
// listening (it logs "Proxy web stopped"):
//
//   - with deploy/haproxy.cfg's option idle-close-on-response, is kept:
//     the next request on it is answered 200 by the old process, with
//     Connection: close, and only then does the old process exit. Two
//     clients show it without a race: HAProxy closes idle connections in
//     a pass its thread makes before it next waits for input (haproxy.c's
//     run_poll_loop wakes mux_stopping_process), so once the first
//     client's request has been answered through the program, that pass
//     has run, and the second client's connection is still open only
//     because the option kept it. One thread (nbthread 1), so that the
//     pass and the requests are one sequence.
//   - without it, is closed by the old process, as nginx does: the EOF a
//     client that writes at that moment gets for its request.
func TestHAProxyReload(t *testing.T) {
	t.Parallel()
	needProxy(t, "haproxy")
	for _, tc := range []struct {
		name    string
		replace map[string]string
		keeps   bool
	}{
		{name: "idle-close-on-response", keeps: true, replace: map[string]string{"hard-stop-after 75s": "hard-stop-after 75s\n    nbthread 1"}},
		{name: "without", replace: map[string]string{"option idle-close-on-response": "# no option idle-close-on-response"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := demotest.Start(t, "-drain-delay=0s")
			haproxy := startHAProxy(t, tc.replace, a)
			c := &noretry.Client{Addr: haproxy.Listen}
			defer c.Close()
			second := &noretry.Client{Addr: haproxy.Listen}
			defer second.Close()
			for _, c := range []*noretry.Client{c, second} {
				if r := c.Get("/"); !r.OK() || r.Close {
					t.Fatalf("GET / = %v (close %t), want 200 on a kept-alive connection", r, r.Close)
				}
			}
			mark := haproxy.Written()
			old, err := haproxy.SwapHAProxy()
			if err != nil {
				t.Fatal(err)
			}
			oldProxy := &frontproxy.Proxy{Process: old, Name: "the old haproxy"}
			if _, err := oldProxy.AwaitLine("Proxy web stopped", mark); err != nil {
				t.Fatal(err)
			}
			if tc.keeps {
				if old.HasExited() {
					t.Errorf("the old process exited with a client's idle connection open:\n%s", old.Output())
				}
				for i, c := range []*noretry.Client{c, second} {
					r := c.Get("/")
					t.Logf("client %d: GET / on the connection kept through the reload: %v (close %t)", i+1, r, r.Close)
					if !r.OK() || !r.Reused || !r.Close || !strings.Contains(r.Body, pidOf(a)) {
						t.Errorf("client %d: GET / on the kept connection: %v (reused %t, close %t), want 200 from A with Connection: close", i+1, r, r.Reused, r.Close)
					}
				}
			} else {
				for _, c := range []*noretry.Client{c, second} {
					if err := c.AwaitClosed(demotest.EventTimeout); !errors.Is(err, io.EOF) {
						t.Errorf("the idle client connection after the reload: %v, want HAProxy's close (EOF)", err)
					}
				}
			}
			if _, ok := old.AwaitExit(demotest.EventTimeout); !ok {
				t.Fatalf("the old process did not exit:\n%s", old.Output())
			}
			states, err := haproxy.ServerStates()
			if err != nil {
				t.Fatal(err)
			}
			_, port, _ := net.SplitHostPort(a.Addr)
			if s := states["s1"]; s.Port != port || s.OpState != frontproxy.Running {
				t.Errorf("s1 after the reload: %+v, want port %s and UP: the runtime API's changes must survive it", s, port)
			}
			if status, body := send(t, haproxy, http.MethodGet); status != http.StatusOK {
				t.Errorf("GET / after the reload: %d %q, want 200", status, body)
			}
			stopCount(t, a)
		})
	}
}

// TestHAProxyHardStopAfter: a request in flight through the old process
// holds it after a reload, as with nginx. With deploy/haproxy.cfg's
// hard-stop-after (75s, longer than the slowest answer) it is answered,
// and the old process exits once it is; with hard-stop-after 1s, shorter
// than the request, the old process exits at that bound and cuts it: the
// client gets no 200, and the program sees its request cancelled.
func TestHAProxyHardStopAfter(t *testing.T) {
	t.Parallel()
	needProxy(t, "haproxy")
	for _, tc := range []struct {
		name    string
		replace map[string]string
		path    string
		wantOK  bool
	}{
		{name: "75s", path: "/slow?d=1s", wantOK: true},
		{name: "1s", replace: map[string]string{"hard-stop-after 75s": "hard-stop-after 1s"}, path: "/slow?d=5s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := demotest.Start(t, "-drain-delay=0s")
			haproxy := startHAProxy(t, tc.replace, a)
			answered := make(chan error, 1)
			go func() {
				resp, err := client.Get("http://" + haproxy.Listen + tc.path)
				if err == nil {
					_ = bodyOf(resp)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = &statusError{resp.StatusCode}
					}
				}
				answered <- err
			}()
			a.WaitLog("slow request started")
			took, _, err := haproxy.ReloadHAProxy()
			if err != nil {
				t.Fatal(err)
			}
			err = <-answered
			t.Logf("the old process exited %s after the reload began; the request: %v", took.Round(time.Millisecond), err)
			if tc.wantOK && err != nil {
				t.Errorf("the request through the old process: %v, want its answer", err)
			}
			if !tc.wantOK {
				if err == nil {
					t.Errorf("the request longer than hard-stop-after was answered; want it cut")
				}
				a.WaitLog("slow request cancelled")
			}
			stopCount(t, a)
		})
	}
}
