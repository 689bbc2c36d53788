package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gracefulgo/walkthrough/internal/demotest"
	"github.com/riverqueue/river"
)

// rescueWait bounds the wait for River to give a killed worker's job to
// another that leads: the new leader's rescuer runs as it takes the lead,
// and its scheduler makes the rescued job available (at once, then every
// 5s). A dead *leader* would add the rest of its term (up to 15s), and a
// rescuer pass missed the next 30s: the test arranges neither, so this
// bound fails it if either happens.
const rescueWait = 20 * time.Second

// placeholderLeader is the River client ID of holdLeadership's client.
const placeholderLeader = "test-placeholder-leader"

// holdLeadership starts a River client of the test's own on database and
// returns once River has elected it leader (its ID in river_leader). Its
// only queue is one that no job goes to, so it takes no email. A worker
// started while it leads is not the leader, so a kill -9 of that worker
// does not leave the queue without a leader for the rest of the dead one's
// term. The returned function stops it: River's Stop resigns the lead
// (deletes its row), and the next client to try wins it: a worker at its
// start, or a running one at its next try, within 6s (on PostgreSQL at
// once, since the resignation is notified).
func holdLeadership(t *testing.T, database string) (handOver func()) {
	t.Helper()
	ctx := context.Background()
	db, driver, closeDB, err := openDatabase(ctx, database)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeDB)
	workers := river.NewWorkers()
	river.AddWorker(workers, &EmailWorker{DB: db})
	client, err := river.NewClient(driver, &river.Config{
		ID:      placeholderLeader,
		Queues:  map[string]river.QueueConfig{"placeholder": {MaxWorkers: 1}},
		Workers: workers,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			if err := client.Stop(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(stop)
	for deadline := time.Now().Add(demotest.EventTimeout); leader(t, db) != placeholderLeader; {
		if time.Now().After(deadline) {
			t.Fatalf("the test's River client was not elected leader within %s", demotest.EventTimeout)
		}
		time.Sleep(20 * time.Millisecond) // a poll of the database, not a wait for time to pass
	}
	return stop
}

// leader returns the ID of the River client that leads, or "" if none.
func leader(t *testing.T, db *sql.DB) string {
	t.Helper()
	var id string
	switch err := db.QueryRow(`SELECT leader_id FROM river_leader`).Scan(&id); {
	case errors.Is(err, sql.ErrNoRows):
		return ""
	case err != nil:
		t.Fatal(err)
	}
	return id
}

// awaitStuck returns once job id has been running for longer than
// rescueAfter, by its attempted_at in the database: the condition River's
// rescuer tests, which must hold when the rescuer first runs.
func awaitStuck(t *testing.T, database string, id int64, rescueAfter time.Duration) {
	t.Helper()
	var attemptedAt time.Time
	if err := openTestDatabase(t, database).QueryRow(`SELECT attempted_at FROM river_job WHERE id = $1`, id).Scan(&attemptedAt); err != nil {
		t.Fatal(err)
	}
	// The rule under test is "after -rescue-after": this waits for that
	// time to pass, which is usually over already.
	time.Sleep(time.Until(attemptedAt.Add(rescueAfter + 100*time.Millisecond)))
}

// TestKillWebAfterAccepted: the jobs are committed before the 202, so a
// kill -9 of the web process right after a batch of 202s loses none: a new
// web process and a worker send each exactly once.
func TestKillWebAfterAccepted(t *testing.T) {
	t.Parallel()
	onEachDatabase(t, func(t *testing.T, database string) {
		web := startWeb(t, database)
		var ids []int64
		for i := range 5 {
			ids = append(ids, accept(t, web, recipients(fmt.Sprint("kill-web-", i), 3)...)...)
		}
		web.Signal(syscall.SIGKILL)
		if exit := web.WaitExit(); exit.Signal != syscall.SIGKILL {
			t.Fatalf("%s, want killed by SIGKILL", exit)
		}
		web = startWeb(t, database)
		worker := startWorker(t, database, "-send-time", "10ms")
		awaitSent(t, database, len(ids), demotest.EventTimeout)
		worker.Signal(syscall.SIGTERM)
		if exit := worker.WaitExit(); exit.Code != 0 {
			t.Errorf("worker: %s after SIGTERM, want exit status 0", exit)
		}
		checkOnce(t, ids, sentIDs(t, database), worker)
		if got := jobStatus(t, web, ids[0]); got.State != "completed" || got.Attempts != 1 {
			t.Errorf("GET /emails/%d = %+v, want completed after 1 attempt", ids[0], got)
		}
	})
}

// TestWorkerSIGTERMMidBatch: at SIGTERM the worker stops taking jobs and
// lets the running sends finish, then exits 0; the jobs it had not taken
// stay in the database, and a new worker sends them: each exactly once.
func TestWorkerSIGTERMMidBatch(t *testing.T) {
	t.Parallel()
	onEachDatabase(t, func(t *testing.T, database string) {
		web := startWeb(t, database)
		ids := accept(t, web, recipients("sigterm", 20)...)
		// 2 at a time, 300ms each: the batch takes three seconds, so a
		// SIGTERM sent after the first send is mid-batch even when the
		// machine is slow to deliver it.
		first := startWorker(t, database, "-workers", "2", "-send-time", "300ms")
		first.WaitLog("email sent")
		first.Signal(syscall.SIGTERM)
		if exit := first.WaitExit(); exit.Code != 0 {
			t.Errorf("%s after SIGTERM, want exit status 0", exit)
		}
		// Every send it began, it finished.
		began, finished := idsLogged(first, "email sending"), idsLogged(first, "email sent")
		if !slices.Equal(began, finished) || first.Count("email cancelled") != 0 {
			t.Errorf("the first worker began %v and finished %v: want every send it began finished", began, finished)
		}
		if len(finished) == len(ids) {
			t.Fatal("the first worker sent the whole batch: the test did not stop it mid-batch")
		}
		// River's INFO lines (River client started, ...) stay out of the
		// worker's log; its own say what happened.
		for _, l := range first.Lines() {
			if msg := l.Msg(); l.Attr("level") == "INFO" && (strings.HasPrefix(msg, "River ") || strings.Contains(msg, ": ")) {
				t.Errorf("River's INFO line in the worker's log: %s", l.Raw)
			}
		}
		if got := sentIDs(t, database); len(got) != len(finished) {
			t.Errorf("sent holds %d rows after the first worker, want its %d", len(got), len(finished))
		}

		second := startWorker(t, database, "-send-time", "10ms")
		awaitSent(t, database, len(ids), demotest.EventTimeout)
		second.Signal(syscall.SIGTERM)
		second.WaitExit()
		checkOnce(t, ids, sentIDs(t, database), first, second)
	})
}

// TestWorkerKill9MidSend: a kill -9 in the middle of a send leaves the job
// running in the database and nothing in sent. Once -rescue-after has
// passed, River's rescuer, in the worker that leads now, gives it to a
// worker: it is sent exactly once, at its second attempt.
//
// The killed worker is not the leader: a River client of the test's own
// leads while it runs, and resigns before the new worker starts. So the
// test measures the rescue by -rescue-after, not the dead leader's term
// (see the README).
func TestWorkerKill9MidSend(t *testing.T) {
	t.Parallel()
	onEachDatabase(t, func(t *testing.T, database string) {
		const rescueAfter = time.Second
		handOver := holdLeadership(t, database)
		web := startWeb(t, database)
		ids := accept(t, web, "kill9@example.com")
		first := startWorker(t, database, "-send-time", "30s", "-rescue-after", "1m10s")
		first.WaitLog("email sending")
		killedAt := first.Signal(syscall.SIGKILL)
		first.WaitExit()
		if got := jobStatus(t, web, ids[0]); got.State != "running" {
			t.Errorf("after the kill -9, GET /emails/%d = %+v, want it still running", ids[0], got)
		}
		if got := sentIDs(t, database); len(got) != 0 {
			t.Errorf("sent holds %v after a kill -9 mid-send, want nothing", got)
		}

		// The leader resigns once the job has been stuck for -rescue-after,
		// and the new worker wins the lead as it starts: its rescuer's
		// first pass, at once, finds the job.
		awaitStuck(t, database, ids[0], rescueAfter)
		handOver()
		second := startWorker(t, database, "-send-time", "10ms", "-rescue-after", rescueAfter.String())
		line, ok := second.AwaitLog("email sent", rescueWait)
		if !ok {
			t.Fatalf("the job was not sent again within %s of the new worker's start", rescueWait)
		}
		t.Logf("sent again %s after the kill -9", line.At.Sub(killedAt).Round(100*time.Millisecond))
		if sending, _ := second.Logged("email sending"); sending.Attr("attempt") != "2" {
			t.Errorf("the second worker sent it at attempt %s, want 2", sending.Attr("attempt"))
		}
		// River's rescuer gave the job back, and the second worker leads
		// now: the rescuer was its own. (The test's client, which led
		// before, rescues only jobs stuck for an hour, River's default.)
		if got := jobStatus(t, web, ids[0]); !slices.Contains(got.Errors, "Stuck job rescued by JobRescuer") {
			t.Errorf("GET /emails/%d = %+v, want the rescuer's error in it", ids[0], got)
		}
		if id := leader(t, openTestDatabase(t, database)); id == "" || id == placeholderLeader {
			t.Errorf("river_leader names %q, want the second worker", id)
		}
		second.Signal(syscall.SIGTERM)
		second.WaitExit()
		checkOnce(t, ids, sentIDs(t, database), second)
	})
}

// TestSendLongerThanBudget: a send longer than -shutdown-timeout is
// cancelled at the deadline and the worker exits 1; the job is back in the
// database, available, and the next worker sends it.
func TestSendLongerThanBudget(t *testing.T) {
	t.Parallel()
	database := sqliteDB(t)
	web := startWeb(t, database)
	ids := accept(t, web, "budget@example.com")
	first := startWorker(t, database, "-send-time", "3s", "-shutdown-timeout", "200ms", "-rescue-after", "10s")
	first.WaitLog("email sending")
	first.Signal(syscall.SIGTERM)
	exit := first.WaitExit()
	if exit.Code != 1 {
		t.Errorf("%s when the budget ran out, want exit status 1", exit)
	}
	for _, msg := range []string{"email cancelled", "shutdown forced"} {
		if _, ok := first.Logged(msg); !ok {
			t.Errorf("msg=%q was not logged", msg)
		}
	}
	if got := jobStatus(t, web, ids[0]); got.State != "available" || got.Attempts != 0 {
		t.Errorf("after the cancelled send, GET /emails/%d = %+v, want it available, its attempt not counted", ids[0], got)
	}
	second := startWorker(t, database, "-send-time", "10ms")
	second.WaitLog("email sent")
	checkOnce(t, ids, sentIDs(t, database), first, second)
}

// TestSecondSignalCancelsAtOnce: a second signal does not wait out the
// budget (10s by default): the send is cancelled, the worker exits 1 at
// once, and the job is available for the next worker.
func TestSecondSignalCancelsAtOnce(t *testing.T) {
	t.Parallel()
	database := sqliteDB(t)
	web := startWeb(t, database)
	ids := accept(t, web, "second@example.com")
	// The budget is 50s and the send a minute, so that a swallowed
	// second signal is told apart from a slow machine: patience is a hang
	// bound well short of the budget.
	const patience = 20 * time.Second
	worker := startWorker(t, database, "-send-time", "1m", "-shutdown-timeout", "50s", "-rescue-after", "3m")
	worker.WaitLog("email sending")
	worker.Signal(syscall.SIGTERM)
	worker.WaitLog("shutdown started")
	worker.Signal(syscall.SIGTERM)
	exit, ok := worker.AwaitExit(patience)
	if !ok {
		t.Fatalf("still running %s after the second signal: it waits out the budget", patience)
	}
	if exit.Code != 1 {
		t.Errorf("%s after a second signal, want exit status 1", exit)
	}
	if got := jobStatus(t, web, ids[0]); got.State != "available" {
		t.Errorf("GET /emails/%d = %+v, want it available", ids[0], got)
	}
}

// TestTwoWorkers: two worker processes on one queue never take the same
// job: each is begun once and sent once.
func TestTwoWorkers(t *testing.T) {
	t.Parallel()
	database := sqliteDB(t)
	web := startWeb(t, database)
	a := startWorker(t, database, "-workers", "2", "-send-time", "50ms")
	b := startWorker(t, database, "-workers", "2", "-send-time", "50ms")
	var ids []int64
	for i := range 4 {
		ids = append(ids, accept(t, web, recipients(fmt.Sprint("two-", i), 5)...)...)
	}
	awaitSent(t, database, len(ids), demotest.EventTimeout)
	for _, w := range []*demotest.Process{a, b} {
		w.Signal(syscall.SIGTERM)
		if exit := w.WaitExit(); exit.Code != 0 {
			t.Errorf("%s, want exit status 0", exit)
		}
	}
	checkOnce(t, ids, sentIDs(t, database), a, b)
	began := append(idsLogged(a, "email sending"), idsLogged(b, "email sending")...)
	if len(began) != len(ids) {
		t.Errorf("%d sends began for %d jobs: a job was taken twice", len(began), len(ids))
	}
	t.Logf("worker a sent %d, worker b %d", a.Count("email sent"), b.Count("email sent"))
}

// idsLogged returns the sorted ids of the lines with msg.
func idsLogged(p *demotest.Process, msg string) []string {
	var ids []string
	for _, l := range p.Lines() {
		if l.Msg() == msg {
			ids = append(ids, l.Attr("id"))
		}
	}
	slices.Sort(ids)
	return ids
}

// TestSendOfAJobNoLongerRunning: a job that stops being running while its
// send goes on (River's rescuer gave it back: a leader with a shorter
// -rescue-after, or a record that took too long) is not recorded by that
// send. River's JobCompleteTx returns such a job with no error; the worker
// checks the state it returns, and its row in sent rolls back. The next
// run sends the job and records it: one row, one "email sent", and the
// job completed at its second attempt.
func TestSendOfAJobNoLongerRunning(t *testing.T) {
	t.Parallel()
	onEachDatabase(t, func(t *testing.T, database string) {
		web := startWeb(t, database)
		ids := accept(t, web, "rescued@example.com")
		// One send at a time: the worker cannot take the job again before
		// the first send has ended.
		worker := startWorker(t, database, "-workers", "1", "-send-time", "3s", "-rescue-after", "1m")
		worker.WaitLog("email sending")
		// What River's rescuer does to a job that has been running for
		// longer than the leader's -rescue-after: retryable, to be made
		// available by the scheduler once its retry time has come, here
		// after this send has ended.
		rescue := `UPDATE river_job SET state = 'retryable', scheduled_at = strftime('%Y-%m-%d %H:%M:%f', 'now', '+5 seconds') WHERE id = $1 AND state = 'running'`
		if strings.HasPrefix(database, "postgres") {
			rescue = `UPDATE river_job SET state = 'retryable', scheduled_at = now() + interval '5 seconds' WHERE id = $1 AND state = 'running'`
		}
		result, err := openTestDatabase(t, database).Exec(rescue, ids[0])
		if err != nil {
			t.Fatal(err)
		}
		if n, err := result.RowsAffected(); err != nil || n != 1 {
			t.Fatalf("the job was not running any more (%d rows, %v): the send ended before the test could give the job back", n, err)
		}

		if line := worker.WaitLog("email not recorded"); line.Attr("attempt") != "1" {
			t.Errorf("the first send was recorded; the first line that says otherwise is %q", line.Raw)
		}
		if _, ok := worker.AwaitLog("email sent", demotest.EventTimeout); !ok {
			t.Fatalf("the job was not sent again: %q", worker.Output())
		}
		if sending, _ := worker.AwaitLogN("email sending", 2, 0); sending.Attr("attempt") != "2" {
			t.Errorf("the job was sent again at attempt %s, want 2", sending.Attr("attempt"))
		}
		if got := jobStatus(t, web, ids[0]); got.State != "completed" || got.Attempts != 2 {
			t.Errorf("GET /emails/%d = %+v, want completed at attempt 2", ids[0], got)
		}
		worker.Signal(syscall.SIGTERM)
		if exit := worker.WaitExit(); exit.Code != 0 {
			t.Errorf("%s after SIGTERM, want exit status 0", exit)
		}
		checkOnce(t, ids, sentIDs(t, database), worker)
		if n := worker.Count("email sent"); n != 1 {
			t.Errorf("%d lines email sent, want 1", n)
		}
	})
}

// TestRecordOnAHungDatabase: the write that records a send is not
// cancelled with the send, but it is bounded (recordTimeout): a database
// that does not answer cannot hold the worker, its shutdown included,
// until a SIGKILL. Here the test holds a lock on the job's row, so the
// completion waits; the worker gives up on it, the job is retried once the
// lock is gone, and it is sent once. On PostgreSQL only: SQLite's busy
// timeout, as long, ends a wait for its lock by itself.
func TestRecordOnAHungDatabase(t *testing.T) {
	t.Parallel()
	database := postgresDB(t)
	web := startWeb(t, database)
	ids := accept(t, web, "hung@example.com")
	worker := startWorker(t, database, "-workers", "1", "-send-time", "1s")
	worker.WaitLog("email sending")

	lock, err := openTestDatabase(t, database).BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback()
	if _, err := lock.Exec(`SELECT id FROM river_job WHERE id = $1 FOR UPDATE`, ids[0]); err != nil {
		t.Fatal(err)
	}
	line, ok := worker.AwaitLog("email not recorded", recordTimeout+demotest.EventTimeout)
	if !ok {
		t.Fatalf("the record still waits for the database %s after the send: it is not bounded", recordTimeout+demotest.EventTimeout)
	}
	t.Logf("the record gave up: %s", line.Attr("err"))
	if err := lock.Rollback(); err != nil {
		t.Fatal(err)
	}

	awaitSent(t, database, 1, demotest.EventTimeout)
	worker.Signal(syscall.SIGTERM)
	if exit := worker.WaitExit(); exit.Code != 0 {
		t.Errorf("%s after SIGTERM, want exit status 0", exit)
	}
	checkOnce(t, ids, sentIDs(t, database), worker)
}
