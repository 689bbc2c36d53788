package main

import (
	"bytes"
	"fmt"
	"io"
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

// TestCountReadsItsBody: the server reads a POST /count's body before it
// counts, and refuses one over maxBody before it counts, over either
// protocol: no body and 100 KB are answered 200 and counted; 10 MB gets a
// 413 or, when the server stops reading the rest, a transport error, never
// a 2xx, and is not counted. Before the fix the handler counted without
// reading the body, and over h2c a 1 MB body was counted while its client
// was sent a stream reset.
func TestCountReadsItsBody(t *testing.T) {
	t.Parallel()
	p := demotest.Start(t)
	answered := 0
	for _, h2 := range []bool{false, true} {
		c := goClient(h2, nil)
		for _, size := range []int{0, 100 << 10, 10 << 20} {
			name := fmt.Sprintf("h2c=%v, %d-byte body", h2, size)
			var body io.Reader
			if size > 0 {
				body = bytes.NewReader(make([]byte, size))
			}
			req, err := http.NewRequest(http.MethodPost, "http://"+p.Addr+"/count", body)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := c.Do(req)
			if err != nil {
				if size <= maxBody {
					t.Errorf("%s: %v, want 200", name, err)
				}
				t.Logf("%s: %v (refused, not counted)", name, err)
				continue
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch {
			case size <= maxBody && resp.StatusCode == http.StatusOK:
				answered++
			case size > maxBody && resp.StatusCode == http.StatusRequestEntityTooLarge && strings.Count(string(got), "\n") == 1:
			default:
				t.Errorf("%s: %d %q, want 200 up to %d bytes, else 413 with one line", name, resp.StatusCode, got, maxBody)
			}
		}
	}
	p.Signal(syscall.SIGTERM)
	if e := p.WaitExit(); e.Code != 0 {
		t.Errorf("exit: %v", e)
	}
	if n := finishedCount(t, p); n != answered || n != 4 {
		t.Errorf("count=%d, want %d, the requests answered 200 (two per protocol)", n, answered)
	}
}
