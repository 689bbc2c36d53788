package main

import (
	"errors"
	"io"
	"net"
	"net/http"
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
// and UP, and a request is answered; and, as with nginx, the old process
// closed the client's idle kept-alive connection.
func TestHAProxyReload(t *testing.T) {
	t.Parallel()
	needProxy(t, "haproxy")
	a := demotest.Start(t, "-drain-delay=0s")
	haproxy := startHAProxy(t, nil, a)
	c := &noretry.Client{Addr: haproxy.Listen}
	defer c.Close()
	if r := c.Get("/"); !r.OK() || r.Close {
		t.Fatalf("GET / = %v (close %t), want 200 on a kept-alive connection", r, r.Close)
	}
	took, old, err := haproxy.ReloadHAProxy()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the new process answered and the old one exited %s after the start:\n%s", took.Round(time.Millisecond), old.Output())
	if err := c.AwaitClosed(demotest.EventTimeout); !errors.Is(err, io.EOF) {
		t.Errorf("the idle client connection after the reload: %v, want HAProxy's close (EOF)", err)
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
}
