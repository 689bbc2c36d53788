// Command 13-http2 is step 05 serving HTTP/1.1 and HTTP/2 without TLS (h2c)
// on the same port. Over HTTP/2, Shutdown sends each connection a GOAWAY
// that names the last request the server will answer, so a client knows
// which requests it may send again: the keep-alive race of HTTP/1.1, where
// an idle connection closes just as the client writes on it, no longer
// leaves the client guessing whether its request was processed.
//
// Usage:
//
//	make run-13 [ARGS="-addr localhost:8080 -shutdown-timeout 10s -http2=false"]
//
// Then, from a second terminal, `curl --http2-prior-knowledge
// localhost:8080/slow` and press Ctrl+C in the first: curl gets its answer
// over HTTP/2, then the server exits. `curl -X POST localhost:8080/count`
// adds one to a counter; the shutdown finished line says how many it added.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
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
	http2 := flag.Bool("http2", true, "also serve HTTP/2 without TLS (h2c, prior knowledge); -http2=false serves HTTP/1.1 only")
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
	mux.HandleFunc("POST /count", count)

	// The context is cancelled by the first SIGINT or SIGTERM. Catch them
	// before serving, so that none arrives unhandled.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)

	// HTTP/1.1 always; HTTP/2 without TLS when asked. A connection that
	// opens with HTTP/2's preface is served as HTTP/2, any other as
	// HTTP/1.1, on the same port. Browsers speak HTTP/2 only over TLS:
	// with a certificate, SetHTTP2(true) does the same for them.
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(*http2)

	srv := &http.Server{
		Addr:      *addr,
		Handler:   mux,
		Protocols: protocols,
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
	go func() { serveErr <- srv.ListenAndServe() }()
	// ListenAndServe binds the port inside the goroutine, so this line can
	// come before the port is open, or just before the error saying it
	// could not be: the select below hears of that at once.
	slog.Info("listening", "addr", *addr, "pid", os.Getpid(), "http2", *http2)

	// Wait for whichever comes first. ListenAndServe only returns early if
	// it failed, for instance because the port is taken.
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
	// The cause names the signal: "interrupt signal received".
	slog.Info("shutdown started", "cause", context.Cause(ctx))

	// Shutdown closes the listeners and the idle HTTP/1.1 connections, and
	// sends every HTTP/2 connection a GOAWAY: "I answer up to stream N,
	// send the rest elsewhere". Then it waits for the active requests,
	// until shutdownCtx expires.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
	err := srv.Shutdown(shutdownCtx)
	cancel()
	if err != nil {
		// The deadline passed with requests still running: cut them. A
		// POST /count among them has added its one, but its client never
		// hears so.
		srv.Close()
		slog.Error("shutdown forced", "took", time.Since(start).Round(time.Millisecond), "count", counted.Load(), "err", err)
		os.Exit(1)
	}

	// ListenAndServe returned ErrServerClosed the moment Shutdown began;
	// anything else is a failure that the drain must not hide.
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		slog.Error("server failed", "addr", *addr, "err", err)
		os.Exit(1)
	}
	// count is how many POST /count the server processed, answered or
	// not: a test compares it with the answers its clients got.
	slog.Info("shutdown finished", "took", time.Since(start).Round(time.Millisecond), "count", counted.Load())
}

// home answers at once, naming the step and the process that answered.
func home(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "13-http2, pid %d\n", os.Getpid())
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
