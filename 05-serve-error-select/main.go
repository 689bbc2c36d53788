// Command 05-serve-error-select serves in a goroutine and selects on its
// error and on the signal, so a server that cannot listen exits at once
// instead of waiting for a signal that will never come. After Shutdown it
// waits for the serve goroutine, so nothing is left running behind main.
//
// Usage:
//
//	make run-05 [ARGS="-addr localhost:8080 -shutdown-timeout 10s"]
//
// Then, from a second terminal, `curl localhost:8080/slow` and press Ctrl+C
// in the first: curl gets its answer, then the server exits. Start a second
// copy on the same port and it exits at once, naming the address.
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

// maxDelay caps /slow?d=, so that one request cannot hold a server forever.
const maxDelay = time.Minute

func main() {
	addr := flag.String("addr", "localhost:8080", `address to listen on; ":8080" listens on every interface`)
	shutdownTimeout := flag.Duration("shutdown-timeout", 10*time.Second, "how long to wait for in-flight requests before cutting them")
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

	// The context is cancelled by the first SIGINT or SIGTERM. Catch them
	// before serving, so that none arrives unhandled.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)

	srv := &http.Server{
		Addr:    *addr,
		Handler: mux,
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
	slog.Info("listening", "addr", *addr, "pid", os.Getpid())

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

	// Shutdown does what step 02 did by hand, and more: it closes the
	// listeners, closes idle keep-alive connections, and waits for the
	// active ones to finish, until shutdownCtx expires.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
	err := srv.Shutdown(shutdownCtx)
	cancel()
	if err != nil {
		// The deadline passed with requests still running. Shutdown left
		// them alone. Here the exit below cuts them anyway; Close matters
		// in a program with more to shut down after the server (a queue,
		// a database), to cut them first: step 06 does, and proves it.
		srv.Close()
		slog.Error("shutdown forced", "took", time.Since(start).Round(time.Millisecond), "err", err)
		os.Exit(1)
	}

	// ListenAndServe returned ErrServerClosed the moment Shutdown began;
	// anything else is a failure that the drain must not hide.
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		slog.Error("server failed", "addr", *addr, "err", err)
		os.Exit(1)
	}
	slog.Info("shutdown finished", "took", time.Since(start).Round(time.Millisecond))
}

// home answers at once, naming the step and the process that answered.
func home(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "05-serve-error-select, pid %d\n", os.Getpid())
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
