package main

// The job: what the web process writes for each recipient, and what the
// worker process does with it.

import (
	"context"
	"database/sql"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
)

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
	// retry would send it a second time.
	ctx = context.WithoutCancel(ctx)
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
	if _, err := river.JobCompleteTx[riverdriver.Driver[*sql.Tx]](ctx, tx, job); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	slog.Info("email sent", "id", job.ID, "to", job.Args.To)
	return nil
}
