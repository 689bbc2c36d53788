package main

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
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
	for deadline := time.Now().Add(10 * time.Second); state(t, client, bounded) == rivertype.JobStateRunning; {
		if time.Now().After(deadline) {
			t.Fatal("the rescuer did not rescue the bounded job within 10s")
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
