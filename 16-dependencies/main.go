// Command 16-dependencies is an order service with things behind it: POST
// /orders puts each order on a NATS JetStream stream and answers 202 once
// the stream holds it, and a consumer in the same process stores each one
// in a SQLite database, acknowledging the message only after the commit.
// The NATS server runs inside the process, so nothing needs installing.
// On SIGTERM it shuts down in the order that loses nothing: the drain
// delay, the HTTP server, the consumer, the NATS connection, the database,
// the tracer, and the NATS server last; each phase within its share of one
// budget.
//
// Usage:
//
//	make run-16 [ARGS="-addr localhost:8080 -store data/16 -drain-delay 2s -shutdown-timeout 10s"]
//
// Then, from a second terminal,
//
//	curl -H 'Idempotency-Key: o1' -d '{"item":"book","quantity":1}' localhost:8080/orders
//	curl localhost:8080/orders/o1
//
// -store is the folder of the stream's files and of the database (a new
// temporary folder by default, named in the log: pass it back to keep the
// orders across restarts). -nats-url nats://… and -database postgres://…
// use servers of your own instead; -metrics-addr serves /metrics on a
// listener of its own, -otlp-endpoint sends traces over OTLP/gRPC.
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
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

func main() { os.Exit(run()) }

// run is the program; it returns the exit status.
func run() int {
	flags := parseFlags()
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))

	// Catch the signals before anything else, so that none arrives unhandled.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	listener, err := net.Listen("tcp", flags.addr)
	if err != nil {
		slog.Error("cannot listen", "addr", flags.addr, "err", err)
		return 1
	}
	// Traces, when there is somewhere to send them (telemetry.go).
	shutdownTracing := func(context.Context) error { return nil }
	if flags.otlpEndpoint != "" {
		if shutdownTracing, err = startTracing(ctx, flags.otlpEndpoint); err != nil {
			slog.Error("cannot set up tracing", "endpoint", flags.otlpEndpoint, "err", err)
			return 1
		}
	}
	// /metrics on a listener of its own, which the HTTP drain leaves open.
	var counts counts
	metrics := newMetrics(&counts)
	if flags.metricsAddr != "" {
		metricsListener, err := net.Listen("tcp", flags.metricsAddr)
		if err != nil {
			slog.Error("cannot listen", "addr", flags.metricsAddr, "err", err)
			return 1
		}
		defer serveMetrics(metricsListener, metrics)()
	}

	// What sits behind the handlers, started in the order it will stop in
	// reverse. The defers only act when the start fails: the shutdown
	// below closes each part in its turn, and a second close does nothing.
	// With -nats-url, the NATS servers are someone else's to run.
	var ns *server.Server
	if flags.natsURL == "" {
		if ns, err = startNATS(filepath.Join(flags.store, "jetstream")); err != nil {
			slog.Error("cannot start the NATS server", "store", flags.store, "err", err)
			return 1
		}
		defer ns.Shutdown()
	}
	nc, ncClosed, err := connect(ns, flags.natsURL)
	if err != nil {
		slog.Error("cannot connect to NATS", "nats_url", flags.natsShown, "err", err)
		return 1
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		slog.Error("cannot use JetStream", "err", err)
		return 1
	}
	consumer, err := setUpStream(ctx, js, flags.ackWait)
	if err != nil {
		slog.Error("cannot set up the stream", "err", err)
		return 1
	}
	db, err := openDatabase(ctx, flags.database)
	if err != nil {
		slog.Error("cannot open the database", "database", redacted(flags.database), "err", err)
		return 1
	}
	defer db.close()
	logResumed(ctx, consumer)
	storer, err := startConsumer(consumer, db, &counts, metrics.messagesInHand, flags.prefetch, flags.workTime, flags.pitfall)
	if err != nil {
		slog.Error("cannot start the consumer", "err", err)
		return 1
	}
	defer storer.consume.Stop()

	var drain drain
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", home)
	mux.HandleFunc("GET /slow", slow)
	mux.HandleFunc("GET /readyz", drain.readyz)
	mux.HandleFunc("GET /livez", livez)
	mux.HandleFunc("POST /orders", postOrder(js, &counts))
	mux.HandleFunc("GET /orders/{id}", getOrder(db))
	srv := &http.Server{
		Handler:           traceRequests(metrics.countRequests(drain.closeConnections(mux))),
		ReadHeaderTimeout: 2 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      maxDelay + 10*time.Second, // longer than the slowest /slow
		IdleTimeout:       60 * time.Second,
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(listener) }()
	slog.Info("listening", "addr", listener.Addr().String(), "pid", os.Getpid(), "store", flags.store, "nats_url", flags.natsShown, "database", redacted(flags.database))

	select {
	case err := <-serveErr:
		slog.Error("server failed", "addr", flags.addr, "err", err)
		return 1
	case <-ctx.Done():
	}
	// The next signal gets Go's default action and ends the program at
	// once: what was accepted is in the stream, and comes back.
	stop()
	slog.Info("shutdown started", "cause", context.Cause(ctx))
	budget := newBudget(flags.shutdownTimeout, metrics.phaseSeconds)

	// 1. Readiness fails and the program goes on serving while the load
	// balancers learn of it (step 10).
	budget.phase("drain-delay", consumerShare+natsShare+databaseShare+tracerShare+natsServerShare, func(context.Context) error {
		drain.begin()
		select {
		case err := <-serveErr:
			serveErr <- err // for the check at the end
			return err
		case <-time.After(flags.drainDelay):
			return nil
		}
	})
	// 2. No new orders; the ones in flight get their answers, which need
	// the stream: NATS is still there.
	budget.phase("http", consumerShare+natsShare+databaseShare+tracerShare+natsServerShare, func(ctx context.Context) error {
		if err := srv.Shutdown(ctx); err != nil {
			srv.Close() // cut what is still running
			return err
		}
		return nil
	})
	// 3. The consumer fetches no more, stores what it holds and
	// acknowledges it; what cannot finish is handed back (consumer.go).
	budget.phase("consumer", natsShare+databaseShare+tracerShare+natsServerShare, storer.stop)
	// 4. The connection sends what it has not yet (the last
	// acknowledgements) and closes; Drain returns at once.
	budget.phase("nats", databaseShare+tracerShare+natsServerShare, func(ctx context.Context) error {
		if err := nc.Drain(); err != nil {
			return err
		}
		select {
		case <-ncClosed:
			return nil
		case <-ctx.Done():
			nc.Close()
			return context.Cause(ctx)
		}
	})
	// 5. The database, now that nothing uses it.
	budget.phase("database", tracerShare+natsServerShare, func(ctx context.Context) error { return waitFor(ctx, db.close) })
	// 6. The tracer provider sends the spans its batch processor holds,
	// those of the phases above included.
	if flags.otlpEndpoint != "" {
		budget.phase("tracer", natsServerShare, shutdownTracing)
	}
	// 7. The embedded NATS server last: this process was its client.
	if ns != nil {
		budget.phase("nats-server", 0, func(ctx context.Context) error {
			return waitFor(ctx, func() error { ns.Shutdown(); ns.WaitForShutdown(); return nil })
		})
	}

	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		slog.Error("server failed", "addr", flags.addr, "err", err)
		return 1
	}
	if !budget.ended(&counts) {
		return 1
	}
	return 0
}

// logResumed says where the consumer takes up: a test compares these
// figures with the orders it was told were accepted.
func logResumed(ctx context.Context, consumer jetstream.Consumer) {
	info, err := consumer.Info(ctx)
	if err != nil {
		slog.Warn("cannot read the consumer's state", "err", err)
		return
	}
	slog.Info("consumer resumed", "pending", info.NumPending, "ack_pending", info.NumAckPending, "redelivered", info.NumRedelivered)
}

// flags are the command line, checked.
type flags struct {
	addr, store, database       string
	natsURL, natsShown          string // natsShown has its passwords masked
	metricsAddr, otlpEndpoint   string
	shutdownTimeout, drainDelay time.Duration
	ackWait, workTime           time.Duration
	prefetch                    int
	pitfall                     string // one of pitfalls, for its test
}

func parseFlags() flags {
	var f flags
	flag.StringVar(&f.addr, "addr", "localhost:8080", `address to listen on; ":8080" listens on every interface`)
	flag.StringVar(&f.metricsAddr, "metrics-addr", "", `address of /metrics, such as "localhost:9464" (default none)`)
	flag.StringVar(&f.otlpEndpoint, "otlp-endpoint", "", `host:port of an OTLP/gRPC receiver for the traces, such as "localhost:4317" (default none)`)
	flag.StringVar(&f.store, "store", "", "folder for the stream's files and the database (default a new temporary folder)")
	flag.StringVar(&f.natsURL, "nats-url", "", "nats:// URLs of NATS servers with JetStream (default a server inside the process)")
	flag.StringVar(&f.database, "database", "", "a SQLite file, or a postgres:// URL (default orders.db in -store)")
	flag.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 10*time.Second, "the whole shutdown's budget, the drain delay included")
	flag.DurationVar(&f.drainDelay, "drain-delay", 2*time.Second, "how long to go on serving after SIGTERM, /readyz answering 503")
	flag.DurationVar(&f.ackWait, "ack-wait", 30*time.Second, "how long JetStream waits for an acknowledgement before delivering a message again")
	flag.DurationVar(&f.workTime, "work-time", 0, "how long storing one order takes besides the insert, standing for real work")
	flag.IntVar(&f.prefetch, "prefetch", 4, "how many messages the consumer fetches ahead: those a shutdown must finish")
	flag.StringVar(&f.pitfall, "pitfall", "", "a pitfall, for its test: "+strings.Join(pitfalls, ", ")+" (default none)")
	flag.Parse()
	bad := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
		os.Exit(2)
	}
	switch {
	case flag.NArg() > 0:
		fmt.Fprintf(os.Stderr, "%q is not a flag (flags start with -, as in -addr :8080)\n", flag.Arg(0))
		flag.Usage()
		os.Exit(2)
	case f.shutdownTimeout <= 0:
		bad("-shutdown-timeout must be more than 0")
	case f.drainDelay < 0 || f.drainDelay > f.shutdownTimeout/2:
		bad("-drain-delay %s: want from 0s to half of -shutdown-timeout %s, so that the drain has the rest", f.drainDelay, f.shutdownTimeout)
	case f.ackWait < time.Second:
		bad("-ack-wait %s: want at least 1s", f.ackWait)
	case f.pitfall != "" && !slices.Contains(pitfalls, f.pitfall):
		bad("-pitfall %q: want one of %s", f.pitfall, strings.Join(pitfalls, ", "))
	case f.workTime < 0 || (f.workTime >= f.ackWait && f.pitfall != workOutlastsAckWait):
		bad("-work-time %s: want from 0s to less than -ack-wait %s, or JetStream delivers the order again while it is being stored", f.workTime, f.ackWait)
	case f.prefetch < 1:
		bad("-prefetch %d: want 1 or more", f.prefetch)
	}
	if f.otlpEndpoint != "" {
		if err := checkEndpoint(f.otlpEndpoint); err != nil {
			bad("%v", err)
		}
	}
	if f.natsURL != "" {
		shown, err := parseNATSURL(f.natsURL)
		if err != nil {
			bad("%v", err)
		}
		f.natsShown = shown
	}
	if f.store == "" {
		dir, err := os.MkdirTemp("", "16-dependencies-")
		if err != nil {
			bad("cannot create a temporary folder for -store: %v", err)
		}
		f.store = dir
	}
	if f.database == "" {
		f.database = filepath.Join(f.store, "orders.db")
	}
	if _, _, err := parseDatabase(f.database); err != nil {
		bad("%v", err)
	}
	return f
}
