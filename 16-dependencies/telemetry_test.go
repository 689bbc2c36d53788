package main

import (
	"context"
	"net"
	"net/http"
	"slices"
	"sync"
	"syscall"
	"testing"

	"github.com/gracefulgo/walkthrough/internal/demotest"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
)

// spanReceiver is an OTLP/gRPC receiver, built on the official service
// definitions, that keeps the names of the spans it is sent.
type spanReceiver struct {
	collectortrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	names []string
}

func (r *spanReceiver) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			for _, span := range ss.GetSpans() {
				r.names = append(r.names, span.GetName())
			}
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func (r *spanReceiver) received() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.names)
}

// startSpanReceiver serves a receiver on a loopback port.
func startSpanReceiver(t *testing.T) (*spanReceiver, string) {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	receiver := &spanReceiver{}
	srv := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(srv, receiver)
	go srv.Serve(listener)
	t.Cleanup(srv.Stop)
	return receiver, listener.Addr().String()
}

// TestSpansOfTheLastRequests: the order posted just before SIGTERM, its
// message's "store order", and the phases up to the tracer's own reach
// the receiver: the batch span processor would hold them for up to five
// seconds, and the tracer's phase sends them before the exit. The phases
// after it exist only as log lines.
func TestSpansOfTheLastRequests(t *testing.T) {
	t.Parallel()
	receiver, endpoint := startSpanReceiver(t)
	p := demotest.Start(t, "-store", t.TempDir(), "-drain-delay", "0s", "-otlp-endpoint", endpoint)
	if status, err := postOrderAs(http.DefaultClient, p.Addr, "last"); err != nil || status != http.StatusAccepted {
		t.Fatalf("POST /orders = %d (%v), want 202", status, err)
	}
	// Stored, so that its "store order" span has ended too, and waits in
	// the batch span processor with the others (its BatchTimeout is 5s).
	awaitStored(t, p, []string{"last"}, demotest.EventTimeout)
	p.Signal(syscall.SIGTERM)
	if exit := p.WaitExit(); exit.Code != 0 {
		t.Fatalf("%v, want exit status 0", exit)
	}
	got := receiver.received()
	for _, want := range []string{"POST /orders", "store order", "shutdown http", "shutdown consumer", "shutdown nats", "shutdown database"} {
		if !slices.Contains(got, want) {
			t.Errorf("the receiver has no span %q; it has %q", want, got)
		}
	}
	if slices.Contains(got, "shutdown nats-server") {
		t.Errorf("a span of a phase after the tracer's own was sent: %q", got)
	}
	if !loggedPhase(p, "tracer") || !loggedPhase(p, "nats-server") {
		t.Error("no phase finished line for the tracer or the NATS server")
	}
}
