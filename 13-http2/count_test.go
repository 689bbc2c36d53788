package main

import (
	"net/http"
	"strings"
	"syscall"
	"testing"

	"github.com/gracefulgo/walkthrough/internal/demotest"
	"github.com/gracefulgo/walkthrough/internal/noretry"
)

// POST /count answers the counter's new value over either protocol, a
// bad d is a 400 with one line that says why (and counts nothing), GET is
// not allowed, and shutdown finished says how many were counted.
func TestCountRoute(t *testing.T) {
	t.Parallel()
	p := demotest.Start(t)
	h1, h2 := goClient(false, nil), goClient(true, nil)
	for i, c := range []*http.Client{h1, h2} {
		if body, kind, err := post(c, p.Addr, ""); kind != noretry.OK || body != string(rune('1'+i))+"\n" {
			t.Errorf("POST /count #%d: %s %q %v", i+1, kind, body, err)
		}
	}
	body, kind, _ := postPath(h1, p.Addr, "/count?d=banana", "")
	if kind != noretry.Status || !strings.HasPrefix(body, `bad d="banana"`) || strings.Count(body, "\n") != 1 {
		t.Errorf("POST /count?d=banana: %s %q, want a 400 with one line", kind, body)
	}
	if r := p.Get("/count"); r.Status != http.StatusMethodNotAllowed {
		t.Errorf("GET /count: %v, want 405", r)
	}
	p.Signal(syscall.SIGTERM)
	if e := p.WaitExit(); e.Code != 0 {
		t.Errorf("exit: %v", e)
	}
	if n := finishedCount(t, p); n != 2 {
		t.Errorf("count=%d, want 2", n)
	}
}
