package goclient

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gracefulgo/walkthrough/internal/noretry"
)

// Each client speaks the protocol it was made for, sends the key when
// given one, and classifies an answer, a status and a refused dial.
func TestPost(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/busy" {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, r.Method+" "+r.Proto+" "+r.Header.Get("Idempotency-Key")+" "+string(b))
	}))
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	defer srv.Close()
	addr := srv.Listener.Addr().String()

	for _, tc := range []struct {
		h2c       bool
		key, want string
	}{
		{false, "", "POST HTTP/1.1  one more"},
		{false, "k1", "POST HTTP/1.1 k1 one more"},
		{true, "k2", "POST HTTP/2.0 k2 one more"},
	} {
		body, kind, err := Post(New(tc.h2c, nil), addr, "/", tc.key)
		if kind != noretry.OK || body != tc.want {
			t.Errorf("h2c %t, key %q: %s %q %v; want ok %q", tc.h2c, tc.key, kind, body, err, tc.want)
		}
	}
	if _, kind, _ := Post(New(false, nil), addr, "/busy", ""); kind != noretry.Status {
		t.Errorf("POST /busy: %s, want status", kind)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := ln.Addr().String()
	ln.Close()
	if _, kind, _ := Post(New(true, nil), gone, "/", ""); kind != noretry.Refused {
		t.Errorf("POST to a closed port: %s, want refused", kind)
	}
}
