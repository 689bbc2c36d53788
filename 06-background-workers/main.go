// Command 06-background-workers accepts bulk emails over HTTP and sends them
// in the background, and shuts down in order, within one budget: HTTP first,
// so no job arrives, then the workers drain the queue. If the budget runs
// out, or a second signal comes, it cancels the sends and saves every unsent
// job to a spool, which the next start queues again. So a graceful stop, a
// budget that runs out or a second signal loses no accepted job and sends
// none twice; a crash (SIGKILL, a panic, a power cut) still loses the queue,
// and a disk that fails at exit the spool: the README lists these limits.
// The router is chi.
//
// Usage:
//
//	make run-06 [ARGS="-workers 4 -queue-size 100 -send-time 1s -shutdown-timeout 10s"]
//
// Then, from a second terminal,
//
//	curl -d '{"to":["ann@example.com","bob@example.com"],"subject":"Hi"}' localhost:8080/emails
//
// and press Ctrl+C in the first: the server stops taking requests, sends
// what it queued to data/outbox.jsonl and exits. With -shutdown-timeout 1s
// it saves what it could not send to data/spool.jsonl, and sends it on the
// next start.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/mail"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

// maxDelay caps /slow?d=, so that one request cannot hold a server forever.
const maxDelay = time.Minute

// maxBody caps a POST /emails body.
const maxBody = 1 << 20

func main() {
	addr := flag.String("addr", "localhost:8080", `address to listen on; ":8080" listens on every interface`)
	shutdownTimeout := flag.Duration("shutdown-timeout", 10*time.Second, "how long the whole shutdown may take: requests, then queued emails")
	workerCount := flag.Int("workers", 4, "how many emails are sent at once")
	queueSize := flag.Int("queue-size", 100, "how many emails may wait for a worker; more are refused with 503")
	sendTime := flag.Duration("send-time", time.Second, "how long sending one email takes (it is simulated)")
	readTimeout := flag.Duration("read-timeout", 10*time.Second, "how long a client may take to send a whole request; a body still arriving then gets 408")
	outboxPath := flag.String("outbox", "data/outbox.jsonl", "file each sent email is appended to")
	spoolPath := flag.String("spool", "data/spool.jsonl", "file the unsent emails are saved to at exit and queued from at start")
	flag.Parse()
	// Parse stops at the first word that is not a flag: a word left over is
	// a mistyped flag, and the flags after it were never read.
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "%q is not a flag (flags start with -, as in -addr :8080)\n", flag.Arg(0))
		flag.Usage()
		os.Exit(2)
	}
	var problem string
	switch {
	case *shutdownTimeout <= 0:
		problem = "-shutdown-timeout must be more than 0"
	case *workerCount <= 0:
		problem = "-workers must be more than 0"
	case *queueSize <= 0:
		problem = "-queue-size must be more than 0"
	case *sendTime < 0:
		problem = "-send-time must not be negative"
	case *readTimeout <= 0:
		problem = "-read-timeout must be more than 0"
	}
	if problem != "" {
		fmt.Fprintln(os.Stderr, problem)
		os.Exit(2)
	}

	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))

	// Catch the signals before anything else: from the moment jobs leave the
	// spool, a signal must lead to the code that saves them again. The first
	// starts the shutdown and a second cuts it short. The channel holds two,
	// so a second signal that comes before main reads the first is kept.
	// (Two identical signals sent at the same instant may still arrive as
	// one: the kernel and Go's runtime merge a signal that is already
	// pending.)
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)

	// Listen before touching the spool, so that a taken port ends the
	// program with the spool as it found it.
	listener, err := net.Listen("tcp", *addr)
	if err != nil {
		slog.Error("cannot listen", "addr", *addr, "err", err)
		os.Exit(1)
	}
	outbox, err := OpenOutbox(*outboxPath)
	if err != nil {
		slog.Error("cannot open outbox", "err", err)
		os.Exit(1)
	}

	// Queue what the last run could not send, then clear the spool. No
	// worker runs yet: if the program dies in between, nothing was sent, and
	// the next start finds the same spool.
	restored, err := ReadSpool(*spoolPath)
	if err != nil {
		slog.Error("cannot read spool", "err", err)
		os.Exit(1)
	}
	queue := NewQueue(*queueSize, restored)
	if err := ClearSpool(*spoolPath); err != nil {
		slog.Error("cannot clear spool", "err", err)
		os.Exit(1)
	}
	if len(restored) > 0 {
		slog.Info("jobs restored", "count", len(restored), "spool", *spoolPath)
	}

	router := chi.NewRouter()
	// RequestID names each request in the logs; Recoverer turns a panicking
	// handler into a 500 instead of a dead connection; GetHead answers HEAD
	// like GET, as step 05's ServeMux did.
	router.Use(middleware.RequestID, middleware.Recoverer, middleware.GetHead)
	router.MethodNotAllowed(methodNotAllowed(router))
	router.Get("/", home)
	router.Get("/slow", slow)
	router.With(middleware.RequestSize(maxBody)).Post("/emails", postEmails(queue, *sendTime))

	srv := &http.Server{
		Handler: router,
		// A client that connects and never finishes its request headers is
		// dropped after ReadHeaderTimeout, so it cannot hold the drain.
		ReadHeaderTimeout: 2 * time.Second,
		ReadTimeout:       *readTimeout,              // a body still arriving then gets 408: see postEmails
		WriteTimeout:      maxDelay + 10*time.Second, // longer than the slowest /slow
		IdleTimeout:       60 * time.Second,
	}

	// Serve in the background and hand its result to main: buffered, so the
	// goroutine can always deliver it and end.
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(listener) }()
	slog.Info("listening", "addr", listener.Addr().String(), "pid", os.Getpid())

	// The workers run in a GracefulWorker, never on a bare go statement, so
	// that the shutdown can wait for them, or cancel them.
	pool := &Pool{Queue: queue, Outbox: outbox, SendTime: *sendTime}
	workers := NewGracefulWorker()
	for range *workerCount {
		workers.Go(pool.Work)
	}

	// Wait for a signal, or for Serve to fail. Even then, no early exit:
	// the queued jobs are drained or saved below.
	failed := false
	select {
	case err := <-serveErr:
		slog.Error("server failed", "addr", *addr, "err", err)
		failed = true
	case sig := <-signals:
		slog.Info("shutdown started", "signal", sig)
	}
	start := time.Now()

	// One budget for the whole shutdown. A second signal ends it at once
	// instead of killing the program, since the unsent jobs must still be
	// saved. Then signals get Go's default action again: saving takes
	// milliseconds, and if a disk hangs, a third signal still ends the
	// program.
	hurry, hurried := context.WithCancelCause(context.Background())
	go func() {
		sig := <-signals
		signal.Stop(signals)
		hurried(fmt.Errorf("signal during shutdown: %v", sig))
	}()
	budget, cancel := context.WithTimeout(hurry, *shutdownTimeout)
	defer cancel()
	var cut error // why the shutdown was cut short, if it was

	// 1. HTTP first. Once Shutdown returns no handler runs, so no job can
	// be added. If it is cut short, handlers may still run after Close:
	// closing the queue below turns their jobs away with a 503.
	if err := srv.Shutdown(budget); err != nil {
		srv.Close()
		cut = context.Cause(budget)
	} else if !failed {
		// Serve returned ErrServerClosed the moment Shutdown began; anything
		// else is a failure that the drain must not hide.
		if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
			slog.Error("server failed", "addr", *addr, "err", err)
			failed = true
		}
	}
	slog.Info("http stopped", "took", time.Since(start).Round(time.Millisecond))

	// 2. Then the workers: close the queue and let them send what it holds.
	// If the budget runs out, Shutdown cancels the sends in progress and
	// waits until every worker has returned, so each job is either in the
	// outbox or in Unsent, never both.
	queue.Close()
	if err := workers.Shutdown(budget); err != nil {
		cut = err
	}
	slog.Info("workers stopped", "took", time.Since(start).Round(time.Millisecond))

	// 3. Then the resources: save what was not sent, close the outbox.
	if unsent := pool.Unsent(); len(unsent) > 0 {
		if err := WriteSpool(*spoolPath, unsent); err != nil {
			// The jobs are lost. Say which, with no more than the log already
			// holds ("email sending" names the recipient): a body can hold
			// what logs must not, such as a password-reset link.
			slog.Error("cannot write spool", "count", len(unsent), "err", err)
			for _, job := range unsent {
				slog.Error("unsent job", "id", job.ID, "to", job.To, "request_id", job.RequestID)
			}
		} else {
			slog.Warn("jobs spooled", "count", len(unsent), "spool", *spoolPath)
		}
		failed = true
	}
	if err := outbox.Close(); err != nil {
		slog.Error("cannot close outbox", "err", err)
		failed = true
	}

	took := time.Since(start).Round(time.Millisecond)
	if cut != nil {
		slog.Error("shutdown forced", "took", took, "err", cut)
		os.Exit(1)
	}
	slog.Info("shutdown finished", "took", took)
	if failed {
		os.Exit(1)
	}
}

// home answers at once, naming the step and the process that answered.
func home(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "06-background-workers, pid %d\n", os.Getpid())
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

// emailRequest is the body of POST /emails: one job per recipient.
type emailRequest struct {
	To      []string `json:"to"`
	Subject string   `json:"subject"`
	Body    string   `json:"body"`
}

// postEmails queues one job per recipient and answers 202 with their ids.
// It returns before any email is sent: the sending is background work, which
// is why the shutdown must wait for the workers and not only for handlers.
func postEmails(queue *Queue, sendTime time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body) // at most maxBody: see RequestSize
		if err != nil {
			// Answer every failure: a handler that returns without writing
			// gets an implicit 200 from net/http, success for a job that
			// was never taken.
			status, why := http.StatusBadRequest, "the body ended early"
			var tooLarge *http.MaxBytesError
			switch {
			case errors.As(err, &tooLarge):
				status, why = http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is over %d bytes", maxBody)
			case errors.Is(err, os.ErrDeadlineExceeded):
				// ReadTimeout passed with the body still arriving.
				status, why = http.StatusRequestTimeout, "the body took longer than the server's read timeout"
			}
			slog.Warn("cannot read body", "status", status, "err", err, "request_id", middleware.GetReqID(r.Context()))
			http.Error(w, why, status)
			return
		}
		// JSON text is UTF-8. encoding/json would replace each invalid
		// byte with U+FFFD and send an email that is not the one posted.
		if !utf8.Valid(body) {
			http.Error(w, "bad JSON: the body is not valid UTF-8", http.StatusBadRequest)
			return
		}
		var req emailRequest
		if err := decodeJSON(body, &req); err != nil {
			http.Error(w, "bad JSON: "+err.Error(), http.StatusBadRequest)
			return
		}
		if len(req.To) == 0 {
			http.Error(w, `no recipients: "to" is empty`, http.StatusBadRequest)
			return
		}
		jobs := make([]Job, len(req.To))
		for i, to := range req.To {
			if _, err := mail.ParseAddress(to); err != nil {
				http.Error(w, fmt.Sprintf("bad address %q: %v", to, err), http.StatusBadRequest)
				return
			}
			jobs[i] = Job{ID: rand.Text(), RequestID: middleware.GetReqID(r.Context()), To: to, Subject: req.Subject, Body: req.Body}
		}

		switch err := queue.Add(jobs); {
		case errors.Is(err, ErrTooMany):
			http.Error(w, fmt.Sprintf("%d recipients: %v", len(jobs), err), http.StatusRequestEntityTooLarge)
			return
		case err != nil:
			// Full, or shutting down: nothing was queued. A worker frees a
			// place every sendTime, so that is when to try again.
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(max(sendTime, time.Second).Seconds()))))
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		ids := make([]string, len(jobs))
		for i, job := range jobs {
			ids[i] = job.ID
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		json.NewEncoder(w).Encode(map[string][]string{"ids": ids})
	}
}

// decodeJSON decodes body, which must be one JSON object, into v. A field
// that v does not have is an error, not dropped in silence: a client that
// sends "cc" must learn that nobody will get a copy.
func decodeJSON(body []byte, v any) error {
	decoder := json.NewDecoder(bytes.NewReader(body))
	decoder.DisallowUnknownFields()
	if err := decoder.Decode(v); err != nil {
		return err
	}
	if _, err := decoder.Token(); err != io.EOF {
		return errors.New("data after the JSON object")
	}
	return nil
}

// methodNotAllowed answers a known path asked with another method: 405,
// the methods it takes in Allow, and a body that says so, as ServeMux does
// (chi's own 405 has an empty body). GetHead answers HEAD wherever GET is.
func methodNotAllowed(router chi.Router) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var allow []string
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			if router.Match(chi.NewRouteContext(), method, r.URL.Path) {
				allow = append(allow, method)
				if method == http.MethodGet {
					allow = append(allow, http.MethodHead)
				}
			}
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
	}
}
