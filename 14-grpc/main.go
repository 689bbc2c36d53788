// Command 14-grpc carries the lessons of steps 05, 10 and 11 over to a gRPC
// server (google.golang.org/grpc). GracefulStop waits for every RPC,
// streams included, and has no deadline of its own: one open stream holds
// it forever. So on SIGTERM this program makes four moves, in order:
//
//  1. health answers NOT_SERVING, and for -drain-delay the server goes on
//     serving while load balancers and probes learn it (step 10);
//  2. every stream that would never end by itself (Ticks, health Watch) is
//     ended on purpose with UNAVAILABLE, "server is shutting down" (step 11);
//  3. GracefulStop sends each connection a GOAWAY and waits for the
//     in-flight RPCs, for at most -shutdown-timeout (step 05);
//  4. if they are not done by then, Stop cuts them and the program exits 1.
//
// Usage:
//
//	make run-14 [ARGS="-addr localhost:8080 -shutdown-timeout 10s -drain-delay 0s"]
//
// Then, from a second terminal, `go tool -modfile=tools/go.mod grpcurl
// -plaintext -d '"5s"' localhost:8080 walkthrough.v1.Slow/Sleep` and press
// Ctrl+C in the first: the call gets its answer, then the server exits.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/gracefulgo/walkthrough/14-grpc/slowpb"
)

func main() {
	addr := flag.String("addr", "localhost:8080", `address to listen on; ":8080" listens on every interface`)
	shutdownTimeout := flag.Duration("shutdown-timeout", 10*time.Second, "how long GracefulStop may wait for in-flight RPCs before Stop cuts them")
	drainDelay := flag.Duration("drain-delay", 0, "how long to go on serving after SIGTERM, health NOT_SERVING, while load balancers and probes learn that this server is going")
	flag.Parse()
	// Parse stops at the first word that is not a flag: a word left over is
	// a mistyped flag, and the flags after it were never read.
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "%q is not a flag (flags start with -, as in -addr :8080)\n", flag.Arg(0))
		flag.Usage()
		os.Exit(2)
	}
	if *shutdownTimeout <= 0 {
		fmt.Fprintln(os.Stderr, "-shutdown-timeout must be more than 0")
		os.Exit(2)
	}
	if *drainDelay < 0 {
		fmt.Fprintln(os.Stderr, "-drain-delay must not be negative")
		os.Exit(2)
	}

	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))

	// The context is cancelled by the first SIGINT or SIGTERM. Catch them
	// before serving, so that none arrives unhandled.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)

	// Bind first: a taken port ends the program here, naming the address,
	// and "listening" below is true when it is logged.
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		slog.Error("server failed", "addr", *addr, "err", err)
		os.Exit(1)
	}

	// draining is cancelled when the drain begins: it ends the streams.
	draining, endStreams := context.WithCancel(context.Background())

	srv := grpc.NewServer(
		// A client that connects and never sends HTTP/2's preface holds
		// GracefulStop, and Stop too, until this timeout (120s by
		// default): both wait for every accepted connection's handshake.
		grpc.ConnectionTimeout(2 * time.Second),
	)
	slowpb.RegisterSlowServer(srv, &slowServer{draining: draining})
	healthSrv := &healthServer{Server: health.NewServer(), draining: draining}
	healthpb.RegisterHealthServer(srv, healthSrv)
	// Reflection lets grpcurl list and call the services with no .proto.
	reflection.Register(srv)
	// "" is the whole server, as a Kubernetes gRPC probe asks by default.
	healthSrv.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthSrv.SetServingStatus(slowpb.Slow_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)

	// Serve in the background and hand its result to main: buffered, so the
	// goroutine can always deliver it and end.
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	slog.Info("listening", "addr", ln.Addr().String(), "pid", os.Getpid())

	// Serve only returns early if it failed.
	select {
	case err := <-serveErr:
		slog.Error("server failed", "addr", *addr, "err", err)
		os.Exit(1)
	case <-ctx.Done():
	}
	// Stop catching the signals: the next one gets Go's default action and
	// ends the program at once, for whoever cannot wait for the drain.
	stop()
	start := time.Now()
	// The cause names the signal: "terminated signal received".
	slog.Info("shutdown started", "cause", context.Cause(ctx))

	// 1. NOT_SERVING for every service that has a status ("" and Slow), at
	// once, and to every health Watch stream on them: the load balancers
	// and probes stop sending. Shutdown also makes later SetServingStatus
	// calls no-ops.
	healthSrv.Shutdown()
	if *drainDelay > 0 {
		// Until they have all heard, they may still send: keep serving.
		slog.Info("drain delay started", "delay", *drainDelay)
		select {
		case err := <-serveErr:
			slog.Error("server failed", "addr", *addr, "err", err)
			os.Exit(1)
		case <-time.After(*drainDelay):
		}
		slog.Info("drain delay finished", "took", time.Since(start).Round(time.Millisecond))
	}

	// 2. End the streams that never end by themselves: Ticks, health Watch.
	// GracefulStop would wait for them until their clients went away.
	endStreams()

	// 3. GracefulStop closes the listener, waits for the handshakes in
	// progress (ConnectionTimeout above), sends every connection a GOAWAY,
	// and waits for the RPCs in flight. It has no deadline, so it runs in
	// the background, and main waits for it or for the budget.
	stopped := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(*shutdownTimeout):
		// 4. The budget is spent: Stop closes every connection and cancels
		// every RPC's context. It does not wait for the handlers (unless
		// the server was built with grpc.WaitForHandlers); those still
		// running end with the process.
		srv.Stop()
		slog.Error("shutdown forced", "took", time.Since(start).Round(time.Millisecond), "sleeps", slept.Load(),
			"err", fmt.Sprintf("GracefulStop not done within -shutdown-timeout=%s", *shutdownTimeout))
		os.Exit(1)
	}

	// Serve returns nil once GracefulStop is done; anything else is a
	// failure that the drain must not hide.
	if err := <-serveErr; err != nil {
		slog.Error("server failed", "addr", *addr, "err", err)
		os.Exit(1)
	}
	// sleeps is how many Sleep calls the server answered: a test compares
	// it with the answers its clients got.
	slog.Info("shutdown finished", "took", time.Since(start).Round(time.Millisecond), "sleeps", slept.Load())
}
