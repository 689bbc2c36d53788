// Command 09-worker-process is the talk's production answer: the web process
// only records each email job in a database and answers 202, and a separate
// worker process takes the jobs from there and sends them. Each role has its
// own graceful shutdown, and since the jobs live in the database, a kill -9
// of either one, at any moment, loses no accepted job. The queue is River
// (riverqueue.com), on SQLite by default or on PostgreSQL.
//
// Usage, in two terminals:
//
//	make run-09 ARGS="web [-addr localhost:8080 -database data/jobs.db -shutdown-timeout 10s -read-timeout 10s]"
//	make run-09 ARGS="worker [-workers 4 -send-time 1s -rescue-after 1m -database data/jobs.db -shutdown-timeout 10s]"
//
// Then, from a third,
//
//	curl -d '{"to":["ann@example.com"],"subject":"Hi"}' localhost:8080/emails
//	curl localhost:8080/emails/1
//
// -database takes a SQLite file, as a path or a file: URL, or a postgres://
// URL; anything else is refused.
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
	"syscall"
	"time"

	"github.com/riverqueue/river"
)

const usage = `Usage: 09-worker-process web    [-addr localhost:8080] [-database data/jobs.db] [-shutdown-timeout 10s] [-read-timeout 10s]
       09-worker-process worker [-workers 4] [-send-time 1s] [-rescue-after 1m] [-database data/jobs.db] [-shutdown-timeout 10s]

web serves HTTP and records each POST /emails in the database; worker sends
what it finds there. Run both, in two terminals:

	make run-09 ARGS=web
	make run-09 ARGS=worker
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))
	switch role, args := os.Args[1], os.Args[2:]; role {
	case "-h", "-help", "--help": // as the flag package answers them
		fmt.Fprint(os.Stderr, usage)
		os.Exit(0)
	case "web":
		os.Exit(web(args))
	case "worker":
		os.Exit(worker(args))
	default:
		fmt.Fprintf(os.Stderr, "unknown role %q\n%s", role, usage)
		os.Exit(2)
	}
}

// riverLogger is River's: WARN and above. Its INFO lines (a count of the
// jobs run, every 5s while they change; each pass of its maintenance) would
// bury the step's own, which say what happens to each email.
var riverLogger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

// web is the HTTP side: step 05's shutdown, around handlers that write to
// the database. It returns the exit status.
func web(args []string) int {
	flags := newFlags("web")
	addr := flags.String("addr", "localhost:8080", `address to listen on; ":8080" listens on every interface`)
	database := flags.String("database", "data/jobs.db", "a SQLite file, or a postgres:// URL")
	shutdownTimeout := flags.Duration("shutdown-timeout", 10*time.Second, "how long to wait for in-flight requests before cutting them")
	readTimeout := flags.Duration("read-timeout", 10*time.Second, "how long a client may take to send a whole request; a body still arriving then gets 408")
	parse(flags, args)
	switch _, _, err := parseDatabase(*database); {
	case err != nil:
		badFlag(flags, err.Error())
	case *shutdownTimeout <= 0:
		badFlag(flags, "-shutdown-timeout must be more than 0")
	case *readTimeout <= 0:
		badFlag(flags, "-read-timeout must be more than 0")
	}

	// Catch the signals before anything else, so that none arrives unhandled.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	listener, err := net.Listen("tcp", *addr)
	if err != nil {
		slog.Error("cannot listen", "addr", *addr, "err", err)
		return 1
	}
	db, driver, closeDB, err := openDatabase(ctx, *database)
	if err != nil {
		// Neither the URL nor the error shows a password.
		slog.Error("cannot open database", "database", redacted(*database), "err", err)
		return 1
	}
	defer closeDB()
	// An insert-only client: no queues, no workers. It is never started;
	// it only writes jobs, in the handler's transaction, and reads them.
	client, err := river.NewClient(driver, &river.Config{
		Logger: riverLogger,
		// This client fetches nothing, but River rate-limits the "new job"
		// notifications of its inserts to one per FetchCooldown (100 ms by
		// default): a job committed within 100 ms of another, after the
		// worker's fetch, waits for the next notification or for the
		// worker's poll (FetchPollInterval, 1 s). The least cooldown
		// notifies every insert; see the README's figures.
		FetchCooldown: river.FetchCooldownMin,
	})
	if err != nil {
		slog.Error("cannot create the River client", "err", err)
		return 1
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", home)
	mux.HandleFunc("GET /slow", slow)
	mux.HandleFunc("POST /emails", postEmails(db, client))
	mux.HandleFunc("GET /emails/{id}", getEmail(client))
	srv := &http.Server{
		Handler: mux,
		// A client that connects and never finishes its request headers is
		// dropped after ReadHeaderTimeout, so it cannot hold the drain.
		ReadHeaderTimeout: 2 * time.Second,
		ReadTimeout:       *readTimeout,              // a body still arriving then gets 408: see postEmails
		WriteTimeout:      maxDelay + 10*time.Second, // longer than the slowest /slow
		IdleTimeout:       60 * time.Second,
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(listener) }()
	slog.Info("listening", "addr", listener.Addr().String(), "pid", os.Getpid())

	select {
	case err := <-serveErr:
		slog.Error("server failed", "addr", *addr, "err", err)
		return 1
	case <-ctx.Done():
	}
	// The next signal gets Go's default action and ends the program at
	// once. That loses nothing: every job that got its 202 is committed.
	stop()
	start := time.Now()
	slog.Info("shutdown started", "cause", context.Cause(ctx))

	shutdownCtx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		srv.Close()
		slog.Error("shutdown forced", "took", time.Since(start).Round(time.Millisecond), "err", err)
		return 1
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		slog.Error("server failed", "addr", *addr, "err", err)
		return 1
	}
	slog.Info("shutdown finished", "took", time.Since(start).Round(time.Millisecond))
	return 0
}

// worker takes jobs from the database and sends them, -workers at a time,
// until a signal. Its shutdown is the lesson of this step. It returns the
// exit status.
func worker(args []string) int {
	flags := newFlags("worker")
	database := flags.String("database", "data/jobs.db", "a SQLite file, or a postgres:// URL")
	shutdownTimeout := flags.Duration("shutdown-timeout", 10*time.Second, "how long the sends in progress may take to finish at shutdown")
	workerCount := flags.Int("workers", 4, "how many emails are sent at once")
	sendTime := flags.Duration("send-time", time.Second, "how long sending one email takes (it is simulated)")
	rescueAfter := flags.Duration("rescue-after", time.Minute, "how long a job may stay running before it counts as lost with a dead worker and is sent again; a send is cancelled after half of it")
	parse(flags, args)
	switch _, _, err := parseDatabase(*database); {
	case err != nil:
		badFlag(flags, err.Error())
	case *shutdownTimeout <= 0:
		badFlag(flags, "-shutdown-timeout must be more than 0")
	case *workerCount <= 0:
		badFlag(flags, "-workers must be more than 0")
	case *sendTime < 0:
		badFlag(flags, "-send-time must not be negative")
	case *rescueAfter <= 0:
		badFlag(flags, "-rescue-after must be more than 0")
	case *sendTime >= *rescueAfter/2:
		badFlag(flags, "-send-time must be less than half of -rescue-after: a send is cancelled after half of -rescue-after")
	}

	// Catch the signals before taking any job. The first starts the
	// shutdown and a second cuts it short; the channel holds two.
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)

	ctx := context.Background()
	db, driver, closeDB, err := openDatabase(ctx, *database)
	if err != nil {
		slog.Error("cannot open database", "database", redacted(*database), "err", err)
		return 1
	}
	defer closeDB()

	workers := river.NewWorkers()
	river.AddWorker(workers, &EmailWorker{DB: db, SendTime: *sendTime})
	client, err := river.NewClient(driver, &river.Config{
		Logger:  riverLogger,
		Queues:  map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: *workerCount}},
		Workers: workers,
		// River cancels a send's context after JobTimeout, and the job is
		// retried. A job still running after RescueStuckJobsAfter can only
		// belong to a worker that died (kill -9, OOM): River's rescuer,
		// which runs in the elected leader among the workers, gives it to
		// another. The rescue must come after the timeout, or a live send
		// would be run twice; half leaves the cancelled send time to end.
		// Never JobTimeout: -1 (no timeout): the rescuer then leaves a stuck
		// job alone for good (see the README's pitfall).
		JobTimeout:           *rescueAfter / 2,
		RescueStuckJobsAfter: *rescueAfter,
		// River fetches at most once per FetchCooldown (100 ms by default),
		// and each fetch takes at most the free workers' worth of jobs: 4
		// workers with sends that take no time send at most 40 jobs/s, and
		// a job that arrives just after a fetch waits for the next. The
		// least cooldown lets a finished send fetch the next job at once;
		// SQLite's one writer is then the limit (see the README).
		FetchCooldown: river.FetchCooldownMin,
	})
	if err != nil {
		slog.Error("cannot create the River client", "err", err)
		return 1
	}
	// Not the signal's context. Without Config.SoftStopTimeout, as here,
	// cancelling Start's context cancels the sends at once, as
	// StopAndCancel does, but under that context's cause and not River's
	// ErrStop: River then counts each as a failed attempt. (With
	// SoftStopTimeout, River runs the two stages below by itself; the step
	// writes them out so that a second signal can cut the first short, and
	// the exit status says whether it was cut: see the README.)
	if err := client.Start(ctx); err != nil {
		slog.Error("cannot start the River client", "err", err)
		return 1
	}
	slog.Info("worker started", "workers", *workerCount, "pid", os.Getpid())

	select {
	case sig := <-signals:
		slog.Info("shutdown started", "signal", sig)
	case <-client.Stopped():
		slog.Error("worker failed: the River client stopped by itself")
		return 1
	}
	start := time.Now()

	// One budget for the sends in progress. A second signal ends it at
	// once; after that, signals get Go's default action again, so that a
	// send that ignores its cancellation cannot hold the program forever.
	hurry, hurried := context.WithCancelCause(context.Background())
	go func() {
		sig := <-signals
		signal.Stop(signals)
		hurried(fmt.Errorf("signal during shutdown: %v", sig))
	}()
	budget, cancel := context.WithTimeoutCause(hurry, *shutdownTimeout, errors.New("shutdown timeout"))
	defer cancel()

	// Stop stops fetching and waits for the running sends to finish and be
	// recorded. The jobs not yet fetched stay in the database, available
	// to the next worker: the database is the spool.
	if err := client.Stop(budget); err != nil {
		// StopAndCancel cancels the sends' contexts and waits for them to
		// return. River puts each one back as available, with its attempt
		// not counted, for the next worker.
		cut := context.Cause(budget)
		if err := client.StopAndCancel(context.Background()); err != nil {
			slog.Error("cannot stop the River client", "err", err)
		}
		slog.Error("shutdown forced", "took", time.Since(start).Round(time.Millisecond), "err", cut)
		return 1
	}
	slog.Info("shutdown finished", "took", time.Since(start).Round(time.Millisecond))
	return 0
}

// newFlags returns the flag set of a role; a bad flag exits 2, as the flag
// package does for a program's own flags.
func newFlags(role string) *flag.FlagSet {
	flags := flag.NewFlagSet("09-worker-process "+role, flag.ExitOnError)
	flags.Usage = func() {
		fmt.Fprintf(flags.Output(), "Usage: 09-worker-process %s [flags]\n", role)
		flags.PrintDefaults()
	}
	return flags
}

// parse parses a role's flags and exits 2, with the usage, when words are
// left over: a misspelt command line must not start a server.
func parse(flags *flag.FlagSet, args []string) {
	_ = flags.Parse(args) // never an error: ExitOnError exits 2 on a bad flag
	if flags.NArg() > 0 {
		fmt.Fprintf(flags.Output(), "%q is not a flag (flags start with -, as in -addr :8080)\n", flags.Arg(0))
		flags.Usage()
		os.Exit(2)
	}
}

// badFlag stops the program before it starts, with one line and exit 2.
func badFlag(flags *flag.FlagSet, problem string) {
	fmt.Fprintln(flags.Output(), problem)
	os.Exit(2)
}
