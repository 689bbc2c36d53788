package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gracefulgo/walkthrough/internal/noretry"
)

// What the lab draws is what the client saw: its requests on its lane,
// refused as turned away, a failure on an open connection as dropped.
func TestClient(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/cut" {
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
		}
	}))
	defer srv.Close()
	c := newClient(srv.Listener.Addr().String(), 3)
	defer c.Close()
	if r := c.get("/"); r.Outcome != Completed || r.Lane != 3 || r.End.Before(r.Start) {
		t.Errorf("GET /: %v (%s), lane %d, want completed on lane 3", r.Outcome, r.Err, r.Lane)
	}
	if r := c.get("/cut"); r.Outcome != Dropped || r.Err == "" {
		t.Errorf("GET /cut: %v (%q), want dropped with its error", r.Outcome, r.Err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if r := newClient(ln.Addr().String(), 0).get("/"); r.Outcome != TurnedAway {
		t.Errorf("GET on a closed port: %v (%q), want turned away", r.Outcome, r.Err)
	}
}

// An idle kept-alive connection ends when the server closes it.
func TestClientAwaitClosed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	c := newClient(srv.Listener.Addr().String(), 1)
	r := c.get("/")
	if r.Outcome != Completed || !c.Connected() {
		t.Fatalf("GET /: %v, want completed with the connection kept", r.Outcome)
	}
	srv.CloseClientConnections()
	idle := c.awaitClosed(r.End)
	if idle.Outcome != Idle || idle.Lane != 1 || !idle.Start.Equal(r.End) || idle.End.Before(idle.Start) {
		t.Errorf("awaitClosed = %+v, want an idle stretch on lane 1 from the response on", idle)
	}
}

func TestOutcome(t *testing.T) {
	for k, want := range map[noretry.Kind]Outcome{
		noretry.OK: Completed, noretry.Refused: TurnedAway, noretry.Reset: Dropped,
		noretry.EOF: Dropped, noretry.Status: Dropped, noretry.Other: Dropped,
	} {
		if got := outcome(k); got != want {
			t.Errorf("outcome(%s) = %v, want %v", k, got, want)
		}
	}
}
