// Command 01-naive is the server most tutorials start with:
// http.ListenAndServe and nothing else. It shows what a deploy does to it.
// SIGTERM or Ctrl+C kills the process at once, and every request it was
// still serving dies with it.
//
// Usage:
//
//	make run-01 [ARGS="-addr localhost:8080"]
//
// Then, from a second terminal, `curl localhost:8080/slow` and press Ctrl+C
// in the first: curl reports an empty reply.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"
)

// maxDelay caps /slow?d=, so that one request cannot hold a server forever.
const maxDelay = time.Minute

func main() {
	addr := flag.String("addr", "localhost:8080", `address to listen on; ":8080" listens on every interface`)
	flag.Parse()
	// Parse stops at the first word that is not a flag: a word left over is
	// a mistyped flag, and the flags after it were never read.
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "%q is not a flag (flags start with -, as in -addr :8080)\n", flag.Arg(0))
		flag.Usage()
		os.Exit(2)
	}

	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", home)
	mux.HandleFunc("GET /slow", slow)

	// ListenAndServe opens the port and serves until the process dies.
	// Nothing here catches a signal, so SIGINT and SIGTERM get Go's default
	// action: the process ends on the spot, requests and all. The log line
	// comes first because ListenAndServe does not return while it serves.
	slog.Info("listening", "addr", *addr, "pid", os.Getpid())
	err := http.ListenAndServe(*addr, mux)
	slog.Error("server failed", "addr", *addr, "err", err)
	os.Exit(1)
}

// home answers at once, naming the step and the process that answered.
func home(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "01-naive, pid %d\n", os.Getpid())
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
