// Command 11-streaming is step 05 with two kinds of stream that never end by
// themselves: Server-Sent Events on /events and a WebSocket echo on /ws. At
// shutdown it ends both on purpose, politely and fast: each event stream
// gets a last "shutdown" event and ends, each WebSocket gets a close frame
// with status 1001 (going away), all within the one -shutdown-timeout. The
// page /watch shows the stream the way a user sees it.
//
// Usage:
//
//	make run-11 [ARGS="-addr localhost:8080 -shutdown-timeout 10s -tick 1s -write-timeout 70s"]
//
// Then open http://localhost:8080/watch in a browser and press Ctrl+C in the
// terminal: the page says the server is going away; start the server again
// and the page reconnects to the new pid. Or `curl -N localhost:8080/events`.
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
	shutdownTimeout := flag.Duration("shutdown-timeout", 10*time.Second, "how long to wait for in-flight requests and streams before cutting them")
	tick := flag.Duration("tick", time.Second, "how often /events sends a tick")
	writeTimeout := flag.Duration("write-timeout", maxDelay+10*time.Second, "the server's WriteTimeout, and how long each event of a stream may take to write")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "%q is not a flag (flags start with -, as in -addr :8080)\n", flag.Arg(0))
		flag.Usage()
		os.Exit(2)
	}
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"-shutdown-timeout", *shutdownTimeout}, {"-tick", *tick}, {"-write-timeout", *writeTimeout}} {
		if f.d <= 0 {
			fmt.Fprintln(os.Stderr, f.name, "must be more than 0")
			os.Exit(2)
		}
	}

	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))

	// goingAway is cancelled the moment the shutdown begins (see
	// RegisterOnShutdown below). Every stream watches it: Shutdown waits
	// for requests to end, and a stream never ends by itself.
	goingAway, endStreams := context.WithCancel(context.Background())
	sockets := newSockets(goingAway)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", home)
	mux.HandleFunc("GET /slow", slow)
	mux.Handle("GET /events", events(goingAway, *tick, *writeTimeout))
	mux.HandleFunc("GET /ws", sockets.echo)
	mux.HandleFunc("GET /watch", watch)

	// The context is cancelled by the first SIGINT or SIGTERM. Catch them
	// before serving, so that none arrives unhandled.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)

	// Bind before anything says it listens: a port that is taken stops the
	// program here, naming the address, with no "listening" line before.
	listener, err := net.Listen("tcp", *addr)
	if err != nil {
		slog.Error("cannot listen", "addr", *addr, "err", err)
		os.Exit(1)
	}

	srv := &http.Server{
		Handler: mux,
		// A client that connects and never finishes its request headers is
		// dropped after ReadHeaderTimeout, so it cannot hold the drain.
		ReadHeaderTimeout: 2 * time.Second,
		ReadTimeout:       10 * time.Second,
		// WriteTimeout bounds a whole response, and a stream is one response
		// that lasts: /events moves its own write deadline on at each event.
		WriteTimeout: *writeTimeout,
		IdleTimeout:  60 * time.Second,
		// A WebSocket's connection is hijacked: net/http forgets it, so the
		// echo keeps it, to cut it if the close handshake runs out of time.
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, netConnKey{}, c)
		},
	}
	// Shutdown calls this as it starts, after closing the listener. Every
	// event stream then sends its last event and ends, and every WebSocket
	// starts its close handshake; ordinary requests are left to finish.
	srv.RegisterOnShutdown(endStreams)

	// Serve in the background and hand its result to main: buffered, so the
	// goroutine can always deliver it and end.
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(listener) }()
	slog.Info("listening", "addr", *addr, "pid", os.Getpid())

	// Wait for whichever comes first. Serve only returns early if it
	// failed.
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

	// One budget for everything. Shutdown waits for the requests, event
	// streams included, which end as soon as it starts. It neither waits
	// for nor closes the WebSockets: the echo's own tracking does, after.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
	err = srv.Shutdown(shutdownCtx)
	if err == nil {
		err = sockets.wait(shutdownCtx)
	}
	cancel()
	if err != nil {
		// The deadline passed with requests or WebSockets still open, or a
		// WebSocket's close went unanswered and was cut. Close cuts the
		// requests' connections but not the hijacked ones: cut closes those. Exiting would close both; a program with more to
		// shut down after the server must not leave them open meanwhile.
		srv.Close()
		sockets.cut()
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
	fmt.Fprintf(w, "11-streaming, pid %d\n", os.Getpid())
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
