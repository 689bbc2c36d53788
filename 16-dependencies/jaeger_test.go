package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gracefulgo/walkthrough/internal/demotest"
	"github.com/gracefulgo/walkthrough/internal/proc"
)

// jaegerConfig is the smallest configuration of Jaeger v2 (an OpenTelemetry
// collector, configured like one) that receives OTLP/gRPC and answers the
// query API: cmd/jaeger/internal/all-in-one.yaml of jaeger v1.75.0, its
// default, less the receivers, extensions and batch processor this test
// does not use, on ports of the test's choosing, and with its own metrics
// off (they would listen on port 8888).
const jaegerConfig = `service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 1000
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: %s
    grpc:
      endpoint: %s
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %s
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`

// startJaeger runs Jaeger (the jaeger command of v1.75.0, which
// tools/jaeger/go.mod pins as a go tool) with the OTLP/gRPC receiver and
// the query API on loopback ports. It returns both addresses. Without the
// tool's modules in the module cache the test skips; under CI=true it
// builds it, or fails.
func startJaeger(t *testing.T) (otlpEndpoint, queryAddr string) {
	t.Helper()
	_ = os.Getenv("TOOLS_PRESENT") // so that make test does not replay a skip once jaeger is built (tools/present.sh)
	bin, err := demotest.GoToolOf("../tools/jaeger/go.mod", "jaeger", os.Getenv("CI") != "true")
	if errors.Is(err, demotest.ErrNotDownloaded) {
		t.Skip("no Jaeger: go tool -modfile=tools/jaeger/go.mod jaeger --help fetches and builds it (about 270 MB of modules), then make test-16")
	}
	if err != nil {
		t.Fatal(err)
	}
	otlpEndpoint, queryAddr = demotest.FreeAddr(t), demotest.FreeAddr(t)
	config := filepath.Join(t.TempDir(), "jaeger.yaml")
	if err := os.WriteFile(config, fmt.Appendf(nil, jaegerConfig, queryAddr, demotest.FreeAddr(t), otlpEndpoint), 0o600); err != nil {
		t.Fatal(err)
	}
	jaeger, err := proc.Start("", exec.Command(bin, "--config", config))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		jaeger.Kill()
		if t.Failed() {
			t.Logf("jaeger output:\n%s", jaeger.Output())
		}
	})
	// The collector logs this once every receiver and extension has
	// started (Service.Start in the collector's service/service.go).
	timeout := time.After(demotest.EventTimeout)
	for seen := 0; ; {
		lines, grew := jaeger.Watch()
		for ; seen < len(lines); seen++ {
			if strings.Contains(lines[seen].Raw, "Everything is ready") {
				return otlpEndpoint, queryAddr
			}
		}
		select {
		case <-grew:
		case <-jaeger.Done():
			t.Fatalf("jaeger exited before it was ready:\n%s", jaeger.Output())
		case <-timeout:
			t.Fatalf("jaeger not ready within %s:\n%s", demotest.EventTimeout, jaeger.Output())
		}
	}
}

// jaegerSpan is a span as Jaeger's HTTP query API (/api/traces) answers it.
type jaegerSpan struct {
	OperationName string `json:"operationName"`
	Tags          []struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	} `json:"tags"`
}

// jaegerSpans asks Jaeger for the spans of the service's traces, each
// named as "name" or, for a span about an order, "name order.id=id".
func jaegerSpans(queryAddr, service string) ([]string, error) {
	resp, err := http.Get("http://" + queryAddr + "/api/traces?limit=1000&service=" + service)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/api/traces: %s", resp.Status)
	}
	var body struct {
		Data []struct {
			Spans []jaegerSpan `json:"spans"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	var names []string
	for _, trace := range body.Data {
		for _, span := range trace.Spans {
			name := span.OperationName
			for _, tag := range span.Tags {
				if tag.Key == "order.id" {
					name += fmt.Sprintf(" order.id=%v", tag.Value)
				}
			}
			names = append(names, name)
		}
	}
	return names, nil
}

// TestSpansInJaeger: TestSpansOfTheLastRequests against a real Jaeger.
// The orders posted just before SIGTERM, their messages' "store order",
// and the phases up to the tracer's own are in Jaeger, asked through its
// query API after the program has exited; the phase after the tracer's is
// not.
func TestSpansInJaeger(t *testing.T) {
	t.Parallel()
	otlpEndpoint, queryAddr := startJaeger(t)
	p := demotest.Start(t, "-store", t.TempDir(), "-drain-delay", "0s", "-otlp-endpoint", otlpEndpoint)
	ids := []string{"jaeger-1", "jaeger-2", "jaeger-3"}
	for _, id := range ids {
		if status, err := postOrderAs(http.DefaultClient, p.Addr, id); err != nil || status != http.StatusAccepted {
			t.Fatalf("POST /orders %s = %d (%v), want 202", id, status, err)
		}
	}
	// Stored, so that their "store order" spans have ended and wait in the
	// batch span processor (its BatchTimeout is 5s) with the others.
	awaitStored(t, p, ids, demotest.EventTimeout)
	p.Signal(syscall.SIGTERM)
	if exit := p.WaitExit(); exit.Code != 0 {
		t.Fatalf("%v, want exit status 0", exit)
	}
	// A "POST /orders" for each order, and its message's "store order".
	want := []string{"shutdown http", "shutdown consumer", "shutdown nats", "shutdown database"}
	for _, id := range ids {
		want = append(want, "POST /orders", "store order order.id="+id)
	}
	// Jaeger stores what it receives as it comes (no batch processor in
	// its pipeline), but indexes it a moment later: ask until it is there.
	var got []string
	var missing []string
	deadline := time.Now().Add(demotest.EventTimeout)
	for {
		var err error
		got, err = jaegerSpans(queryAddr, "16-dependencies")
		if err != nil {
			t.Fatal(err)
		}
		missing = missing[:0]
		left := slices.Clone(got)
		for _, w := range want {
			if i := slices.Index(left, w); i >= 0 {
				left = slices.Delete(left, i, i+1)
			} else {
				missing = append(missing, w)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond) // poll interval: the query API has nothing to wait on
	}
	if len(missing) > 0 {
		t.Errorf("Jaeger has no span %q after %s; it has %q", missing, demotest.EventTimeout, got)
	}
	if slices.Contains(got, "shutdown nats-server") {
		t.Errorf("a span of a phase after the tracer's own reached Jaeger: %q", got)
	}
}
