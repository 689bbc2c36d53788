package main

import (
	"context"
	"flag"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"
)

// fakeStepEnv makes the test binary a step: a small server that keeps the
// contract the lab relies on (docs/conventions.md) and shuts down with
// http.Server.Shutdown, so that runScenario can be checked end to end
// without building any of the real steps.
const fakeStepEnv = "LAB_TEST_FAKE_STEP"

func TestMain(m *testing.M) {
	switch os.Getenv(fakeStepEnv) {
	case "1":
		fakeStep()
		return
	case "grpc":
		fakeGRPCStep() // grpc_test.go
		return
	}
	os.Exit(m.Run())
}

func fakeStep() {
	addr := flag.String("addr", "", "")
	shutdownTimeout := flag.Duration("shutdown-timeout", 10*time.Second, "")
	flag.Parse()
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		d, _ := time.ParseDuration(r.URL.Query().Get("d"))
		slog.Info("slow request started")
		select {
		case <-time.After(d):
			slog.Info("slow request finished")
		case <-r.Context().Done():
		}
	})
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	srv := &http.Server{Addr: *addr, Handler: mux}
	go srv.ListenAndServe()
	slog.Info("listening")
	<-ctx.Done()
	stop()
	slog.Info("shutdown started")
	ctx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
	defer cancel()
	if srv.Shutdown(ctx) != nil {
		srv.Close()
		os.Exit(1)
	}
}

func TestRunScenario(t *testing.T) {
	t.Setenv(fakeStepEnv, "1")
	s := &step{Name: "00-fake", Bin: os.Args[0], HasShutdownTimeout: true}
	byName := map[string]scenario{}
	for _, sc := range scenarios {
		byName[sc.Name] = sc
	}

	idle := runScenario(s, byName["idle keep-alive"])
	if idle.Err != nil {
		t.Fatalf("idle keep-alive: %v", idle.Err)
	}
	f := idle.Figures()
	if f.Completed != 1 || f.Dropped != 0 || f.ExitStatus != "0" {
		t.Errorf("idle keep-alive: %+v, want 1 completed and exit 0", f)
	}
	if len(idle.Requests) != 2 || idle.Requests[1].Outcome != Idle {
		t.Errorf("idle keep-alive: requests %+v, want GET / and the idle connection", idle.Requests)
	}
	checkOrder(t, idle)

	cut := runScenario(s, byName["past the deadline"])
	if cut.Err != nil {
		t.Fatalf("past the deadline: %v", cut.Err)
	}
	f = cut.Figures()
	if f.Completed != 1 || f.Dropped != 1 || f.ExitStatus != "1" {
		t.Errorf("past the deadline: %+v, want 1 completed, 1 dropped, exit 1", f)
	}
	// Shutdown cannot return before its context's deadline, so neither can
	// the exit: a lower bound, not a timing assertion.
	if f.SignalToExit < deadline {
		t.Errorf("past the deadline: exit %v after the signal, before the %v deadline", f.SignalToExit, deadline)
	}
	checkOrder(t, cut)
}

// checkOrder checks what must hold in any run: the probe saw the listener
// open no later than it saw it closed, and both after the signal.
func checkOrder(t *testing.T, r Run) {
	t.Helper()
	if r.ListenerClosed.Before(r.Signal) || (!r.ListenerOpen.IsZero() && r.ListenerClosed.Before(r.ListenerOpen)) {
		t.Errorf("%s: signal %v, listener open %v, closed %v: out of order", r.Scenario, r.Signal, r.ListenerOpen, r.ListenerClosed)
	}
	if r.Exit.Before(r.Signal) {
		t.Errorf("%s: exited before the signal", r.Scenario)
	}
}
