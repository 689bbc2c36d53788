package main

// The machinery behind POST /emails: a bounded queue, the workers that read
// it, the outbox they write to, and the spool that carries unsent jobs from
// one run to the next. main.go says in which order they start and stop.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Job is one email to one recipient.
type Job struct {
	ID        string `json:"id"`
	RequestID string `json:"request_id,omitempty"` // the POST that queued it, for the logs
	To        string `json:"to"`
	Subject   string `json:"subject"`
	Body      string `json:"body"`
}

// GracefulWorker runs background tasks and shuts them down: the talk's name
// for a tracked group. A task started with Go is never out of sight, as one
// started with a bare go statement would be: Shutdown waits for it.
type GracefulWorker struct {
	ctx    context.Context // given to every task; cancelled when Shutdown gives up
	cancel context.CancelCauseFunc
	tasks  sync.WaitGroup
}

func NewGracefulWorker() *GracefulWorker {
	ctx, cancel := context.WithCancelCause(context.Background())
	return &GracefulWorker{ctx: ctx, cancel: cancel}
}

// Go runs task in the background. The task must return soon after its
// context is cancelled.
func (g *GracefulWorker) Go(task func(ctx context.Context)) {
	g.tasks.Go(func() { task(g.ctx) })
}

// Shutdown waits for every task to return, as http.Server.Shutdown waits for
// requests. If ctx ends first, it cancels the tasks, waits for them to
// return, and returns ctx's cause. Unlike http.Server.Shutdown it does not
// leave them running: whoever called it may then rely on their results.
func (g *GracefulWorker) Shutdown(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		g.tasks.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	select {
	case <-done: // finished at the very moment ctx ended: nothing was cut
		return nil
	default:
	}
	g.cancel(context.Cause(ctx))
	<-done
	return context.Cause(ctx)
}

var (
	ErrQueueFull   = errors.New("the queue is full")
	ErrQueueClosed = errors.New("the server is shutting down")
	ErrTooMany     = errors.New("more jobs than the queue can ever hold")
)

// Queue is a bounded queue of jobs that takes a batch whole or not at all.
type Queue struct {
	mu     sync.Mutex // held by Add and Close, so a batch is never half in
	jobs   chan Job
	size   int
	closed bool
}

// NewQueue makes a queue for size jobs that already holds backlog. The
// backlog may be longer than size (a spool from a run with a larger queue):
// it is kept whole, and Add refuses jobs until the queue is below size.
func NewQueue(size int, backlog []Job) *Queue {
	q := &Queue{jobs: make(chan Job, max(size, len(backlog))), size: size}
	for _, job := range backlog {
		q.jobs <- job
	}
	return q
}

// Add queues every job, or none of them and says why.
func (q *Queue) Add(jobs []Job) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.closed:
		return ErrQueueClosed
	case len(jobs) > q.size:
		return ErrTooMany
	case len(q.jobs)+len(jobs) > q.size:
		return ErrQueueFull
	}
	// No send blocks: only Add fills the channel, under mu, and there is room.
	for _, job := range jobs {
		q.jobs <- job
	}
	return nil
}

// Close stops Add; the workers still get the jobs queued so far.
func (q *Queue) Close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		close(q.jobs)
	}
}

// Pool sends the jobs of its queue. Each worker is one Work call.
type Pool struct {
	Queue    *Queue
	Outbox   *Outbox
	SendTime time.Duration // how long one simulated send takes

	mu       sync.Mutex
	cutShort []Job // taken from the queue but not sent
}

// Work sends queued jobs one at a time, until the queue is closed and empty
// or ctx is cancelled.
func (p *Pool) Work(ctx context.Context) {
	for {
		// Once cancelled, take no more jobs: select alone would pick at
		// random between ctx.Done and a queued job.
		if ctx.Err() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case job, ok := <-p.Queue.jobs:
			if !ok {
				return
			}
			if !p.send(ctx, job) {
				p.mu.Lock()
				p.cutShort = append(p.cutShort, job)
				p.mu.Unlock()
			}
		}
	}
}

// send simulates sending job, and reports whether it was sent. The outbox
// line is the email going out: before it is written the send may be
// cancelled, after it the job is done, whatever happens to ctx.
func (p *Pool) send(ctx context.Context, job Job) bool {
	slog.Info("email sending", "id", job.ID, "to", job.To, "request_id", job.RequestID)
	wait := time.NewTimer(p.SendTime)
	defer wait.Stop()
	select {
	case <-wait.C:
	case <-ctx.Done():
		slog.Info("email cancelled", "id", job.ID, "to", job.To, "cause", context.Cause(ctx))
		return false
	}
	if err := p.Outbox.Append(job); err != nil {
		slog.Error("email failed", "id", job.ID, "to", job.To, "err", err)
		return false
	}
	slog.Info("email sent", "id", job.ID, "to", job.To)
	return true
}

// Unsent returns every job that was not sent: those cut short, then those
// still queued. Call it after Queue.Close, once every Work has returned, so
// that no job changes hands while it looks.
func (p *Pool) Unsent() []Job {
	p.mu.Lock()
	unsent := append([]Job(nil), p.cutShort...)
	p.mu.Unlock()
	for job := range p.Queue.jobs {
		unsent = append(unsent, job)
	}
	return unsent
}

// Outbox is the append-only record of the emails sent, one JSON line each.
type Outbox struct {
	mu   sync.Mutex // one line at a time, never two interleaved
	file *os.File
}

// OpenOutbox opens the outbox at path for appending, creating it and its
// folder if need be.
func OpenOutbox(path string) (*Outbox, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	file, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	return &Outbox{file: file}, nil
}

// Append writes job's line: its id, recipient and subject.
func (o *Outbox) Append(job Job) error {
	line, err := json.Marshal(struct {
		ID      string `json:"id"`
		To      string `json:"to"`
		Subject string `json:"subject"`
	}{job.ID, job.To, job.Subject})
	if err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	_, err = o.file.Write(append(line, '\n'))
	return err
}

func (o *Outbox) Close() error { return o.file.Close() }

// ReadSpool returns the jobs a previous run saved to path; none if there is
// no spool.
func ReadSpool(path string) ([]Job, error) {
	file, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer file.Close()
	// Read each line whole, however long: it is one job as WriteSpool wrote
	// it, and the job was in memory then. A fixed cap (a bufio.Scanner's)
	// would have to foresee how much a body grows in JSON, and a line over
	// it would stop every later start: a crash loop, with the jobs kept but
	// never sent.
	var jobs []Job
	in := bufio.NewReader(file)
	for n := 1; ; n++ {
		line, err := in.ReadBytes('\n')
		if err == io.EOF && len(line) == 0 {
			return jobs, nil
		}
		if err != nil && err != io.EOF {
			return nil, err
		}
		var job Job
		if err := json.Unmarshal(line, &job); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		jobs = append(jobs, job)
	}
}

// WriteSpool saves jobs to path, one JSON line each. It writes a temporary
// file, flushes it to disk and renames it over path, so that whoever reads
// path, now or after a crash, finds the whole spool or none of it; then it
// flushes the folder, where the rename is recorded.
func WriteSpool(path string, jobs []Job) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	temp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(temp.Name()) // fails harmlessly once renamed
	out := bufio.NewWriter(temp)
	encoder := json.NewEncoder(out)
	// Write <, > and & as themselves: escaped for HTML (the default) each
	// takes 6 bytes, and an HTML email's spool line grows six times over.
	encoder.SetEscapeHTML(false)
	for _, job := range jobs {
		if err := encoder.Encode(job); err != nil {
			temp.Close()
			return err
		}
	}
	if err := errors.Join(out.Flush(), temp.Sync(), temp.Close()); err != nil {
		return err
	}
	if err := os.Rename(temp.Name(), path); err != nil {
		return err
	}
	folder, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer folder.Close()
	return folder.Sync()
}

// ClearSpool removes the spool at path, if there is one.
func ClearSpool(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
