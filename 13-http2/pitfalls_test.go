package main

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/gracefulgo/walkthrough/internal/demotest"
	"github.com/gracefulgo/walkthrough/internal/noretry"
)

// Pitfall: a retry loop around a POST without a key does the work twice.
// The first try is processed (count=1) and then cut at the shutdown
// deadline, its answer lost; the loop sends it again to the next process
// on the port, which processes it too. Two processed, one answered: the
// count runs ahead of the answers.
func TestRetryLoopDoesTheWorkTwice(t *testing.T) {
	t.Parallel()
	first := demotest.Start(t, "-shutdown-timeout=100ms")
	addr := first.Addr
	c := goClient(false, nil)
	type outcome struct {
		body  string
		tries int
		kinds []noretry.Kind
	}
	done := make(chan outcome, 1)
	go func() {
		// The caller's loop: send again whatever failed, until an answer
		// (bounded, so that a broken test ends).
		var o outcome
		for deadline := time.Now().Add(demotest.EventTimeout); time.Now().Before(deadline); o.tries++ {
			body, kind, _ := postPath(c, addr, "/count?d=3s", "")
			o.kinds = append(o.kinds, kind)
			if kind == noretry.OK {
				o.body = body
				break
			}
			time.Sleep(20 * time.Millisecond) // the loop's own pause between tries
		}
		done <- o
	}()
	first.WaitLog("count request waiting")
	first.Signal(syscall.SIGTERM)
	if e := first.WaitExit(); e.Code != 1 {
		t.Errorf("first process: %v, want 1 (its request cut at the deadline)", e)
	}
	second := demotest.StartAt(t, addr)
	second.WaitLog("count request waiting")
	o := <-done
	second.Signal(syscall.SIGTERM)
	if e := second.WaitExit(); e.Code != 0 {
		t.Errorf("second process: %v, want 0", e)
	}
	processed := finishedCount(t, first) + finishedCount(t, second)
	t.Logf("tries %v, answer %q; processed %d", o.kinds, o.body, processed)
	if o.body != "1\n" || processed != 2 {
		t.Errorf("answered %q, processed %d: want one answer and two processed, the count ahead of the answers", o.body, processed)
	}
}

// Pitfall: a reverse proxy that speaks HTTP/1.1 to the program brings the
// race back between itself and the program, whatever its clients speak.
// The client talks h2c to the proxy, which never shuts down, so it gets no
// GOAWAY; the proxy's kept-alive HTTP/1.1 connection to the program is
// closed at SIGTERM just as it forwards the next POST (see finHolder), and
// the client gets a 502 for a POST that nobody processed (count=1), which
// it cannot tell from one that was.
func TestHTTP1ProxyBringsTheRaceBack(t *testing.T) {
	t.Parallel()
	p := demotest.Start(t)
	var holder finHolder
	backend := &url.URL{Scheme: "http", Host: p.Addr}
	proxyErr := make(chan error, 1)
	proxy := &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(backend) },
		Transport: goClient(false, holder.dial).Transport,
		// What the proxy saw from the program; its client gets a 502.
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			proxyErr <- err
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	front := httptest.NewUnstartedServer(proxy)
	front.Config.Protocols = new(http.Protocols)
	front.Config.Protocols.SetHTTP1(true)
	front.Config.Protocols.SetUnencryptedHTTP2(true)
	front.Start()
	defer front.Close()
	frontAddr := front.Listener.Addr().String()

	c := goClient(true, nil)
	if body, kind, err := post(c, frontAddr, ""); kind != noretry.OK || body != "1\n" {
		t.Fatalf("first POST /count through the proxy: %s %q %v", kind, body, err)
	}
	p.Signal(syscall.SIGTERM)
	holder.awaitEnd(t)
	_, kind, err := post(c, frontAddr, "")
	if e := p.WaitExit(); e.Code != 0 {
		t.Errorf("exit: %v, want 0", e)
	}
	if n := finishedCount(t, p); n != 1 || !ambiguous(kind) {
		t.Errorf("second POST through the proxy: %s (%v), count=%d; want an ambiguous failure for a POST never processed (count=1)", kind, err, n)
	}
	// Behind the proxy it was the race of HTTP/1.1: an EOF on the kept-alive
	// connection, not a refused dial. The proxy could not send it again.
	select {
	case err := <-proxyErr:
		if k := noretry.KindOf(err); !ambiguous(k) {
			t.Errorf("the proxy's request to the program: %s (%v), want the keep-alive race's EOF or reset", k, err)
		}
	default:
		t.Error("the proxy reported no error")
	}
}

// Go's HTTP/2 server turns a handler's Connection: close into a GOAWAY for
// that connection (h2_bundle.go in Go 1.26, internal/http2 in 1.27), so a
// drain delay that answers Connection: close, as step 10's does, tells an
// HTTP/2 client to go elsewhere too.
func TestConnectionCloseBecomesGoAway(t *testing.T) {
	t.Parallel()
	srv := h2cServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		w.Write([]byte("bye\n"))
	}))
	c := dialH2(t, srv.Listener.Addr().String())
	c.get(t, 1, "/")
	f, data := c.until(t, frameGoAway)
	if last, code := f.goAway(); last != 1 || code != errCodeNo {
		t.Errorf("GOAWAY last stream %d, code %d; want 1, NO_ERROR", last, code)
	}
	t.Logf("before the GOAWAY: %q", data)
}

// SetKeepAlivesEnabled(false) closes idle HTTP/1.1 connections at once,
// but leaves an idle HTTP/2 connection alone (net/http's TODO, issue
// 26303): its GOAWAY comes only when its next stream ends. The first
// GOAWAY names stream 3, so none was sent while the connection was idle.
func TestKeepAlivesDisabledOverHTTP2(t *testing.T) {
	t.Parallel()
	srv := h2cServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("hello\n"))
	}))
	c := dialH2(t, srv.Listener.Addr().String())
	c.get(t, 1, "/")
	if _, data := c.untilEnd(t, 1); data != "hello\n" {
		t.Fatalf("stream 1: %q", data)
	}
	// The server has closed stream 1, and found the connection idle with
	// keep-alives on, before it answers the PING.
	c.ping(t)
	srv.Config.SetKeepAlivesEnabled(false)
	c.get(t, 3, "/")
	f, _ := c.until(t, frameGoAway)
	if last, code := f.goAway(); last != 3 || code != errCodeNo {
		t.Errorf("first GOAWAY: last stream %d, code %d; want 3 (after the next stream), NO_ERROR", last, code)
	}
}

// h2cServer is a server in the test that speaks HTTP/1.1 and h2c, as the
// step does.
func h2cServer(t *testing.T, h http.Handler) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}
