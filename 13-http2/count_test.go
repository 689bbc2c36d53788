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

// TestCountReadsItsBody: POST /count reads its body before it counts,
// and refuses one over maxBody with a one-line 413 before it counts, over
// either protocol. Each request's outcome must agree with the server's
// count: the requests are sent one after another, so the 200s must answer
// 1, 2, 3 … with no gap (a refused request that counted would leave one),
// and count= at the end must be the number of 200s.
//
// Go's client reads the 413 over both protocols: over HTTP/1.1 the server
// sends it, then its FIN, and waits half a second before it closes on the
// body it did not read (rstAvoidanceDelay, server.go); over HTTP/2 it
// resets the stream with NO_ERROR only once the answer's END_STREAM frame
// is written (serverConn.wroteFrame), and the client keeps the answer
// (RFC 9113 §8.1; golang.org/issue/49645). Before the fix the handler
// counted without reading the body, and over h2c curl was told of a
// stream error for a 1 MB POST that had counted.
func TestCountReadsItsBody(t *testing.T) {
	t.Parallel()
	p := demotest.Start(t)
	answered := 0
	for _, h2c := range []bool{false, true} {
		c := goClient(h2c, nil)
		for _, size := range []int{0, 100 << 10, maxBody, maxBody + 1, 10 << 20} {
			name := fmt.Sprintf("h2c=%v, %d-byte body", h2c, size)
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
				t.Errorf("%s: %v, want an answer: 200 up to %d bytes, else 413", name, err, maxBody)
				continue
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			t.Logf("%s: %d %q", name, resp.StatusCode, got)
			switch {
			case err != nil:
				t.Errorf("%s: %d, reading its answer: %v", name, resp.StatusCode, err)
			case resp.StatusCode == http.StatusOK:
				answered++
				if size > maxBody {
					t.Errorf("%s: 200 %q, want a 413: the body is over %d bytes", name, got, maxBody)
				}
				if want := fmt.Sprintf("%d\n", answered); string(got) != want {
					t.Errorf("%s: 200 %q, want %q: a request before it counted without a 200", name, got, want)
				}
			case size > maxBody && resp.StatusCode == http.StatusRequestEntityTooLarge && strings.HasPrefix(string(got), "body too large") && strings.Count(string(got), "\n") == 1:
			default:
				t.Errorf("%s: %d %q, want 200 up to %d bytes, else a 413 with one line", name, resp.StatusCode, got, maxBody)
			}
		}
	}
	p.Signal(syscall.SIGTERM)
	if e := p.WaitExit(); e.Code != 0 {
		t.Errorf("exit: %v", e)
	}
	n := finishedCount(t, p)
	t.Logf("shutdown finished with count=%d, for %d answers of 200", n, answered)
	if n != answered || n != 6 {
		t.Errorf("count=%d for %d answers of 200, want 6 and 6: three bodies per protocol are at most %d bytes", n, answered, maxBody)
	}
}
