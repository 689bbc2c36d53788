package main

// The job: what the web process writes for each recipient, and what the
// worker process does with it.

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivertype"
)

// recordTimeout bounds the write that records a send. It cannot be
// cancelled with the send (see Work), but a database that hangs must not
// hold the worker's shutdown, StopAndCancel included, until a SIGKILL. It
// is as long as SQLite's busy timeout (see openDatabase), and as each try
// of River's own completer (rivercommon.HotOperationTimeout).
const recordTimeout = 10 * time.Second

// EmailArgs is one email to one recipient: a River job's arguments, stored
// as JSON in the job's row.
type EmailArgs struct {
	To      string `json:"to"`
	Subject string `json:"subject"`
	Body    string `json:"body"`
}

// Kind names the job in the database, and the worker that runs it.
func (EmailArgs) Kind() string { return "email" }

// EmailWorker sends an email. The send is simulated: it takes SendTime,
// and then a row in the sent table records it.
type EmailWorker struct {
	river.WorkerDefaults[EmailArgs]
	DB       *sql.DB
	SendTime time.Duration
}

// Work sends one email and records it in the transaction that completes the
// job, so the job is either completed with its row in sent, or neither: a
// worker killed before the commit leaves the job running, to be rescued
// and sent again, and no row. (A real SMTP send cannot join the
// transaction: a worker killed after the send and before the commit sends
// it twice. See the README.)
func (w *EmailWorker) Work(ctx context.Context, job *river.Job[EmailArgs]) error {
	slog.Info("email sending", "id", job.ID, "to", job.Args.To, "attempt", job.Attempt)
	select {
	case <-time.After(w.SendTime):
	case <-ctx.Done():
		// Shutdown, or JobTimeout. Returning the error hands the job back
		// to River, which retries it: at shutdown, at once and with the
		// attempt not counted.
		slog.Info("email cancelled", "id", job.ID, "cause", context.Cause(ctx))
		return ctx.Err()
	}

	// The email is out: recording it must not be cancelled now, or the
	// retry would send it a second time. It is only bounded.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if err := w.record(ctx, job); err != nil {
		slog.Warn("email not recorded", "id", job.ID, "attempt", job.Attempt, "err", err)
		return err
	}
	slog.Info("email sent", "id", job.ID, "to", job.Args.To)
	return nil
}

// record writes the send's row in sent and completes the job, in one
// transaction: both or neither.
func (w *EmailWorker) record(ctx context.Context, job *river.Job[EmailArgs]) error {
	tx, err := w.DB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() // a no-op once committed
	if _, err := tx.ExecContext(ctx, `INSERT INTO sent (job_id, recipient, subject) VALUES ($1, $2, $3)`,
		job.ID, job.Args.To, job.Args.Subject); err != nil {
		return err
	}
	// The driver type only names the transaction type, *sql.Tx, which
	// both of this step's drivers use.
	completed, err := river.JobCompleteTx[riverdriver.Driver[*sql.Tx]](ctx, tx, job)
	if err != nil {
		return err
	}
	// JobCompleteTx updates the job only while it is running, but it
	// fails only when the job is gone: a job that is no longer running
	// comes back as it is, with no error. The rescuer gave it back while
	// this send went on, say: then a later run sends and records it, so
	// this run's row must roll back, or that run would fail on sent's
	// primary key until River discards it.
	if completed.State != rivertype.JobStateCompleted {
		return fmt.Errorf("job %d is %s, no longer running: the send is not recorded", job.ID, completed.State)
	}
	return tx.Commit()
}
