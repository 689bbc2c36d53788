package noretry

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The client is checked against a real server on loopback: what it calls
// ok, refused, reset, EOF and status must be what happened.
func TestClient(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			io.WriteString(w, "step, pid 4242\n")
		case "/close":
			w.Header().Set("Connection", "close")
			io.WriteString(w, "bye\n")
		case "/header":
			io.WriteString(w, r.Header.Get("X-Lane"))
		case "/cut":
			// The server read the request, then the connection ended.
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
		case "/reset":
			conn, _, _ := w.(http.Hijacker).Hijack()
			_ = conn.(*net.TCPConn).SetLinger(0) // close with RST
			conn.Close()
		case "/busy":
			http.Error(w, "busy", http.StatusServiceUnavailable)
		}
	}))
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c := Client{Addr: srv.Listener.Addr().String(), Header: []string{"X-Lane: 3"}}
	defer c.Close()

	if r := c.Get("/ok"); r.Kind != OK || r.Pid != 4242 || r.Reused || r.End.Before(r.Start) || r.Local == "" {
		t.Errorf("GET /ok: %+v, want ok from pid 4242 on a new connection", r)
	}
	if r := c.Get("/header"); r.Kind != OK || r.Body != "3" || !r.Reused {
		t.Errorf("GET /header: %+v, want the header line sent, on the kept-alive connection", r)
	}
	if r := c.Get("/close"); r.Kind != OK || !r.Close || c.Connected() {
		t.Errorf("GET /close: %+v, connected %t; want ok, and the connection let go as asked", r, c.Connected())
	}
	if r := c.Get("/busy"); r.Kind != Status || r.Status != 503 || r.Err != nil || r.OK() {
		t.Errorf("GET /busy: %+v, want status 503", r)
	}
	if r := c.Get("/cut"); r.Kind != EOF || r.Err == nil || c.Connected() {
		t.Errorf("GET /cut: %+v, want EOF with its error, and the connection let go", r)
	}
	if r := c.Get("/reset"); r.Kind != Reset {
		t.Errorf("GET /reset: %+v, want reset", r)
	}
	// A port nobody listens on: taken a moment ago, then closed.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	gone := Client{Addr: ln.Addr().String()}
	if r := gone.Get("/ok"); r.Kind != Refused || !errors.Is(r.Err, syscall.ECONNREFUSED) || r.Local != "" {
		t.Errorf("GET on a closed port: %+v, want refused", r)
	}
	if n := conns.Load(); n != 3 {
		t.Errorf("%d connections, want 3: one kept alive for /ok, /header and /close, one for /busy and /cut, one for /reset", n)
	}
}

// PerConn closes the connection after that many requests; Peek dials anew
// when the server has closed the idle connection, where a client without
// it sends on the closed connection and fails.
func TestClientPerConnAndPeek(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	c := Client{Addr: srv.Listener.Addr().String(), PerConn: 2}
	defer c.Close()
	c.Get("/")
	if r := c.Get("/"); !r.OK() || !r.Reused || c.Connected() {
		t.Errorf("second GET with PerConn 2: %+v, connected %t; want ok on the same connection, then let go", r, c.Connected())
	}
	for _, peek := range []bool{false, true} {
		c := Client{Addr: srv.Listener.Addr().String(), Peek: peek}
		if r := c.Get("/"); !r.OK() {
			t.Fatalf("GET /: %+v", r)
		}
		srv.CloseClientConnections()
		// Wait until the close has arrived, by the client's own test of it.
		for deadline := time.Now().Add(Timeout); !c.ClosedByServer(); {
			if time.Now().After(deadline) {
				t.Fatal("the server's close never arrived")
			}
			time.Sleep(time.Millisecond) // poll interval while the FIN travels
		}
		r := c.Get("/")
		switch {
		case peek && (!r.OK() || r.Reused || !r.Redialed):
			t.Errorf("with Peek, GET after the server closed: %+v, want ok on a new connection", r)
		case !peek && r.OK():
			t.Errorf("without Peek, GET after the server closed: %+v, want a failure on the closed connection", r)
		}
		c.Close()
	}
}

// An idle kept-alive connection ends when the server closes it.
func TestClientAwaitClosed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	c := Client{Addr: srv.Listener.Addr().String()}
	if r := c.Get("/"); !r.OK() || !c.Connected() {
		t.Fatalf("GET /: %+v, want ok with the connection kept", r)
	}
	srv.CloseClientConnections()
	if err := c.AwaitClosed(Timeout); !errors.Is(err, io.EOF) || c.Connected() {
		t.Errorf("AwaitClosed = %v, connected %t; want EOF and the connection let go", err, c.Connected())
	}
	if err := c.AwaitClosed(Timeout); err == nil {
		t.Error("AwaitClosed with no connection: no error")
	}
}

func TestKindOf(t *testing.T) {
	reset := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	pipe := &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", syscall.EPIPE)}
	for _, tc := range []struct {
		err  error
		want Kind
	}{
		{reset, Reset}, {pipe, Reset}, {io.EOF, EOF}, {io.ErrUnexpectedEOF, EOF},
		{os.ErrDeadlineExceeded, Other},
	} {
		if got := kindOf(tc.err); got != tc.want {
			t.Errorf("kindOf(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}

func TestCounts(t *testing.T) {
	n := Count([]Result{{Kind: OK}, {Kind: OK}, {Kind: Refused}, {Kind: EOF}, {Kind: Refused}})
	if got, want := n.String(), "2 ok, 3 failed (refused 2, EOF 1)"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	if got := (Counts{OK: 7}).String(); !strings.HasPrefix(got, "7 ok, 0 failed") || strings.Contains(got, "(") {
		t.Errorf("String with no failure = %q", got)
	}
}

// KindOf gives net/http's client errors the kinds this client gives its
// own: a refused dial, net/http's closed idle connection, a reset.
func TestKindOfAnyClient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, dialErr := http.Get("http://" + addr + "/")
	for _, tc := range []struct {
		err  error
		want Kind
	}{
		{nil, OK},
		{dialErr, Refused},
		{errors.New(`Post "http://x/count": http: server closed idle connection`), EOF},
		{&net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, Reset},
		{io.ErrUnexpectedEOF, EOF},
		{errors.New("context deadline exceeded"), Other},
	} {
		if got := KindOf(tc.err); got != tc.want {
			t.Errorf("KindOf(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}
