// Command 02-listener-close-connstate drains requests by hand, the way the
// first graceful-shutdown articles did it: it owns the net.Listener, closes
// it when SIGINT or SIGTERM arrives, and waits for the open connections,
// counted by the server's ConnState hook, before it exits.
//
// Usage:
//
//	make run-02 [ARGS="-addr localhost:8080 -shutdown-timeout 10s"]
//
// Then, from a second terminal, `curl localhost:8080/slow` and press Ctrl+C
// in the first: curl gets its answer, then the server exits.
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
	"sync"
	"syscall"
	"time"
)

// maxDelay caps /slow?d=, so that one request cannot hold a server forever.
const maxDelay = time.Minute

func main() {
	addr := flag.String("addr", "localhost:8080", `address to listen on; ":8080" listens on every interface`)
	shutdownTimeout := flag.Duration("shutdown-timeout", 10*time.Second, "how long to wait for open connections before cutting them")
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

	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", home)
	mux.HandleFunc("GET /slow", slow)

	// Catch the signals before serving, so that none arrives unhandled. The
	// channel is buffered: signal.Notify never blocks to deliver, and drops
	// a signal that finds nobody receiving on an unbuffered channel.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)

	// Own the listener, so that closing it is ours to do.
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		slog.Error("cannot listen", "addr", *addr, "err", err)
		os.Exit(1)
	}

	// Count connections, not requests. A connection is counted when it is
	// accepted (StateNew) and uncounted when it ends (StateClosed) or is
	// taken over by a handler (StateHijacked, after which the server never
	// reports it again). Counting requests instead, up on StateActive and
	// down on StateIdle, misses a request sent with Connection: close,
	// which goes from StateActive straight to StateClosed: the wait would
	// never end. A sync.WaitGroup is safe from the hook's goroutines, where
	// a plain int would race.
	var conns sync.WaitGroup
	srv := &http.Server{
		Handler: mux,
		// A client that connects and never finishes its request headers is
		// dropped after ReadHeaderTimeout, so it cannot hold the drain.
		ReadHeaderTimeout: 2 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      maxDelay + 10*time.Second, // longer than the slowest /slow
		IdleTimeout:       60 * time.Second,
		ConnState: func(_ net.Conn, state http.ConnState) {
			switch state {
			case http.StateNew:
				conns.Add(1)
			case http.StateClosed, http.StateHijacked:
				conns.Done()
			}
		},
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	slog.Info("listening", "addr", ln.Addr().String(), "pid", os.Getpid())

	sig := <-signals
	start := time.Now()
	slog.Info("shutdown started", "signal", sig)

	// Closing the listener refuses new connections at once, and makes
	// Serve return. Serve reports each new connection to the hook before
	// it accepts the next one, so once it has returned no Add can follow:
	// the Wait below cannot race with one.
	ln.Close()
	if err := <-serveErr; !errors.Is(err, net.ErrClosed) {
		slog.Error("server failed", "err", err)
		os.Exit(1)
	}

	// WaitGroup.Wait has no deadline, so wait for it in a goroutine and
	// give up when ours runs out. Exiting then cuts the connections left.
	drained := make(chan struct{})
	go func() {
		conns.Wait()
		close(drained)
	}()
	select {
	case <-drained:
		slog.Info("shutdown finished", "took", time.Since(start).Round(time.Millisecond))
	case <-time.After(*shutdownTimeout):
		slog.Error("shutdown forced", "took", time.Since(start).Round(time.Millisecond), "err", "connections still open at the deadline")
		os.Exit(1)
	}
}

// home answers at once, naming the step and the process that answered.
func home(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "02-listener-close-connstate, pid %d\n", os.Getpid())
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
