package pitfalls

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"
)

// TestShutdownWithTheSignalContext: the deadline for Shutdown is derived
// from the context that signal.NotifyContext gave, after that context was
// cancelled by the signal. A context derived from a cancelled one is
// cancelled already, whatever timeout it is given, so Shutdown returns
// context.Canceled at once, main returns, and the request in flight dies,
// while the code reads as a minute's drain. The fixed program derives the
// deadline from context.Background(), as steps 03 to 08 do.
func TestShutdownWithTheSignalContext(t *testing.T) {
	for _, tc := range []struct {
		program string
		d       string // how long the request in flight takes
		cut     bool
	}{
		// The request would take 30s, inside the minute the code promises.
		{"shutdown-with-signal-context", "30s", true},
		{"shutdown-with-background-context", "300ms", false},
	} {
		t.Run(tc.program, func(t *testing.T) {
			p := startProgram(t, tc.program)
			resp := p.GetAsync("/slow?d=" + tc.d)
			p.WaitLog("slow request started")
			p.Signal(syscall.SIGTERM)
			r := await(t, resp, "the client's answer")
			exit := p.WaitExit()
			if !tc.cut {
				if !r.OK() || exit.Code != 0 {
					t.Errorf("the request got %v, %s; want 200 and exit status 0", r, exit)
				}
				return
			}
			if r.Err == nil {
				t.Errorf("the request in flight got %v; want it cut at once", r)
			}
			line, ok := p.Logged("shutdown failed")
			if !ok || line.Attr("err") != context.Canceled.Error() {
				t.Errorf("Shutdown returned %q, want %q at once", line.Attr("err"), context.Canceled)
			}
		})
	}
}

func init() {
	programs["shutdown-with-signal-context"] = shutdownWithSignalContext
	programs["shutdown-with-background-context"] = shutdownWithBackgroundContext
}

// shutdownWithSignalContext is the snippet: once the signal has cancelled
// ctx, it makes the deadline from ctx, and reuses the name for it.
func shutdownWithSignalContext(addr string) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv := slowServer(addr)
	go srv.ListenAndServe()
	slog.Info("listening", "addr", addr)

	<-ctx.Done()
	// Give the requests in flight a minute to finish.
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		slog.Error("shutdown failed", "err", err)
	}
}

// shutdownWithBackgroundContext is the same program with the fix: the
// deadline starts from context.Background(), which no signal cancels.
func shutdownWithBackgroundContext(addr string) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv := slowServer(addr)
	go srv.ListenAndServe()
	slog.Info("listening", "addr", addr)

	<-ctx.Done()
	// Give the requests in flight a minute to finish.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		slog.Error("shutdown failed", "err", err)
	}
}

// slowServer is a server on addr whose GET /slow?d= waits d, or until its
// request is cancelled.
func slowServer(addr string) *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		d, err := time.ParseDuration(r.URL.Query().Get("d"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		slog.Info("slow request started", "d", d)
		select {
		case <-time.After(d):
			fmt.Fprintf(w, "slow request finished after %s\n", d)
		case <-r.Context().Done():
		}
	})
	return &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 2 * time.Second}
}
