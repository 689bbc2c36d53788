package main

import (
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gracefulgo/walkthrough/internal/demotest"
)

// scrape returns the text /metrics answers at addr.
func scrape(t *testing.T, addr string) string {
	t.Helper()
	client := &http.Client{Timeout: demotest.EventTimeout}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics = %d (%v), want 200", resp.StatusCode, err)
	}
	return string(body)
}

// TestMetricsDuringTheDrain: /metrics is on a listener of its own, so it
// still answers when the HTTP drain has closed the service's listener, and
// shows the request that the drain waits for and the phase already done.
// It also counts the orders.
func TestMetricsDuringTheDrain(t *testing.T) {
	t.Parallel()
	metricsAddr := demotest.FreeAddr(t)
	p := demotest.Start(t, "-store", t.TempDir(), "-drain-delay", "0s", "-shutdown-timeout", "20s", "-metrics-addr", metricsAddr)
	if r, _ := p.PostJSON("/orders", `{"item":"lamp","quantity":2}`); r.Status != http.StatusAccepted {
		t.Fatalf("POST /orders = %v, want 202", r)
	}
	if got := scrape(t, metricsAddr); !strings.Contains(got, "orders_accepted_total 1\n") {
		t.Errorf("/metrics before the signal does not count the order:\n%s", got)
	}
	inFlight := p.GetAsync("/slow?d=3s")
	p.WaitLog("slow request started")
	p.Signal(syscall.SIGTERM)
	p.WaitLog("phase finished") // the drain delay: Shutdown runs now

	// The service's listener closes as Shutdown begins.
	refused := false
	for deadline := time.Now().Add(demotest.EventTimeout); !refused && time.Now().Before(deadline); {
		c, err := net.Dial("tcp", p.Addr)
		if err != nil {
			refused = true
			break
		}
		c.Close()
		time.Sleep(5 * time.Millisecond) // poll interval while waiting for the listener to close
	}
	if !refused {
		t.Fatal("the service's listener is still open during the drain")
	}
	got := scrape(t, metricsAddr)
	if p.HasExited() || loggedPhase(p, "http") {
		t.Fatal("the drain was over before /metrics was read: the check must run during it")
	}
	for _, want := range []string{"http_requests_in_flight 1\n", `shutdown_phase_seconds{phase="drain-delay"}`} {
		if !strings.Contains(got, want) {
			t.Errorf("/metrics during the drain has no %q:\n%s", want, got)
		}
	}
	if r := demotest.AwaitResponse(inFlight, demotest.EventTimeout); !r.OK() {
		t.Errorf("the request in flight got %v, want 200", r)
	}
	if exit := p.WaitExit(); exit.Code != 0 {
		t.Errorf("%v, want exit status 0", exit)
	}
}
