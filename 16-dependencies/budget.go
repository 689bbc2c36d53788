package main

// The shutdown's budget: -shutdown-timeout for all of it, each phase with
// a deadline that leaves the phases after it their shares.

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The shares of the budget that the phases after the HTTP drain keep for
// themselves. A phase's deadline is the budget's end less the shares of
// the phases after it: time a phase does not use passes to the next, and
// a phase that would eat into a later one's share is cut at its
// deadline. With -shutdown-timeout 10s the HTTP drain must end 3.5s
// before the budget does, the consumer 2s before, and so on. The HTTP
// drain keeps the most: with the shared suite's 4s budget its 2.6s still
// leave room for ReadHeaderTimeout (2s) to drop a client that never sends.
const (
	consumerShare   = 0.15 // store and acknowledge what is in hand
	natsShare       = 0.05 // flush the connection's last publishes and acknowledgements
	databaseShare   = 0.05 // close the database
	tracerShare     = 0.05 // send the spans the batch span processor holds
	natsServerShare = 0.05 // the embedded server writes its state and stops
)

// budget times the shutdown's phases.
type budget struct {
	start, end time.Time
	total      time.Duration
	overran    []string // the phases cut at their deadline
	seconds    *prometheus.GaugeVec
}

// newBudget starts the clock. Each phase's duration also goes to seconds,
// labelled with its name, for /metrics.
func newBudget(total time.Duration, seconds *prometheus.GaugeVec) *budget {
	now := time.Now()
	return &budget{start: now, end: now.Add(total), total: total, seconds: seconds}
}

// phase runs one phase with a deadline that leaves keep (the shares of the
// phases after it) of the budget, and logs its duration. A phase whose
// deadline has passed still runs, with a context already done, so that
// it takes its quickest way out. run returns an error when it was cut.
func (b *budget) phase(name string, keep float64, run func(ctx context.Context) error) {
	deadline := b.end.Add(-time.Duration(keep * float64(b.total)))
	// A span per phase; those of the phases after the tracer's own are
	// dropped, and exist only as log lines.
	ctx, span := tracer().Start(context.Background(), "shutdown "+name)
	ctx, cancel := context.WithDeadlineCause(ctx, deadline,
		fmt.Errorf("the %s phase's share of -shutdown-timeout %s ran out", name, b.total))
	defer cancel()
	start := time.Now()
	err := run(ctx)
	span.End()
	took := time.Since(start).Round(time.Millisecond)
	b.seconds.WithLabelValues(name).Set(took.Seconds())
	if err != nil {
		b.overran = append(b.overran, name)
		slog.Error("phase overran", "phase", name, "took", took, "err", err)
		return
	}
	slog.Info("phase finished", "phase", name, "took", took)
}

// waitFor runs do in the background and waits for it until ctx ends, for
// a phase whose call takes no context (sql.DB.Close, the server's
// Shutdown). Cut short, the call goes on until the process exits.
func waitFor(ctx context.Context, do func() error) error {
	done := make(chan error, 1)
	go func() { done <- do() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// ended says whether the budget was kept, and logs the last line.
func (b *budget) ended(c *counts) (ok bool) {
	took := time.Since(b.start).Round(time.Millisecond)
	if len(b.overran) > 0 {
		slog.Error("shutdown forced", "took", took, "overran", strings.Join(b.overran, ","))
	}
	slog.Info("shutdown finished", "took", took,
		"accepted", c.accepted.Load(), "stored", c.stored.Load(), "redelivered", c.redelivered.Load())
	return len(b.overran) == 0
}
