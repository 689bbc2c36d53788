package pitfalls

import (
	"context"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/gracefulgo/walkthrough/internal/demotest"
)

func init() { programs["log-fatal-serve-and-shutdown"] = logFatalServeAndShutdown }

// logFatalServeAndShutdown is the snippet pitfall 4 is about: a server
// that someone shuts down, whose serve goroutine ends in log.Fatal, with
// cleanup deferred in main. Its /slow takes a second.
func logFatalServeAndShutdown(addr string) {
	defer slog.Info("deferred cleanup ran")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		slog.Info("slow request started")
		select {
		case <-time.After(time.Second):
			io.WriteString(w, "slow request finished\n")
		case <-r.Context().Done():
		}
	})
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 2 * time.Second}
	go func() {
		log.Fatal(srv.ListenAndServe())
	}()
	slog.Info("listening", "addr", addr)

	<-ctx.Done()
	slog.Info("shutdown started")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		slog.Error("shutdown forced", "err", err)
		return
	}
	slog.Info("shutdown finished")
}

// TestLogFatalServeAndShutdown: both symptoms of pitfall 4, with the
// program docs/pitfalls.md shows. When the port is taken, log.Fatal exits
// 1 and main's deferred cleanup never runs. When the server is shut down,
// ListenAndServe returns ErrServerClosed at once, and log.Fatal exits 1 in
// the middle of the drain: the request in flight is cut, Shutdown never
// returns, the cleanup never runs.
func TestLogFatalServeAndShutdown(t *testing.T) {
	t.Run("port taken", func(t *testing.T) {
		taken, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer taken.Close()
		t.Setenv(programEnv, "log-fatal-serve-and-shutdown")
		p := demotest.StartAt(t, taken.Addr().String())
		if exit := p.WaitExit(); exit.Code != 1 {
			t.Errorf("%s, want exit status 1", exit)
		}
		if _, ran := p.Logged("deferred cleanup ran"); ran {
			t.Errorf("the deferred cleanup ran; log.Fatal runs none\n%s", p.Output())
		}
	})
	t.Run("shutdown", func(t *testing.T) {
		p := startProgram(t, "log-fatal-serve-and-shutdown")
		resp := p.GetAsync("/slow")
		p.WaitLog("slow request started")
		p.Signal(syscall.SIGTERM)
		if exit := p.WaitExit(); exit.Code != 1 {
			t.Errorf("%s, want exit status 1: log.Fatal on ErrServerClosed", exit)
		}
		if r := await(t, resp, "the client's answer"); r.Err == nil {
			t.Errorf("the request in flight got %v; want it cut by the exit", r)
		}
		for _, msg := range []string{"shutdown finished", "deferred cleanup ran"} {
			if _, ok := p.Logged(msg); ok {
				t.Errorf("logged %q; the exit comes before it\n%s", msg, p.Output())
			}
		}
	})
}
