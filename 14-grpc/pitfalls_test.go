package main

import (
	"context"
	"flag"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gracefulgo/walkthrough/14-grpc/slowpb"
	"github.com/gracefulgo/walkthrough/internal/demotest"
	"github.com/gracefulgo/walkthrough/internal/proc"
	"github.com/gracefulgo/walkthrough/internal/slogline"
)

// The gRPC pitfalls of docs/pitfalls.md (27 to 30), each shown by the
// smallest server that makes it, run as a child process (this test binary
// again, told by STEP14_PITFALL which program to be) and talked to by a
// grpc-go client, beside step 14 where step 14 is the fix. Every claim about
// grpc-go is about v1.85.0's server.go, which the pitfalls quote.

// patience is how long a test waits for something that must never happen
// (an exit, a return) before it stops waiting. It is a patience, not a
// speed: what it waits for would come within milliseconds if the pitfall
// were fixed, and the test passes only because nothing comes at all.
const patience = 3 * time.Second

func init() {
	pitfallPrograms["graceful-stop-no-deadline"] = gracefulStopNoDeadline
	pitfallPrograms["stop-instead-of-graceful-stop"] = stopInsteadOfGracefulStop
	pitfallPrograms["graceful-stop-in-signal-goroutine"] = gracefulStopInSignalGoroutine
	pitfallPrograms["stop-with-deaf-handler"] = func() { stopWithDeafHandler(false) }
	pitfallPrograms["stop-with-deaf-handler-wait-for-handlers"] = func() { stopWithDeafHandler(true) }
}

// Pitfall 27: GracefulStop has no deadline of its own, and waits for every
// RPC, streams included. One client that keeps a stream open holds it, and
// the process, for ever: the deploy waits out its grace period and kills it.
func TestGracefulStopWithNoDeadline(t *testing.T) {
	t.Parallel()
	t.Run("pitfall: GracefulStop alone", func(t *testing.T) {
		t.Parallel()
		p := startPitfall(t, "graceful-stop-no-deadline")
		_, client := dial(t, p.Addr)
		ticks, err := client.Ticks(rpcContext(t), durationpb.New(10*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ticks.Recv(); err != nil {
			t.Fatalf("first tick: %v", err)
		}
		sendSignal(t, p, syscall.SIGTERM)
		started := awaitLog(t, p, "shutdown started")
		// A tick is stamped by the server's clock when it is sent: one
		// stamped after the test read "shutdown started" was sent while
		// GracefulStop ran. The stream is still served.
		for {
			tick, err := ticks.Recv()
			if err != nil {
				t.Fatalf("the stream ended during GracefulStop: %v; want it served on", err)
			}
			if tick.AsTime().After(started.At) {
				break
			}
		}
		if e, ok := p.AwaitExit(patience); ok {
			t.Fatalf("%v with a stream open; want GracefulStop to wait for it, and the process to wait with it", e)
		}
		if _, ok := p.Logged("shutdown finished"); ok {
			t.Fatal("GracefulStop returned with a stream open")
		}
		// Still ticking after the patience: nothing ends this stream but
		// its client, or a kill.
		if _, err := ticks.Recv(); err != nil {
			t.Errorf("the stream after %s of GracefulStop: %v; want it served on", patience, err)
		}
		p.Kill() // what the orchestrator does at the end of its grace period
	})
	t.Run("step 14: streams ended at the drain", func(t *testing.T) {
		t.Parallel()
		// A budget far longer than the test: the stream must not need it.
		p := demotest.Start(t, "-shutdown-timeout=1m")
		_, client := dial(t, p.Addr)
		ticks, err := client.Ticks(rpcContext(t), durationpb.New(10*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ticks.Recv(); err != nil {
			t.Fatalf("first tick: %v", err)
		}
		p.Signal(syscall.SIGTERM)
		if err := endOfStream(func() error { _, err := ticks.Recv(); return err }); err != nil {
			t.Errorf("Ticks: %v", err)
		}
		if e := p.WaitExit(); e.Code != 0 {
			t.Errorf("%v, want exit status 0", e)
		}
		if _, ok := p.Logged("shutdown finished"); !ok {
			t.Error(`no "shutdown finished": GracefulStop did not return`)
		}
	})
}

// gracefulStopNoDeadline calls GracefulStop on SIGTERM, with no timer. Its
// Ticks streams (step 14's, with a drain that never begins) end only when
// their clients go.
func gracefulStopNoDeadline() {
	ctx, ln := pitfallStart()
	srv := grpc.NewServer()
	slowpb.RegisterSlowServer(srv, &slowServer{draining: context.Background()})
	go srv.Serve(ln)
	<-ctx.Done()
	slog.Info("shutdown started")
	srv.GracefulStop()
	slog.Info("shutdown finished")
}

// Pitfall 28: Stop for GracefulStop. Stop closes every connection at once
// (server.go, closeServerTransportsLocked), so a call in flight at SIGTERM
// fails with UNAVAILABLE, and the process exits 0 as if all went well.
// Step 14 calls GracefulStop, and the same call gets its answer.
func TestStopInsteadOfGracefulStop(t *testing.T) {
	t.Parallel()
	t.Run("pitfall: Stop", func(t *testing.T) {
		t.Parallel()
		p := startPitfall(t, "stop-instead-of-graceful-stop")
		_, client := dial(t, p.Addr)
		// Longer than the whole test waits: an answer can only come if
		// Stop waited for it.
		answer := sleepAsync(t, client, 20*time.Second)
		awaitLog(t, p, "sleep started")
		sendSignal(t, p, syscall.SIGTERM)
		a := <-answer
		if got := status.Code(a.err); got != codes.Unavailable {
			t.Errorf("the Sleep in flight got %q, %v (code %v); want it cut: UNAVAILABLE", a.body, a.err, got)
		}
		e, ok := p.AwaitExit(demotest.EventTimeout)
		if !ok || e.Code != 0 {
			t.Errorf("%v (exited: %t); want exit status 0, which hides the cut", e, ok)
		}
		if _, ok := p.Logged("sleep finished"); ok {
			t.Error(`"sleep finished" logged: the call was not cut`)
		}
		t.Logf("the client saw: %v", a.err)
	})
	t.Run("step 14: GracefulStop", func(t *testing.T) {
		t.Parallel()
		p := demotest.Start(t)
		_, client := dial(t, p.Addr)
		answer := sleepAsync(t, client, 2*time.Second)
		p.WaitLog("sleep started")
		p.Signal(syscall.SIGTERM)
		if a := <-answer; a.err != nil || !strings.Contains(a.body, "slept 2s") {
			t.Errorf("the Sleep in flight got %q, %v; want its answer", a.body, a.err)
		}
		if e := p.WaitExit(); e.Code != 0 {
			t.Errorf("%v, want exit status 0", e)
		}
	})
}

// stopInsteadOfGracefulStop calls Stop on SIGTERM and returns.
func stopInsteadOfGracefulStop() {
	ctx, ln := pitfallStart()
	srv := grpc.NewServer()
	slowpb.RegisterSlowServer(srv, &slowServer{draining: context.Background()})
	go srv.Serve(ln)
	<-ctx.Done()
	slog.Info("shutdown started")
	srv.Stop()
	slog.Info("shutdown finished")
}

// Pitfall 29, grpc-go#1110 and #1372: GracefulStop called from the goroutine
// that caught the signal, while main returns as soon as Serve does. In 2017
// Serve returned at once, and the calls in flight died with the process.
// Since grpc-go#1485, Serve waits for the stop to be done (server.go, the
// deferred <-s.done.Done() in Serve), so the call in flight is answered;
// what still bites is everything the signal goroutine does after
// GracefulStop returns: main is already returning, and the flush is lost.
func TestGracefulStopFromTheSignalGoroutine(t *testing.T) {
	t.Parallel()
	p := startPitfall(t, "graceful-stop-in-signal-goroutine")
	_, client := dial(t, p.Addr)
	// Two seconds, so that the signal surely comes while the call runs.
	answer := sleepAsync(t, client, 2*time.Second)
	awaitLog(t, p, "sleep started")
	sendSignal(t, p, syscall.SIGTERM)
	if a := <-answer; a.err != nil || !strings.Contains(a.body, "slept 2s") {
		t.Errorf("the Sleep in flight got %q, %v; want its answer: Serve waits for GracefulStop since grpc-go#1485", a.body, a.err)
	}
	e, ok := p.AwaitExit(demotest.EventTimeout)
	if !ok || e.Code != 0 {
		t.Fatalf("%v (exited: %t), want exit status 0", e, ok)
	}
	// Every line is in once the process has exited.
	if before, err := p.LoggedBefore("shutdown started", "sleep finished"); err != nil || !before {
		t.Errorf(`want "shutdown started" before "sleep finished", the call in flight at the signal (%v)`, err)
	}
	if _, ok := p.Logged("serve returned"); !ok {
		t.Error(`no "serve returned": main did not return when Serve did`)
	}
	if _, ok := p.Logged("flush finished"); ok {
		t.Error(`"flush finished" logged: the work after GracefulStop was not lost`)
	}
}

// flushTakes is how long the program's flush takes, standing for closing a
// database or flushing logs to a collector. It is a patience for main: main
// returns within microseconds of Serve, and the flush is lost however
// short it is; five seconds make that certain on a loaded machine.
const flushTakes = 5 * time.Second

// gracefulStopInSignalGoroutine is the program of grpc-go#1372: the
// goroutine that catches the signal calls GracefulStop, then flushes; main
// returns when Serve does.
func gracefulStopInSignalGoroutine() {
	ctx, ln := pitfallStart()
	srv := grpc.NewServer()
	slowpb.RegisterSlowServer(srv, &slowServer{draining: context.Background()})
	go func() {
		<-ctx.Done()
		slog.Info("shutdown started")
		srv.GracefulStop()
		slog.Info("flush started")
		time.Sleep(flushTakes)
		slog.Info("flush finished")
	}()
	if err := srv.Serve(ln); err != nil {
		slog.Error("server failed", "err", err)
		os.Exit(1)
	}
	slog.Info("serve returned")
}

// Pitfall 30, grpc-go#6921: a handler that ignores its context. Stop closes
// the connections, cancels every RPC's context and returns without waiting
// for the handlers (WaitForHandlers is false by default), so the handler
// goes on running after Stop returned. GracefulStop waits for every handler
// (server.go, stop: handlersWG.Wait() when graceful), even after a Stop:
// it never returns. Built with grpc.WaitForHandlers(true), Stop waits for
// them too, and never returns either.
func TestHandlerIgnoringItsContext(t *testing.T) {
	t.Parallel()
	// deafStream opens the program's stream and waits for its first
	// message, so that the handler is running.
	deafStream := func(t *testing.T, p *proc.Process) slowpb.Slow_TicksClient {
		_, client := dial(t, p.Addr)
		stream, err := client.Ticks(rpcContext(t), durationpb.New(100*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); err != nil {
			t.Fatalf("first message: %v", err)
		}
		return stream
	}
	// cut checks that the stream failed: Stop closed its connection.
	cut := func(t *testing.T, stream slowpb.Slow_TicksClient) {
		_, err := stream.Recv()
		if got := status.Code(err); got != codes.Unavailable {
			t.Errorf("the stream after Stop: %v (code %v); want it cut: UNAVAILABLE", err, got)
		}
	}
	t.Run("Stop returns, the handler runs on", func(t *testing.T) {
		t.Parallel()
		p := startPitfall(t, "stop-with-deaf-handler")
		stream := deafStream(t, p)
		sendSignal(t, p, syscall.SIGTERM)
		cut(t, stream)
		stopped := awaitLog(t, p, "stop returned")
		// The event: a line from the handler after Stop returned.
		l, ok := awaitAfter(p, stopped, demotest.EventTimeout, "handler working", "handler returned")
		if !ok {
			t.Fatalf("no line from the handler after Stop returned (%s); want it still working", state(p))
		}
		if l.Msg() != "handler working" {
			t.Fatalf("after Stop returned: %q; want the handler still working", l.Raw)
		}
		// GracefulStop, called after Stop, waits for the handler.
		if _, ok := p.AwaitLog("graceful stop returned", patience); ok {
			t.Error("GracefulStop after Stop returned while the handler ran")
		}
		if _, ok := p.Logged("handler returned"); ok {
			t.Error("the handler returned: it heard its context")
		}
	})
	t.Run("WaitForHandlers: Stop never returns", func(t *testing.T) {
		t.Parallel()
		p := startPitfall(t, "stop-with-deaf-handler-wait-for-handlers")
		stream := deafStream(t, p)
		sendSignal(t, p, syscall.SIGTERM)
		// Stop closes the connections before it waits for the handlers.
		cut(t, stream)
		started := awaitLog(t, p, "shutdown started")
		if _, ok := awaitAfter(p, started, demotest.EventTimeout, "handler working"); !ok {
			t.Fatalf("the handler logged nothing after the signal (%s); want it still working", state(p))
		}
		if _, ok := p.AwaitLog("stop returned", patience); ok {
			t.Error("Stop returned with WaitForHandlers(true) and a handler running")
		}
		if _, ok := p.Logged("handler returned"); ok {
			t.Error("the handler returned: it heard its context")
		}
	})
}

// deafServer's Ticks sends one message, then works on for ever without
// looking at its context, as a handler busy with an export or a batch
// does when nothing in its loop checks ctx.
type deafServer struct {
	slowpb.UnimplementedSlowServer
}

func (deafServer) Ticks(in *durationpb.Duration, stream grpc.ServerStreamingServer[timestamppb.Timestamp]) error {
	defer slog.Info("handler returned")
	if err := stream.Send(timestamppb.Now()); err != nil {
		return err
	}
	every := in.AsDuration()
	for n := 1; ; n++ {
		time.Sleep(every) // a piece of work; nothing here reads stream.Context()
		slog.Info("handler working", "n", n)
	}
}

// stopWithDeafHandler calls Stop on SIGTERM, then GracefulStop, logging
// after each returns, with deafServer's handler running.
func stopWithDeafHandler(waitForHandlers bool) {
	ctx, ln := pitfallStart()
	srv := grpc.NewServer(grpc.WaitForHandlers(waitForHandlers))
	slowpb.RegisterSlowServer(srv, deafServer{})
	go srv.Serve(ln)
	<-ctx.Done()
	slog.Info("shutdown started")
	srv.Stop()
	slog.Info("stop returned")
	srv.GracefulStop()
	slog.Info("graceful stop returned")
}

// pitfallStart is what every pitfall program does first: catch SIGINT and
// SIGTERM, then listen on -addr and log "listening" once bound.
func pitfallStart() (context.Context, net.Listener) {
	flags := flag.NewFlagSet(os.Getenv(pitfallEnv), flag.ExitOnError)
	addr := flags.String("addr", "localhost:8080", "address to listen on")
	_ = flags.Parse(os.Args[1:]) // ExitOnError: a bad flag exits 2 inside Parse
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))
	// Caught before "listening", so that no signal arrives unhandled. The
	// process ends when the program returns, so stop is never needed.
	ctx, _ := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		slog.Error("server failed", "addr", *addr, "err", err)
		os.Exit(1)
	}
	slog.Info("listening", "addr", ln.Addr().String(), "pid", os.Getpid())
	return ctx, ln
}

// startPitfall runs the named pitfall program in a child process on a free
// loopback port, and returns once it listens. The program's name travels in
// the child's own environment, so the tests run in parallel.
func startPitfall(t *testing.T, name string, args ...string) *proc.Process {
	t.Helper()
	cmd := demotest.Command(args...)
	cmd.Env = append(cmd.Environ(), pitfallEnv+"="+name)
	p, err := proc.Start(demotest.FreeAddr(t), cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.Output())
		}
	})
	awaitLog(t, p, "listening")
	if err := p.AwaitAnswer(demotest.EventTimeout); err != nil {
		t.Fatalf("%s logged listening but %v", name, err)
	}
	return p
}

// awaitLog waits for a line with msg, or fails the test.
func awaitLog(t *testing.T, p *proc.Process, msg string) slogline.Line {
	t.Helper()
	l, ok := p.AwaitLog(msg, demotest.EventTimeout)
	if !ok {
		t.Fatalf("never logged msg=%q (%s)", msg, state(p))
	}
	return l
}

// state is how the process ended, or "still running".
func state(p *proc.Process) string {
	if e, exited := p.Exited(); exited {
		return e.String()
	}
	return "still running"
}

// awaitAfter waits up to timeout for the first line, after the line after,
// whose msg is one of msgs. It reports false if the process exits or the
// time runs out first.
func awaitAfter(p *proc.Process, after slogline.Line, timeout time.Duration, msgs ...string) (slogline.Line, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	seen, found := 0, false
	for exited := false; ; {
		lines, grew := p.Watch()
		for ; seen < len(lines); seen++ {
			l := lines[seen]
			if !found {
				found = l.Raw == after.Raw && l.At.Equal(after.At)
				continue
			}
			for _, msg := range msgs {
				if l.Msg() == msg {
					return l, true
				}
			}
		}
		if exited {
			return slogline.Line{}, false
		}
		select {
		case <-grew:
		case <-p.Done():
			exited = true // every line is in now: look once more
		case <-deadline.C:
			return slogline.Line{}, false
		}
	}
}

// sendSignal sends sig to the process, or fails the test.
func sendSignal(t *testing.T, p *proc.Process, sig os.Signal) {
	t.Helper()
	if _, err := p.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

// sleepAnswer is what a call of Sleep got.
type sleepAnswer struct {
	body string
	err  error
}

// sleepAsync calls Sleep(d) in the background.
func sleepAsync(t *testing.T, client slowpb.SlowClient, d time.Duration) <-chan sleepAnswer {
	done := make(chan sleepAnswer, 1)
	ctx := rpcContext(t)
	go func() {
		a, err := client.Sleep(ctx, durationpb.New(d))
		done <- sleepAnswer{a.GetValue(), err}
	}()
	return done
}
