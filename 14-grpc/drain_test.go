package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/gracefulgo/walkthrough/14-grpc/slowpb"
	"github.com/gracefulgo/walkthrough/internal/demotest"
)

// services are the names a health check asks about: "" is the whole
// server, as a Kubernetes gRPC probe asks by default.
var services = []string{"", slowpb.Slow_ServiceDesc.ServiceName}

// TestNotServingDuringTheDrainDelay: from SIGTERM on, health answers
// NOT_SERVING for the server and for the service, to Check and to every
// Watch stream; for -drain-delay the server still serves, on its open
// connections and on new ones, and its streams still run.
func TestNotServingDuringTheDrainDelay(t *testing.T) {
	t.Parallel()
	// A delay far longer than the test: it ends with a second signal.
	p := demotest.Start(t, "-drain-delay=1m")
	conn, client := dial(t, p.Addr)
	health := healthpb.NewHealthClient(conn)
	var watches []healthpb.Health_WatchClient
	for _, service := range services {
		w, err := health.Watch(rpcContext(t), &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := w.Recv(); err != nil || got.Status != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("Watch(%q) before the signal: %v, %v; want SERVING", service, got, err)
		}
		watches = append(watches, w)
	}
	ticks, err := client.Ticks(rpcContext(t), durationpb.New(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	p.WaitLog("ticks started")

	signalled := p.Signal(syscall.SIGTERM)
	// Logged once health has said NOT_SERVING.
	p.WaitLog("drain delay started")
	for i, service := range services {
		if got, err := watches[i].Recv(); err != nil || got.Status != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Errorf("Watch(%q) after SIGTERM: %v, %v; want NOT_SERVING", service, got, err)
		}
		got, err := health.Check(rpcContext(t), &healthpb.HealthCheckRequest{Service: service})
		if err != nil || got.Status != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Errorf("Check(%q) during the drain delay: %v, %v; want NOT_SERVING", service, got, err)
		}
	}
	// Still serving: the stream, the open connection, a new connection.
	// A tick is the server's clock, so one stamped after the signal was
	// sent during the delay, not queued before it.
	for {
		tick, err := ticks.Recv()
		if err != nil {
			t.Errorf("Ticks during the drain delay: %v, want ticks", err)
			break
		}
		if tick.AsTime().After(signalled) {
			break
		}
	}
	if _, err := sleep(t, client, 0); err != nil {
		t.Errorf("Sleep(0) on the open connection during the drain delay: %v", err)
	}
	_, fresh := dial(t, p.Addr)
	if _, err := sleep(t, fresh, 0); err != nil {
		t.Errorf("Sleep(0) on a new connection during the drain delay: %v", err)
	}
	if _, ok := p.Logged("drain delay finished"); ok {
		t.Fatal("the 1m drain delay finished during the test")
	}

	// Whoever cannot wait for the delay sends the signal again.
	if _, err := p.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if e := p.WaitExit(); e.Code == 0 {
		t.Errorf("%v after a second SIGTERM during the drain delay, want a failure status", e)
	}
}

// TestStreamsEndedAtTheDrain: when the drain begins, every Ticks and
// health Watch stream ends with UNAVAILABLE and a message saying that the
// server is shutting down, while a Sleep in flight gets its answer; so the
// streams do not hold GracefulStop, and the program exits 0.
func TestStreamsEndedAtTheDrain(t *testing.T) {
	t.Parallel()
	// With a 1m budget, a stream that held GracefulStop would hold the
	// test to its EventTimeout and fail it.
	p := demotest.Start(t, "-shutdown-timeout=1m")
	conn, client := dial(t, p.Addr)
	ticks, err := client.Ticks(rpcContext(t), durationpb.New(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ticks.Recv(); err != nil {
		t.Fatalf("first tick: %v", err)
	}
	watch, err := healthpb.NewHealthClient(conn).Watch(rpcContext(t), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := watch.Recv(); err != nil {
		t.Fatalf("Watch: %v", err)
	}
	type answer struct {
		body string
		err  error
	}
	slept := make(chan answer, 1)
	go func() {
		body, err := sleep(t, client, time.Second)
		slept <- answer{body, err}
	}()
	p.WaitLog("sleep started")

	p.Signal(syscall.SIGTERM)
	if err := endOfStream(func() error { _, err := ticks.Recv(); return err }); err != nil {
		t.Errorf("Ticks: %v", err)
	}
	// A Watch stream says NOT_SERVING, then ends, even with no drain
	// delay, when the status and the end come together.
	if got, err := watch.Recv(); err != nil || got.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("Watch after SIGTERM: %v, %v; want NOT_SERVING before the end", got, err)
	} else if err := endOfStream(func() error { _, err := watch.Recv(); return err }); err != nil {
		t.Errorf("Watch: %v", err)
	}
	if a := <-slept; a.err != nil || !strings.Contains(a.body, "slept 1s") {
		t.Errorf("the Sleep in flight got %q, %v; want its answer", a.body, a.err)
	}
	if e := p.WaitExit(); e.Code != 0 {
		t.Errorf("%v, want exit status 0", e)
	}
	if line, ok := p.Logged("ticks ended"); !ok || line.Attr("by") != "server" {
		t.Errorf(`want "ticks ended" by=server logged, got %v`, line)
	}
	if before, err := p.LoggedBefore("shutdown started", "sleep finished"); err != nil || !before {
		t.Errorf(`"shutdown started" must come before "sleep finished" (%v)`, err)
	}
}

// endOfStream reads a stream with recv until it ends, and reports anything
// but UNAVAILABLE saying that the server is shutting down.
func endOfStream(recv func() error) error {
	for {
		err := recv()
		if err == nil {
			continue // a message sent before the end
		}
		if errors.Is(err, io.EOF) {
			return errors.New("ended with OK, want UNAVAILABLE")
		}
		s := status.Convert(err)
		if s.Code() != codes.Unavailable || !strings.Contains(s.Message(), "shutting down") {
			return fmt.Errorf("ended with %v, want UNAVAILABLE saying the server is shutting down", err)
		}
		return nil
	}
}
