// Command 15-behind-a-proxy is step 10 (readiness and a drain delay) with
// step 13's h2c and POST /count, run behind a real proxy: nginx or
// HAProxy, with the configurations in deploy/. A proxy keeps its
// connections to the program alive between requests, and whichever side
// closes an idle one first may close it just as the other writes a request
// on it: the keep-alive race, one hop behind the client. So the one new
// idea here is a rule for the steady state: the program's idle timeout
// must be longer than the proxy's upstream keep-alive timeout, so that the
// proxy, not the program, closes an idle connection. The program refuses,
// with exit status 2, an idle timeout it cannot honour.
//
// Usage:
//
//	make run-15 [PROXY=nginx]   HAProxy (or nginx) in front of two replicas
//	make roll-15                from a second terminal: replace them one at a time
//	make run-15 ARGS="-idle-timeout 75s -proxy-keepalive 60s -drain-delay 5s"
//
// ARGS go to each replica; make run-15 gives each its -addr. Then curl
// the port make run-15 names, and `curl -X POST localhost:8080/count`;
// the shutdown finished line of each replica says how many POSTs it
// processed.
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

// maxDelay caps /slow?d= and /count?d=, so that one request cannot hold a
// server forever.
const maxDelay = time.Minute

func main() {
	addr := flag.String("addr", "localhost:8080", `address to listen on; ":8080" listens on every interface`)
	shutdownTimeout := flag.Duration("shutdown-timeout", 10*time.Second, "how long to wait for in-flight requests before cutting them")
	drainDelay := flag.Duration("drain-delay", 5*time.Second, "how long to go on serving after SIGTERM, while the proxy learns that this replica is going")
	gracePeriod := flag.Duration("grace-period", 30*time.Second, "how long the supervisor waits after SIGTERM before it sends SIGKILL")
	idleTimeout := flag.Duration("idle-timeout", 75*time.Second, "how long a kept-alive connection may stay idle before the program closes it; longer than -proxy-keepalive")
	proxyKeepalive := flag.Duration("proxy-keepalive", 60*time.Second, "the proxy's upstream keep-alive timeout (nginx keepalive_timeout in the upstream block)")
	http2 := flag.Bool("http2", true, "also serve HTTP/2 without TLS (h2c, prior knowledge); -http2=false serves HTTP/1.1 only")
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
	// The new rule. net/http reads an IdleTimeout of 0 as "use
	// ReadTimeout" and a negative one as "never": neither is the value
	// given, so both are refused. And an idle timeout that is not longer
	// than the proxy's lets the program close a connection the proxy may
	// be writing its next request on: the race, in steady state.
	if err := checkIdleTimeout(*idleTimeout, *proxyKeepalive); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}

	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))

	var drain drain
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", home)
	mux.HandleFunc("GET /slow", slow)
	mux.HandleFunc("POST /count", count)
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

	// HTTP/1.1 always (nginx 1.22 speaks only HTTP/1.x to a proxy_pass
	// backend); HTTP/2 without TLS when asked (HAProxy's proto h2).
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(*http2)

	srv := &http.Server{
		// During the drain delay every response tells its client, here the
		// proxy, to close the connection; see drain.go.
		Handler:   drain.closeConnections(mux),
		Protocols: protocols,
		// A client that connects and never finishes its request headers is
		// dropped after ReadHeaderTimeout, so it cannot hold the drain.
		ReadHeaderTimeout: 2 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      maxDelay + 10*time.Second, // longer than the slowest /slow
		// Longer than the proxy's upstream keep-alive timeout: in steady
		// state the proxy closes an idle connection, never the program.
		IdleTimeout: *idleTimeout,
	}

	// Serve in the background and hand its result to main: buffered, so the
	// goroutine can always deliver it and end.
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(listener) }()
	slog.Info("listening", "addr", listener.Addr().String(), "pid", os.Getpid(), "http2", *http2, "idle_timeout", *idleTimeout)

	// Wait for whichever comes first. Serve only returns early if it
	// failed.
	select {
	case err := <-serveErr:
		slog.Error("server failed", "addr", *addr, "err", err)
		os.Exit(1)
	case <-ctx.Done():
	}
	// From here on /readyz answers 503, which HAProxy's health check
	// reads, and every response carries Connection: close, which makes
	// either proxy drop that upstream connection. The listener stays open.
	drain.begin()
	// Stop catching the signals: the next one ends the program at once.
	stop()
	start := time.Now()
	slog.Info("shutdown started", "cause", context.Cause(ctx))

	// The deploy has taken this replica out of the proxy's list (nginx: a
	// reload; HAProxy: its health check, or the runtime API), but that
	// takes time to reach every worker. Keep serving until it has.
	slog.Info("drain delay started", "delay", *drainDelay)
	select {
	case err := <-serveErr:
		slog.Error("server failed", "addr", *addr, "err", err)
		os.Exit(1)
	case <-time.After(*drainDelay):
	}
	slog.Info("drain delay finished", "took", time.Since(start).Round(time.Millisecond))

	// Now the proxy should be sending nothing new: Shutdown does what it
	// does in step 05. It closes the listener, closes idle connections
	// (sending each HTTP/2 one a GOAWAY), and waits for the active ones to
	// finish, until shutdownCtx expires.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
	err = srv.Shutdown(shutdownCtx)
	cancel()
	if err != nil {
		// The deadline passed with requests still running. Shutdown left
		// them alone; Close cuts their connections now, rather than at
		// exit, so nothing runs on past the deadline. A POST /count among
		// them has added its one, but its client never hears so.
		srv.Close()
		slog.Error("shutdown forced", "took", time.Since(start).Round(time.Millisecond), "count", counted.Load(), "err", err)
		os.Exit(1)
	}

	// Serve returned ErrServerClosed the moment Shutdown began;
	// anything else is a failure that the drain must not hide.
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		slog.Error("server failed", "addr", *addr, "err", err)
		os.Exit(1)
	}
	// count is how many POST /count this replica processed, answered or
	// not: a test compares it with the answers its clients got.
	slog.Info("shutdown finished", "took", time.Since(start).Round(time.Millisecond), "count", counted.Load())
}

// idleMargin is how much longer than the proxy's keep-alive timeout the
// program's idle timeout must be. The two clocks do not start together:
// the program's when it has written an answer, the proxy's when it has
// read it, later; and the proxy's close takes a moment to arrive.
const idleMargin = time.Second

// checkIdleTimeout says why the program cannot honour an idle timeout.
func checkIdleTimeout(idleTimeout, proxyKeepalive time.Duration) error {
	if idleTimeout <= 0 {
		return fmt.Errorf("-idle-timeout must be more than 0: net/http reads 0 as the read timeout and a negative value as no timeout at all")
	}
	if proxyKeepalive < 0 {
		return fmt.Errorf("-proxy-keepalive must not be negative")
	}
	if idleTimeout < proxyKeepalive+idleMargin {
		return fmt.Errorf("-idle-timeout %s must be at least %s longer than -proxy-keepalive %s: "+
			"otherwise the program may close an idle connection just as the proxy sends a request on it",
			idleTimeout, idleMargin, proxyKeepalive)
	}
	return nil
}

// home answers at once, naming the step and the process that answered.
func home(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "15-behind-a-proxy, pid %d\n", os.Getpid())
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
