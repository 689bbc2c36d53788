// Command 10-kubernetes is step 05 made ready for a rolling update. When a
// pod is deleted, Kubernetes sends SIGTERM at the same moment as it marks
// the pod's endpoint terminating, no longer ready, and the load balancers
// learn of it later. So on SIGTERM this program does not close its
// listener: it answers /readyz with 503, which turns the endpoint's
// serving condition off, goes on serving for -drain-delay, with
// Connection: close on every response so that kept-alive clients move to
// another pod, and only then shuts down as step 05 does.
//
// Usage:
//
//	make run-10 [ARGS="-addr localhost:8080 -drain-delay 5s -shutdown-timeout 10s -grace-period 30s"]
//
// Then, from a second terminal, `curl localhost:8080/readyz` and press
// Ctrl+C in the first: for the next five seconds /readyz answers 503 while
// / and /slow still answer 200; then the server drains and exits.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// maxDelay caps /slow?d=, so that one request cannot hold a server forever.
const maxDelay = time.Minute

func main() {
	addr := flag.String("addr", "localhost:8080", `address to listen on; ":8080" listens on every interface`)
	shutdownTimeout := flag.Duration("shutdown-timeout", 10*time.Second, "how long to wait for in-flight requests before cutting them")
	drainDelay := flag.Duration("drain-delay", 5*time.Second, "how long to go on serving after SIGTERM, while the load balancers learn that this pod is going")
	gracePeriod := flag.Duration("grace-period", 30*time.Second, "the pod's terminationGracePeriodSeconds: the kubelet sends SIGKILL this long after SIGTERM")
	flag.Parse()
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
	// A budget that cannot fit is a deploy that ends in SIGKILL: say so
	// now, with the sums, rather than on the first rolling update.
	if err := checkBudget(*drainDelay, *shutdownTimeout, *gracePeriod); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}

	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))

	var drain drain
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", home)
	mux.HandleFunc("GET /slow", slow)
	mux.HandleFunc("GET /readyz", drain.readyz)
	mux.HandleFunc("GET /livez", livez)

	// The context is cancelled by the first SIGINT or SIGTERM. Catch them
	// before serving, so that none arrives unhandled.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)

	// Bind the port before saying so, as step 09 does: a port that is
	// taken ends the program here, and "listening" is never logged.
	listener, err := net.Listen("tcp", *addr)
	if err != nil {
		slog.Error("cannot listen", "addr", *addr, "err", err)
		os.Exit(1)
	}

	srv := &http.Server{
		// During the drain delay every response tells its client to close
		// the connection; see drain.go.
		Handler: drain.closeConnections(mux),
		// A client that connects and never finishes its request headers is
		// dropped after ReadHeaderTimeout, so it cannot hold the drain.
		ReadHeaderTimeout: 2 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      maxDelay + 10*time.Second, // longer than the slowest /slow
		IdleTimeout:       60 * time.Second,
	}

	// Serve in the background and hand its result to main: buffered, so the
	// goroutine can always deliver it and end.
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(listener) }()
	slog.Info("listening", "addr", listener.Addr().String(), "pid", os.Getpid())

	// Wait for whichever comes first. Serve only returns early if it
	// failed.
	select {
	case err := <-serveErr:
		slog.Error("server failed", "addr", *addr, "err", err)
		os.Exit(1)
	case <-ctx.Done():
	}
	// From here on /readyz answers 503 and every response carries
	// Connection: close. Nothing else changes: the listener stays open.
	drain.begin()
	// Stop catching the signals: the next one gets Go's default action and
	// ends the program at once, delay and drain included.
	stop()
	start := time.Now()
	// The cause names the signal: "terminated signal received".
	slog.Info("shutdown started", "cause", context.Cause(ctx))

	// The endpoint change that began with the signal takes time to reach
	// every kube-proxy and load balancer, and until it has they still send
	// this pod new connections. Keep serving them. A failure to serve
	// still ends the program at once.
	slog.Info("drain delay started", "delay", *drainDelay)
	select {
	case err := <-serveErr:
		slog.Error("server failed", "addr", *addr, "err", err)
		os.Exit(1)
	case <-time.After(*drainDelay):
	}
	slog.Info("drain delay finished", "took", time.Since(start).Round(time.Millisecond))

	// Now no one should be sending new connections: Shutdown does what it
	// does in step 05. It closes the listener, closes idle connections,
	// and waits for the active ones to finish, until shutdownCtx expires.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
	err = srv.Shutdown(shutdownCtx)
	cancel()
	if err != nil {
		// The deadline passed with requests still running. Shutdown left
		// them alone; Close cuts their connections now, rather than at
		// exit, so nothing runs on past the deadline.
		srv.Close()
		slog.Error("shutdown forced", "took", time.Since(start).Round(time.Millisecond), "err", err)
		os.Exit(1)
	}

	// Serve returned ErrServerClosed the moment Shutdown began;
	// anything else is a failure that the drain must not hide.
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		slog.Error("server failed", "addr", *addr, "err", err)
		os.Exit(1)
	}
	slog.Info("shutdown finished", "took", time.Since(start).Round(time.Millisecond))
}

// home answers at once, naming the step and the process that answered.
func home(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "10-kubernetes, pid %d\n", os.Getpid())
}

// slow stands for real work: it waits for ?d= (5s by default), then answers.
func slow(w http.ResponseWriter, r *http.Request) {
	d := 5 * time.Second
	// An empty d, or two of them, is a mistake to name, not a default.
	if vs, given := r.URL.Query()["d"]; given {
		parsed, err := time.ParseDuration(vs[0])
		if len(vs) > 1 || err != nil || parsed < 0 || parsed > maxDelay {
			http.Error(w, fmt.Sprintf("bad d=%q: want one duration from 0s to %s, like 3s", strings.Join(vs, "&d="), maxDelay), http.StatusBadRequest)
			return
		}
		d = parsed
	}
	slog.Info("slow request started", "d", d)
	select {
	case <-time.After(d):
	case <-r.Context().Done():
		// The client went away or the server cut the connection: nobody is
		// left to read an answer.
		slog.Info("slow request cancelled", "d", d, "cause", context.Cause(r.Context()))
		return
	}
	slog.Info("slow request finished", "d", d)
	fmt.Fprintf(w, "slow request finished after %s\n", d)
}
