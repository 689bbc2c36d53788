package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The client is checked against a real server on loopback: what it calls
// completed, dropped and turned away must be what happened.
func TestClient(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.Write([]byte("ok\n"))
		case "/close":
			w.Header().Set("Connection", "close")
			w.Write([]byte("bye\n"))
		case "/cut":
			// The server accepted the request, then the connection died.
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
		case "/busy":
			http.Error(w, "busy", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	c := client{addr: srv.Listener.Addr().String(), lane: 3}
	defer c.close()

	if r := c.get("/ok"); r.Outcome != Completed || r.Lane != 3 || r.End.Before(r.Start) {
		t.Errorf("GET /ok: %v (%s), lane %d, want completed on lane 3", r.Outcome, r.Err, r.Lane)
	}
	kept := c.conn
	if r := c.get("/ok"); r.Outcome != Completed || c.conn != kept {
		t.Errorf("second GET /ok: %v, same connection %t; want completed on the kept-alive connection", r.Outcome, c.conn == kept)
	}
	if r := c.get("/close"); r.Outcome != Completed || c.conn != nil {
		t.Errorf("GET /close: %v, connection kept %t; want completed, and the connection let go as asked", r.Outcome, c.conn != nil)
	}
	if r := c.get("/busy"); r.Outcome != Dropped {
		t.Errorf("GET /busy (503): %v, want dropped", r.Outcome)
	}
	if r := c.get("/cut"); r.Outcome != Dropped || r.Err == "" {
		t.Errorf("GET /cut: %v (%q), want dropped with its error", r.Outcome, r.Err)
	}
	// A port nobody listens on: taken a moment ago, then closed.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	gone := client{addr: ln.Addr().String()}
	if r := gone.get("/ok"); r.Outcome != TurnedAway || !strings.Contains(r.Err, "refused") {
		t.Errorf("GET on a closed port: %v (%q), want turned away, refused", r.Outcome, r.Err)
	}
}

// An idle kept-alive connection ends when the server closes it.
func TestClientAwaitClosed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	c := client{addr: srv.Listener.Addr().String(), lane: 1}
	r := c.get("/")
	if r.Outcome != Completed || c.conn == nil {
		t.Fatalf("GET /: %v, want completed with the connection kept", r.Outcome)
	}
	srv.CloseClientConnections()
	idle := c.awaitClosed(r.End)
	if idle.Outcome != Idle || idle.Lane != 1 || !idle.Start.Equal(r.End) || idle.End.Before(idle.Start) {
		t.Errorf("awaitClosed = %+v, want an idle stretch on lane 1 from the response on", idle)
	}
}
