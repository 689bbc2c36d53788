package pitfalls

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/gracefulgo/walkthrough/internal/demotest"
)

// programEnv names the program a re-executed test binary runs; see programs.
const programEnv = "PITFALLS_PROGRAM"

func TestMain(m *testing.M) {
	demotest.Main(m, func() {
		program, ok := programs[os.Getenv(programEnv)]
		if !ok {
			fmt.Fprintf(os.Stderr, "no program %q\n", os.Getenv(programEnv))
			os.Exit(2)
		}
		addr := flag.String("addr", "", "address to listen on")
		flag.Parse()
		slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))
		program(*addr)
	})
}

// startProgram runs the named program in a child process, on a free
// loopback port, and returns once it listens. Tests that call it must not
// run in parallel: the program's name travels in the environment.
func startProgram(t *testing.T, name string, args ...string) *demotest.Process {
	t.Helper()
	t.Setenv(programEnv, name)
	return demotest.Start(t, args...)
}

// The programs a child process can run, each the smallest program that
// shows one pitfall. Each gets the -addr it was given; the ones that listen
// log "listening" once they do.
var programs = map[string]func(addr string){
	"notify-os-kill":       notifyOSKill,
	"log-fatal-in-serve":   logFatalInServe,
	"return-serve-error":   returnServeError,
	"shutdown-with-budget": shutdownWithBudget,
	"exit-when-serve-ends": exitWhenServeEnds,
}

// notifyOSKill asks to be notified of os.Kill as well as SIGINT, as many
// examples on the web do, and runs its cleanup once it has caught one.
func notifyOSKill(addr string) {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, os.Kill)
	ln := listen(addr)
	defer ln.Close()
	sig := <-signals
	slog.Info("caught", "signal", sig)
	slog.Info("cleanup ran") // flushing, closing: what the list means to protect
}

// logFatalInServe serves in a goroutine that calls log.Fatal when serving
// fails, and has cleanup deferred in main.
func logFatalInServe(addr string) {
	defer slog.Info("deferred cleanup ran")
	go func() {
		log.Fatal(http.ListenAndServe(addr, nil))
	}()
	slog.Info("listening", "addr", addr)
	select {} // wait for a signal, as a server's main would
}

// returnServeError is logFatalInServe done right: the serve goroutine hands
// its error to main, which returns, so deferred cleanup runs.
func returnServeError(addr string) {
	defer slog.Info("deferred cleanup ran")
	serveErr := make(chan error, 1)
	go func() { serveErr <- http.ListenAndServe(addr, nil) }()
	slog.Info("listening", "addr", addr)
	slog.Error("server failed", "err", <-serveErr)
}

// shutdownWithBudget is step 05 cut to its bones: on SIGTERM it shuts down
// with the -shutdown-timeout it is given, logging as the steps do. Its
// /slow handler waits until its request is cancelled.
func shutdownWithBudget(addr string) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		slog.Info("slow request started")
		<-r.Context().Done()
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 2 * time.Second}
	ln := listen(addr)
	go srv.Serve(ln)
	<-ctx.Done()
	start := time.Now()
	slog.Info("shutdown started")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		srv.Close()
		slog.Error("shutdown forced", "took", time.Since(start).Round(time.Millisecond), "err", err)
		os.Exit(1)
	}
	slog.Info("shutdown finished", "took", time.Since(start).Round(time.Millisecond))
}

// exitWhenServeEnds calls Shutdown from the goroutine that waits for the
// signal, and returns from main as soon as ListenAndServe does. Its /slow
// takes a second.
func exitWhenServeEnds(addr string) {
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
		<-ctx.Done()
		srv.Shutdown(context.Background())
	}()
	slog.Info("listening", "addr", addr)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		slog.Error("server failed", "err", err)
		os.Exit(1)
	}
	// ErrServerClosed: main returns, and the process exits 0.
}

// shutdownTimeout is shutdownWithBudget's deadline. It is declared here,
// not in the program, so that it exists before TestMain parses the flags.
var shutdownTimeout = flag.Duration("shutdown-timeout", 10*time.Second, "how long shutdownWithBudget's drain may take")

// listen binds addr and logs "listening", or exits 1.
func listen(addr string) net.Listener {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		slog.Error("cannot listen", "addr", addr, "err", err)
		os.Exit(1)
	}
	slog.Info("listening", "addr", addr)
	return ln
}

// server is an in-process server on a free loopback port, for the pitfalls
// that need no process of their own.
type server struct {
	*http.Server
	addr     string
	serveErr chan error // what Serve returned
}

// startServer serves srv on a free loopback port until the test ends.
func startServer(t *testing.T, srv *http.Server) *server {
	t.Helper()
	ln := mustListen(t)
	s := &server{Server: srv, addr: ln.Addr().String(), serveErr: make(chan error, 1)}
	go func() { s.serveErr <- srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return s
}

// mustListen listens on a free loopback port.
func mustListen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// shutdownAsync calls Shutdown in the background; its result arrives on
// the channel.
func (s *server) shutdownAsync(ctx context.Context) <-chan error {
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(ctx) }()
	return done
}

// get sends GET path to the server in the background.
func (s *server) get(path string) <-chan demotest.Response { return getAsync(s.addr, path) }

// getAsync sends GET path to addr in the background, on a connection of
// its own, as curl would; the answer arrives on the channel, stamped with
// the time the client had all of it.
func getAsync(addr, path string) <-chan demotest.Response {
	resp := make(chan demotest.Response, 1)
	go func() {
		transport := &http.Transport{}
		defer transport.CloseIdleConnections()
		r, err := (&http.Client{Transport: transport}).Get("http://" + addr + path)
		if err != nil {
			resp <- demotest.Response{Err: err, At: time.Now()}
			return
		}
		defer r.Body.Close()
		body, err := io.ReadAll(r.Body)
		resp <- demotest.Response{Status: r.StatusCode, Body: string(body), Err: err, At: time.Now()}
	}()
	return resp
}

// await waits for a value on ch, or fails the test once
// demotest.EventTimeout has passed without one.
func await[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(demotest.EventTimeout):
		t.Fatalf("waited %s for %s", demotest.EventTimeout, what)
		panic("unreachable")
	}
}
