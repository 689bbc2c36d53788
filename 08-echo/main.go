// Command 08-echo is step 05 on echo v4. Unlike gin, echo owns its
// http.Server, e.Server, and has a Shutdown: e.Shutdown(ctx) is that
// server's Shutdown. So this is step 05 in echo's words: e.Start in a
// goroutine, the serve-error select, e.Shutdown with a deadline, and e.Close
// when the deadline passes.
//
// Usage:
//
//	make run-08 [ARGS="-addr localhost:8080 -shutdown-timeout 10s"]
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

	"github.com/labstack/echo/v4"
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

	e := echo.New()
	// e.Start prints a banner and a port line on stdout; our "listening"
	// line says where instead. It also makes e.StdLogger the server's
	// ErrorLog: send that to slog, with everything else.
	e.HideBanner = true
	e.HidePort = true
	e.StdLogger = slog.NewLogLogger(slog.Default().Handler(), slog.LevelError)
	e.Use(logRequests)
	// As ServeMux did in step 05, a GET route answers HEAD too. Another
	// method on a known path already gets 405 from echo.
	e.Match([]string{http.MethodGet, http.MethodHead}, "/", home)
	e.Match([]string{http.MethodGet, http.MethodHead}, "/slow", slow)

	// The context is cancelled by the first SIGINT or SIGTERM. Catch them
	// before serving, so that none arrives unhandled.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)

	// e.Server is the http.Server that e.Start serves and e.Shutdown stops;
	// e.Start fills in its Addr and Handler. It gets step 05's timeouts.
	e.Server = &http.Server{
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
	go func() { serveErr <- e.Start(*addr) }()
	// e.Start binds the port inside the goroutine, so this line can
	// come before the port is open, or just before the error saying it
	// could not be: the select below hears of that at once.
	slog.Info("listening", "addr", *addr, "pid", os.Getpid())

	// Wait for whichever comes first. e.Start only returns early if it
	// failed, for instance because the port is taken.
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

	// e.Shutdown shuts down e.TLSServer (never started here, so at once),
	// then e.Server: it closes the listener, closes idle keep-alive
	// connections, and waits for the active ones, until shutdownCtx expires.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
	err := e.Shutdown(shutdownCtx)
	cancel()
	if err != nil {
		// The deadline passed with requests still running. Shutdown left
		// them alone. Here the exit below cuts them anyway; Close matters
		// in a program with more to shut down after the server (a queue,
		// a database), to cut them first: step 06 does, and proves it.
		e.Close()
		slog.Error("shutdown forced", "took", time.Since(start).Round(time.Millisecond), "err", err)
		os.Exit(1)
	}

	// e.Start returned ErrServerClosed the moment Shutdown began; anything
	// else is a failure that the drain must not hide.
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		slog.Error("server failed", "addr", *addr, "err", err)
		os.Exit(1)
	}
	slog.Info("shutdown finished", "took", time.Since(start).Round(time.Millisecond))
}

// logRequests is echo middleware. A handler's error, echo's own 404 and 405
// included, only becomes a response in the error handler after the
// middleware returns; c.Error runs that now, so the status is known.
func logRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		if err := next(c); err != nil {
			c.Error(err)
		}
		status := c.Response().Status
		if !c.Response().Committed && c.Request().Context().Err() != nil {
			// Nothing was written and the connection is gone (the client
			// left, or Close cut it at the deadline): the client saw no
			// answer, not the 200 that echo reports for a handler that
			// wrote nothing.
			status = 0
		}
		slog.Info("request", "method", c.Request().Method, "path", c.Request().URL.Path,
			"status", status, "took", time.Since(start).Round(time.Millisecond))
		return nil
	}
}

// home answers at once, naming the step and the process that answered.
func home(c echo.Context) error {
	return c.String(http.StatusOK, fmt.Sprintf("08-echo, pid %d\n", os.Getpid()))
}

// slow stands for real work: it waits for ?d= (5s by default), then answers.
func slow(c echo.Context) error {
	d := 5 * time.Second
	// An empty d, or two of them, is a mistake to name, not a default.
	if vs, given := c.QueryParams()["d"]; given {
		parsed, err := time.ParseDuration(vs[0])
		if len(vs) > 1 || err != nil || parsed < 0 || parsed > maxDelay {
			// echo's error handler answers this with a 400 and a one-line JSON body.
			return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("bad d=%q: want one duration from 0s to %s, like 3s", strings.Join(vs, "&d="), maxDelay))
		}
		d = parsed
	}
	slog.Info("slow request started", "d", d)
	select {
	case <-time.After(d):
	case <-c.Request().Context().Done():
		// The client went away or the server cut the connection: nobody is
		// left to read an answer.
		slog.Info("slow request cancelled", "d", d, "cause", context.Cause(c.Request().Context()))
		return nil
	}
	slog.Info("slow request finished", "d", d)
	return c.String(http.StatusOK, fmt.Sprintf("slow request finished after %s\n", d))
}
