package main

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/gracefulgo/walkthrough/internal/demotest"
)

// BoundedArgs is a job whose worker sets a timeout of its own.
type BoundedArgs struct{}

func (BoundedArgs) Kind() string { return "bounded" }

type boundedWorker struct {
	river.WorkerDefaults[BoundedArgs]
}

func (boundedWorker) Timeout(*river.Job[BoundedArgs]) time.Duration { return time.Minute }
func (boundedWorker) Work(context.Context, *river.Job[BoundedArgs]) error {
	return nil
}

// TestNoJobTimeoutIsNeverRescued is the pitfall of the README: River's
// rescuer gives a job left running by a dead worker to another only once
// the job's timeout has passed, and a job with no timeout (JobTimeout: -1)
// never has: it stays running for good, and its email is never sent.
//
// Two jobs are left running by a worker killed an hour ago. The client has
// JobTimeout: -1; the bounded job's worker overrides it with a minute. The
// client's rescuer looks at both in the same pass, at its start: it
// rescues the bounded job and leaves the email alone.
func TestNoJobTimeoutIsNeverRescued(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, driver, closeDB, err := openDatabase(ctx, sqliteDB(t))
	if err != nil {
		t.Fatal(err)
	}
	defer closeDB()
	workers := river.NewWorkers()
	river.AddWorker(workers, &EmailWorker{DB: db})
	river.AddWorker(workers, boundedWorker{})
	client, err := river.NewClient(driver, &river.Config{
		Queues:               map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 1}},
		Workers:              workers,
		JobTimeout:           -1, // the pitfall: "no timeout"
		RescueStuckJobsAfter: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	results, err := client.InsertMany(ctx, []river.InsertManyParams{
		{Args: EmailArgs{To: "stuck@example.com"}},
		{Args: BoundedArgs{}},
	})
	if err != nil {
		t.Fatal(err)
	}
	email, bounded := results[0].Job.ID, results[1].Job.ID
	// What a kill -9 an hour ago leaves behind: running, first attempt.
	if _, err := db.Exec(`UPDATE river_job SET state = 'running', attempt = 1,
		attempted_at = strftime('%Y-%m-%d %H:%M:%f', 'now', '-1 hour')`); err != nil {
		t.Fatal(err)
	}

	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := client.Stop(ctx); err != nil {
			t.Error(err)
		}
	}()
	for deadline := time.Now().Add(demotest.EventTimeout); state(t, client, bounded) == rivertype.JobStateRunning; {
		if time.Now().After(deadline) {
			t.Fatalf("the rescuer did not rescue the bounded job within %s", demotest.EventTimeout)
		}
		time.Sleep(20 * time.Millisecond) // a poll of the database, not a wait for time to pass
	}
	if got := state(t, client, email); got != rivertype.JobStateRunning {
		t.Errorf("the email with no timeout is %s after the rescuer's pass, want it left running for good", got)
	}
}

func state(t *testing.T, client *river.Client[*sql.Tx], id int64) rivertype.JobState {
	t.Helper()
	job, err := client.JobGet(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return job.State
}

// TestUnknownKindIsDiscarded is why workers that share a database must
// register the same job kinds: the leader's rescuer decides with the
// leader's workers, and a stuck job of a kind it has no worker for is not
// given back but discarded, for good. Two jobs left running by a worker
// killed an hour ago: the leader knows emails, not the other kind. Its
// rescuer's first pass retries the email and discards the other job.
func TestUnknownKindIsDiscarded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, driver, closeDB, err := openDatabase(ctx, sqliteDB(t))
	if err != nil {
		t.Fatal(err)
	}
	defer closeDB()
	// A client that only inserts, standing for a newer worker that knows
	// the other kind.
	inserter, err := river.NewClient(driver, &river.Config{SkipUnknownJobCheck: true})
	if err != nil {
		t.Fatal(err)
	}
	results, err := inserter.InsertMany(ctx, []river.InsertManyParams{
		{Args: EmailArgs{To: "known@example.com"}},
		{Args: BoundedArgs{}},
	})
	if err != nil {
		t.Fatal(err)
	}
	email, unknown := results[0].Job.ID, results[1].Job.ID
	if _, err := db.Exec(`UPDATE river_job SET state = 'running', attempt = 1,
		attempted_at = strftime('%Y-%m-%d %H:%M:%f', 'now', '-1 hour')`); err != nil {
		t.Fatal(err)
	}

	workers := river.NewWorkers()
	river.AddWorker(workers, &EmailWorker{DB: db})
	leader, err := river.NewClient(driver, &river.Config{
		// A queue no job is in: the rescued email is not fetched.
		Queues:               map[string]river.QueueConfig{"placeholder": {MaxWorkers: 1}},
		Workers:              workers,
		JobTimeout:           500 * time.Millisecond,
		RescueStuckJobsAfter: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := leader.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := leader.Stop(ctx); err != nil {
			t.Error(err)
		}
	}()
	for deadline := time.Now().Add(demotest.EventTimeout); state(t, leader, unknown) == rivertype.JobStateRunning; {
		if time.Now().After(deadline) {
			t.Fatalf("the rescuer did not look at the stuck jobs within %s", demotest.EventTimeout)
		}
		time.Sleep(20 * time.Millisecond) // a poll of the database, not a wait for time to pass
	}
	if got := state(t, leader, unknown); got != rivertype.JobStateDiscarded {
		t.Errorf("the job of a kind the leader has no worker for is %s, want discarded", got)
	}
	if got := state(t, leader, email); got != rivertype.JobStateRetryable && got != rivertype.JobStateAvailable {
		t.Errorf("the email is %s after the rescuer's pass, want it given back (retryable)", got)
	}
}
