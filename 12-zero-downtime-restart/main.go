// Command 12-zero-downtime-restart restarts without closing its port. On
// SIGHUP it starts the binary now on disk (a deploy replaced it) and hands
// it the listening socket with cloudflare/tableflip; once the new process
// serves and says it is ready, the old one stops keep-alives, drains with
// Shutdown and exits 0. The socket never closes, so no connection is
// refused. SIGINT and SIGTERM still shut down gracefully, as in step 05.
//
// Usage:
//
//	make run-12 [ARGS="-addr localhost:8080 -shutdown-timeout 10s -upgrade-timeout 1m -pid-file /tmp/12.pid"]
//
// Then, from a second terminal, run `curl localhost:8080/` in a loop and
// `kill -HUP <pid>`: the pid in the answers changes, and no curl fails.
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

	"github.com/cloudflare/tableflip"
)

// maxDelay caps /slow?d=, so that one request cannot hold a server forever.
const maxDelay = time.Minute

func main() {
	addr := flag.String("addr", "localhost:8080", `address to listen on; ":8080" listens on every interface`)
	shutdownTimeout := flag.Duration("shutdown-timeout", 10*time.Second, "how long to wait for in-flight requests before cutting them")
	upgradeTimeout := flag.Duration("upgrade-timeout", time.Minute, "how long a new binary started by SIGHUP may take to be ready before it is killed")
	pidFile := flag.String("pid-file", "", "file that names the serving process, rewritten after every upgrade (systemd's PIDFile=); none if empty")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "%q is not a flag (flags start with -, as in -addr :8080)\n", flag.Arg(0))
		flag.Usage()
		os.Exit(2)
	}
	if *shutdownTimeout <= 0 || *upgradeTimeout <= 0 {
		fmt.Fprintln(os.Stderr, "-shutdown-timeout and -upgrade-timeout must be more than 0")
		os.Exit(2)
	}
	// See pidfile.go: tableflip writes the PID file only at Ready, and its
	// errors name a temporary file of its own, not the path given here.
	if err := checkPIDFile(*pidFile); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}

	// Two processes share this stderr during an upgrade (and the journal
	// sees one stream), so every line says which process wrote it.
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)).With("pid", os.Getpid()))

	// The upgrader holds the sockets to hand over. In a process started
	// by an upgrade it also holds the ones the parent handed down.
	upg, err := tableflip.New(tableflip.Options{UpgradeTimeout: *upgradeTimeout, PIDFile: *pidFile})
	if err != nil {
		slog.Error("cannot upgrade", "err", err)
		os.Exit(1)
	}

	// Catch the signals before serving, so that none arrives unhandled.
	// SIGHUP's default action would end the program.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	hangup := make(chan os.Signal, 1)
	signal.Notify(hangup, syscall.SIGHUP)

	// The parent's socket if there is one, else a new one: either way the
	// upgrader keeps a copy to hand to the next binary.
	ln, err := upg.Listen("tcp", *addr)
	if err != nil {
		slog.Error("cannot listen", "addr", *addr, "err", err)
		upg.Stop()
		os.Exit(1)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", home)
	mux.HandleFunc("GET /slow", slow)
	// See handover.go: how the old process lets go of kept-alive
	// connections without closing one under a client's request.
	keepAlives := newKeepAlives()

	srv := &http.Server{
		Handler:   keepAlives.handler(mux),
		ConnState: keepAlives.track,
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
	go func() { serveErr <- srv.Serve(ln) }()
	slog.Info("listening", "addr", *addr)

	// tableflip refuses to upgrade a process started by an upgrade until
	// the one that started it has exited; until then a SIGHUP is ignored,
	// below. A first start has no parent to wait for.
	parentGone := make(chan struct{})
	if upg.HasParent() {
		go func() {
			_ = upg.WaitForParent(context.Background())
			close(parentGone)
		}()
	} else {
		close(parentGone)
	}

	// Ready writes the pid file and, in a process started by an upgrade,
	// tells the parent to let go: from here this process serves.
	if err := upg.Ready(); err != nil {
		slog.Error("not ready", "err", readyError(err, *pidFile))
		upg.Stop()
		os.Exit(1)
	}

	// Wait for a signal to stop, for an upgrade to hand over, or for the
	// server to fail. One upgrade at a time: tableflip would refuse a
	// second one, and saying so here keeps the log plain.
	upgradeResult := make(chan error, 1)
	upgrading := false
	upgraded := false // the new process is ready, and has the socket
	handedOver := false
wait:
	for {
		select {
		case err := <-serveErr:
			slog.Error("server failed", "addr", *addr, "err", err)
			upg.Stop()
			os.Exit(1)
		case <-ctx.Done():
			break wait
		case <-upg.Exit():
			// The new process is ready and has the socket.
			handedOver = true
			break wait
		case <-hangup:
			if upgrading {
				slog.Warn("upgrade ignored", "reason", "an upgrade is in progress")
				continue
			}
			select {
			case <-parentGone:
			default:
				slog.Warn("upgrade ignored", "reason", "the previous process is still draining; send SIGHUP again once it has exited")
				continue
			}
			upgrading = true
			slog.Info("upgrade started")
			go func() { upgradeResult <- upg.Upgrade() }()
		case err := <-upgradeResult:
			if err != nil {
				// The new binary could not be started, exited, or was not
				// ready in time (then the upgrader killed it): this process
				// goes on serving.
				slog.Error("upgrade failed", "err", err)
				upgrading = false
			} else {
				// Exit is closed next; a SIGHUP meanwhile is ignored.
				upgraded = true
			}
		}
	}
	// Stop catching SIGINT and SIGTERM: the next one ends the program at
	// once, for whoever cannot wait for the drain. A SIGHUP is still
	// caught, and ignored: after a hand-over systemd's $MAINPID names this
	// process until it exits, so a reload meanwhile comes here.
	stop()
	go func() {
		for range hangup {
			slog.Warn("upgrade ignored", "reason", "this process is shutting down")
		}
	}()
	// No more upgrades. On SIGINT or SIGTERM the upgrader also closes its
	// copy of the socket: without that the port would go on accepting
	// connections into the backlog that nobody serves. It does so in its
	// own goroutine, and closes Exit when it is done: wait for that.
	upg.Stop()
	<-upg.Exit()
	if upgrading && !upgraded && !handedOver {
		// A SIGINT or SIGTERM during an upgrade: the upgrader has sent
		// SIGKILL to the new process, which holds the socket too (the
		// kernel ends it, and closes its copy, a moment later). Its result
		// says whether it got ready first; if it did, it serves on.
		if err := <-upgradeResult; err != nil {
			slog.Error("upgrade failed", "err", err)
		} else {
			upgraded = true // it was ready as the signal came
		}
	}
	// A new process that got ready as the signal came serves on: drain
	// as after any hand-over.
	handedOver = handedOver || upgraded
	start := time.Now()

	shutdownCtx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
	if handedOver {
		// Stop accepting at once: the new process accepts on the same
		// socket, which stays open in it. Serve returns net.ErrClosed.
		ln.Close()
		// Close each kept-alive connection after its next answer, as the
		// client expects, before Shutdown closes the ones still idle.
		// Every answer from this line on says Connection: close.
		keepAlives.stop()
		slog.Info("shutdown started", "cause", "handed over to the new process")
		keepAlives.wait(shutdownCtx)
	} else {
		// The cause names the signal: "interrupt signal received".
		slog.Info("shutdown started", "cause", context.Cause(ctx))
	}

	// Shutdown closes the listener, closes idle keep-alive connections,
	// and waits for the active ones to finish, until shutdownCtx expires.
	err = srv.Shutdown(shutdownCtx)
	cancel()
	if err != nil {
		// The deadline passed with requests still running: cut them.
		srv.Close()
		slog.Error("shutdown forced", "took", time.Since(start).Round(time.Millisecond), "err", err)
		os.Exit(1)
	}

	// Serve returned ErrServerClosed the moment Shutdown began (or
	// net.ErrClosed when the hand-over closed the listener); anything else
	// is a failure that the drain must not hide.
	err = <-serveErr
	closedByHandOver := handedOver && errors.Is(err, net.ErrClosed)
	if !errors.Is(err, http.ErrServerClosed) && !closedByHandOver {
		slog.Error("server failed", "addr", *addr, "err", err)
		os.Exit(1)
	}
	slog.Info("shutdown finished", "took", time.Since(start).Round(time.Millisecond))
}

// home answers at once, naming the step and the process that answered.
func home(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "12-zero-downtime-restart, pid %d\n", os.Getpid())
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
