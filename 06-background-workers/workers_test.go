package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

// The pool's tests run in a synctest bubble: time.Sleep and the send timers
// use a fake clock that jumps ahead once every goroutine is blocked, so the
// tests are exact about durations and wait for none.

// TestPoolDrainsTheQueue: closed, the queue is drained to the last job, and
// the workers send in parallel.
func TestPoolDrainsTheQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		jobs := testJobs(5)
		pool := testPool(t, jobs, time.Second)
		workers := startWorkers(pool, 2)
		start := time.Now()
		pool.Queue.Close()
		if err := workers.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		// 5 jobs, 2 at a time, 1s each.
		if took := time.Since(start); took != 3*time.Second {
			t.Errorf("the drain took %s, want 3s", took)
		}
		checkPartition(t, jobs, outboxJobs(t, pool), pool.Unsent(), 5)
	})
}

// TestPoolBudgetExpiry: when Shutdown's context ends, the sends in progress
// are cancelled at once, and they and the jobs still queued are unsent.
func TestPoolBudgetExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		jobs := testJobs(5)
		pool := testPool(t, jobs, time.Second)
		workers := startWorkers(pool, 2)
		start := time.Now()
		pool.Queue.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		if err := workers.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Shutdown = %v, want %v", err, context.DeadlineExceeded)
		}
		if took := time.Since(start); took != 1500*time.Millisecond {
			t.Errorf("Shutdown took %s, want the 1.5s budget", took)
		}
		// At 1s jobs 0 and 1 were sent, at 1.5s 2 and 3 were cut short, and 4
		// was still queued.
		sent, unsent := outboxJobs(t, pool), pool.Unsent()
		checkPartition(t, jobs, sent, unsent, 2)
		if got := slices.Sorted(slices.Values(ids(sent))); !slices.Equal(got, []string{"job-0", "job-1"}) {
			t.Errorf("sent %v, want job-0 and job-1", got)
		}
	})
}

// TestCancelAsASendEnds: whatever the order in which a send's end and the
// cancellation meet, every job ends up sent or unsent, never both, never
// neither. The budgets fall exactly on the instants when sends end.
func TestCancelAsASendEnds(t *testing.T) {
	for workerCount := 1; workerCount <= 3; workerCount++ {
		for budget := time.Duration(0); budget <= 3*time.Second; budget += time.Second {
			t.Run(fmt.Sprintf("%d workers, budget %s", workerCount, budget), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					jobs := testJobs(5)
					pool := testPool(t, jobs, time.Second)
					workers := startWorkers(pool, workerCount)
					pool.Queue.Close()
					ctx, cancel := context.WithTimeout(context.Background(), budget)
					defer cancel()
					_ = workers.Shutdown(ctx) // the budget may run out: the partition is what is checked
					checkPartition(t, jobs, outboxJobs(t, pool), pool.Unsent(), -1)
				})
			})
		}
	}
}

// TestFailedSendIsUnsent: a job whose outbox line cannot be written was not
// sent; it is kept for the spool, and the worker goes on.
func TestFailedSendIsUnsent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		jobs := testJobs(2)
		pool := testPool(t, jobs, time.Second)
		pool.Outbox.Close() // every Append fails
		workers := startWorkers(pool, 1)
		pool.Queue.Close()
		if err := workers.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		if unsent := ids(pool.Unsent()); !slices.Equal(unsent, []string{"job-0", "job-1"}) {
			t.Errorf("unsent %v, want both jobs", unsent)
		}
	})
}

// TestGracefulWorker: Shutdown waits for tasks that end by themselves, and
// cancels, with the deadline as the cause, those that do not.
func TestGracefulWorker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := NewGracefulWorker()
		var quickDone bool
		var cause error
		g.Go(func(ctx context.Context) {
			time.Sleep(time.Second)
			quickDone = true
		})
		g.Go(func(ctx context.Context) {
			<-ctx.Done()
			cause = context.Cause(ctx)
		})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		start := time.Now()
		if err := g.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Shutdown = %v, want %v", err, context.DeadlineExceeded)
		}
		if took := time.Since(start); took != 2*time.Second {
			t.Errorf("Shutdown took %s, want 2s", took)
		}
		if !quickDone || !errors.Is(cause, context.DeadlineExceeded) {
			t.Errorf("quick task done: %v, cause seen by the slow task: %v", quickDone, cause)
		}
	})
}

// TestQueueTakesABatchWholeOrNotAtAll covers Add's answers.
func TestQueueTakesABatchWholeOrNotAtAll(t *testing.T) {
	q := NewQueue(3, nil)
	jobs := testJobs(5)
	steps := []struct {
		batch []Job
		want  error
	}{
		{jobs[0:2], nil},
		{jobs[2:4], ErrQueueFull}, // one place left for two jobs: neither goes in
		{jobs[2:3], nil},
		{jobs[3:4], ErrQueueFull},
		{jobs[0:4], ErrTooMany}, // would never fit
	}
	for i, s := range steps {
		if err := q.Add(s.batch); err != s.want {
			t.Errorf("step %d: Add(%v) = %v, want %v", i, ids(s.batch), err, s.want)
		}
	}
	q.Close()
	if err := q.Add(jobs[4:]); err != ErrQueueClosed {
		t.Errorf("Add after Close = %v, want %v", err, ErrQueueClosed)
	}
	pool := &Pool{Queue: q}
	if got := ids(pool.Unsent()); !slices.Equal(got, []string{"job-0", "job-1", "job-2"}) {
		t.Errorf("queued %v, want job-0 to job-2 in order", got)
	}
}

// TestQueueKeepsALargerBacklog: a spool longer than the queue is queued
// whole, and new jobs wait until the queue is below its size.
func TestQueueKeepsALargerBacklog(t *testing.T) {
	q := NewQueue(2, testJobs(3))
	if err := q.Add(testJobs(1)); err != ErrQueueFull {
		t.Errorf("Add to a queue over its size = %v, want %v", err, ErrQueueFull)
	}
	<-q.jobs
	<-q.jobs
	if err := q.Add(testJobs(1)); err != nil {
		t.Errorf("Add once below size = %v, want nil", err)
	}
}

// TestSpool: what WriteSpool saves, ReadSpool reads back; no spool reads as
// none; the temporary file is gone; a damaged spool is an error, not a
// silent loss.
func TestSpool(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "data", "spool.jsonl")
	if jobs, err := ReadSpool(path); err != nil || jobs != nil {
		t.Errorf("ReadSpool of no spool = %v, %v; want none", jobs, err)
	}
	jobs := testJobs(3)
	jobs[1].Body = "line one\nline two <&>"
	if err := WriteSpool(path, jobs); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadSpool(path); err != nil || !slices.Equal(got, jobs) {
		t.Errorf("ReadSpool = %v, %v; want %v", got, err, jobs)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("the spool's folder holds %d files, want the spool alone", len(entries))
	}
	if err := ClearSpool(path); err != nil {
		t.Fatal(err)
	}
	if err := ClearSpool(path); err != nil {
		t.Errorf("clearing no spool: %v", err)
	}
	if err := os.WriteFile(path, []byte(`{"id":"job-0"}`+"\n"+`{"id":`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSpool(path); err == nil {
		t.Error("ReadSpool of a damaged spool returned no error")
	}
}

func testJobs(n int) []Job {
	jobs := make([]Job, n)
	for i := range jobs {
		jobs[i] = Job{ID: fmt.Sprintf("job-%d", i), To: fmt.Sprintf("r%d@example.com", i), Subject: "Hi", Body: "Hello."}
	}
	return jobs
}

// testPool returns a pool whose queue holds jobs and whose outbox is in a
// temporary folder. The pool's log lines are for the demo tests: here they
// would only bury a failure.
func testPool(t *testing.T, jobs []Job, sendTime time.Duration) *Pool {
	t.Helper()
	slog.SetDefault(slog.New(slog.DiscardHandler))
	outbox, err := OpenOutbox(filepath.Join(t.TempDir(), "outbox.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { outbox.Close() })
	return &Pool{Queue: NewQueue(len(jobs), jobs), Outbox: outbox, SendTime: sendTime}
}

func startWorkers(pool *Pool, n int) *GracefulWorker {
	workers := NewGracefulWorker()
	for range n {
		workers.Go(pool.Work)
	}
	return workers
}

// outboxJobs reads back what the pool's outbox holds.
func outboxJobs(t *testing.T, pool *Pool) []Job {
	t.Helper()
	jobs, err := ReadSpool(pool.Outbox.file.Name())
	if err != nil {
		t.Fatal(err)
	}
	return jobs
}

// checkPartition fails unless every job is in sent or in unsent and in one
// only, and, unless wantSent is -1, sent holds wantSent jobs.
func checkPartition(t *testing.T, jobs, sent, unsent []Job, wantSent int) {
	t.Helper()
	all := append(ids(sent), ids(unsent)...)
	slices.Sort(all)
	if want := ids(jobs); !slices.Equal(all, want) {
		t.Errorf("sent %v and unsent %v, want each of %v exactly once", ids(sent), ids(unsent), want)
	}
	if wantSent >= 0 && len(sent) != wantSent {
		t.Errorf("sent %d jobs, want %d", len(sent), wantSent)
	}
}

func ids(jobs []Job) []string {
	var ids []string
	for _, job := range jobs {
		ids = append(ids, job.ID)
	}
	return ids
}
