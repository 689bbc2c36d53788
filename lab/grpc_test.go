package main

import (
	"context"
	"encoding/xml"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// fakeGRPCStep makes the test binary a gRPC step with what the lab relies
// on in step 14: walkthrough.v1.Slow/Sleep answering with its pid, the
// "listening" line, GracefulStop on SIGTERM, and the "shutdown finished"
// line with sleeps=, the calls it answered. It is registered by hand, so
// that the lab's test needs none of the step's code.
func fakeGRPCStep() {
	addr := flag.String("addr", "", "")
	flag.Parse()
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		slog.Error("server failed", "err", err)
		os.Exit(1)
	}
	var slept atomic.Int64
	srv := grpc.NewServer()
	srv.RegisterService(&grpc.ServiceDesc{
		ServiceName: "walkthrough.v1.Slow",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Sleep",
			Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				in := new(durationpb.Duration)
				if err := dec(in); err != nil {
					return nil, err
				}
				select {
				case <-time.After(in.AsDuration()):
				case <-ctx.Done():
					return nil, ctx.Err()
				}
				slept.Add(1)
				return wrapperspb.String(fmt.Sprintf("slept %s (fake, pid %d)", in.AsDuration(), os.Getpid())), nil
			},
		}},
	}, struct{}{})
	go srv.Serve(ln)
	slog.Info("listening", "addr", ln.Addr().String())
	<-ctx.Done()
	stop()
	slog.Info("shutdown started")
	srv.GracefulStop()
	slog.Info("shutdown finished", "sleeps", slept.Load())
}

// testGRPCLoad is small, so that the test takes a second or two.
var testGRPCLoad = grpcLoad{Clients: 8, Drains: 1, Before: 60, After: 60, MaxSleep: 10 * time.Millisecond}

// Every row of the gRPC scenario, on the fake step, holds what does not
// depend on timing: each backend's answers are its sleeps= (nothing
// lost, nothing done twice); with one backend every client ends with one
// UNAVAILABLE, and nothing else fails; with two, nothing fails at all,
// since what GracefulStop's GOAWAY leaves unprocessed grpc-go sends again
// to the other backend.
func TestGRPCDrain(t *testing.T) {
	t.Setenv(fakeStepEnv, "grpc")
	s := &step{Name: "00-fake-grpc", Bin: os.Args[0], GRPC: true}
	for _, c := range grpcCases {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			run := grpcRun{Case: c, Codes: map[codes.Code]int{}, Messages: map[string]int{}, OKBy: make([]int, c.Backends), Sleeps: make([]int, c.Backends)}
			if err := grpcDrain(s, testGRPCLoad, &run, true); err != nil {
				t.Fatal(err)
			}
			for i := range c.Backends {
				if run.OKBy[i] != run.Sleeps[i] {
					t.Errorf("backend %d answered %d calls, its sleeps= is %d: %s", i+1, run.OKBy[i], run.Sleeps[i], run.summary())
				}
			}
			if run.OK < testGRPCLoad.Before {
				t.Errorf("%d OK, fewer than the %d before the signal", run.OK, testGRPCLoad.Before)
			}
			want := 0
			if c.Backends == 1 {
				want = testGRPCLoad.Clients
			}
			if run.Sent-run.OK != want || run.Other() != 0 {
				t.Errorf("%d failed (%d other than UNAVAILABLE), want %d UNAVAILABLE: %s", run.Sent-run.OK, run.Other(), want, run.summary())
			}
			if len(run.Calls) != run.Sent || run.Signal.IsZero() || run.Exit.Before(run.Signal) {
				t.Errorf("kept %d calls of %d, signal %v, exit %v", len(run.Calls), run.Sent, run.Signal, run.Exit)
			}
		})
	}
}

// The table has a row per case, with the lost answers and the other
// backend's figures; the picture is well-formed SVG, and the text table
// is written beside it.
func TestGRPCTable(t *testing.T) {
	r := &report{GRPCLoad: testGRPCLoad, GRPC: []grpcRun{
		{Case: grpcCases[0], Sent: 110, OK: 100, Codes: map[codes.Code]int{codes.Unavailable: 9, codes.DeadlineExceeded: 1}, OKBy: []int{100}, Sleeps: []int{101},
			Calls:  []grpcCall{{Lane: 0, Start: time.Unix(0, 0), End: time.Unix(0, 5e6), Backend: 0}, {Lane: 1, Start: time.Unix(0, 1e6), End: time.Unix(0, 2e6), Code: codes.Unavailable, Backend: -1}},
			Signal: time.Unix(0, 1e6), Exit: time.Unix(0, 6e6), Status: "0"},
		{Case: grpcCases[2], Sent: 200, OK: 200, Retried: 3, RetriedOK: 3, Codes: map[codes.Code]int{}, OKBy: []int{80, 120}, Sleeps: []int{80, 120},
			Err: fmt.Errorf("the step exited\nunder the load")},
	}}
	got := r.GRPCTable()
	for _, want := range []string{
		"| one backend, one shared `ClientConn` | 110 | 100 | 0 (0) | 9 | 1 | 100 / 101 | – | 1 |",
		"| two backends, one shared `ClientConn` | 200 | 200 | 3 (3) | 0 | 0 | 80 / 80 | 120 / 120 | 0 |",
		"- two backends, one shared `ClientConn`: the step exited under the load",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
	if (&report{}).GRPCTable() != "" {
		t.Error("a report without the scenario has a table")
	}
	if r.GRPCLost() != 1 || r.GRPCFailedWithTwo() != 0 {
		t.Errorf("lost %d, failed with two %d; want 1 and 0", r.GRPCLost(), r.GRPCFailedWithTwo())
	}
	dir := t.TempDir()
	if err := r.writeGRPCSVG(dir); err != nil {
		t.Fatal(err)
	}
	svg, err := os.ReadFile(filepath.Join(dir, "grpc.svg"))
	if err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(svg, new(struct{})); err != nil {
		t.Errorf("grpc.svg is not XML: %v", err)
	}
	// The page renders the section, its figures taken from the rows.
	page := filepath.Join(dir, "lab.md")
	if err := r.writeDoc(page); err != nil {
		t.Fatal(err)
	}
	doc, _ := os.ReadFile(page)
	for _, want := range []string{
		"## gRPC through SIGTERM",
		"| two backends, one shared `ClientConn` | 200 | 200 | 3 (3) |",
		"- one backend, one shared `ClientConn`: 100 calls answered, `sleeps=` 101.",
		"With one backend, 1 answers were lost",
		"grpc-go retried\n3 of these calls transparently",
		"](lab/grpc.svg)",
	} {
		if !strings.Contains(string(doc), want) {
			t.Errorf("lab.md lacks %q", want)
		}
	}
	text, err := os.ReadFile(filepath.Join(dir, "grpc.txt"))
	if err != nil || !strings.Contains(string(text), "one backend, one shared ClientConn                      110  100") {
		t.Errorf("grpc.txt: %v\n%s", err, text)
	}
}
