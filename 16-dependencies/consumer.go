package main

// The consumer: it pulls the orders from the stream, a few at a time, and
// stores each in the database, acknowledging a message only once its
// transaction has committed.

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
)

// storer is the consumer's hold on the stream and the database.
type storer struct {
	orders orderStore
	counts *counts
	// work is cancelled when the consumer's share of the budget is spent:
	// a transaction still running is rolled back, and every message in
	// hand is handed back at once.
	work       context.Context
	cancelWork context.CancelFunc
	consume    jetstream.ConsumeContext
	inHand     prometheus.Gauge // the messages being stored, for /metrics
	workTime   time.Duration
	pitfall    string // -pitfall, for its test (pitfalls.go)
}

// startConsumer starts pulling. JetStream delivers at most prefetch
// messages ahead of the handler: those are the messages in hand that a
// shutdown must finish or hand back, so the fewer the better.
func startConsumer(consumer jetstream.Consumer, db orderStore, counts *counts, inHand prometheus.Gauge, prefetch int, workTime time.Duration, pitfall string) (*storer, error) {
	s := &storer{orders: db, counts: counts, inHand: inHand, workTime: workTime, pitfall: pitfall}
	s.work, s.cancelWork = context.WithCancel(context.Background())
	var err error
	s.consume, err = consumer.Consume(s.handle,
		jetstream.PullMaxMessages(prefetch),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			slog.Warn("consumer error", "err", err)
		}),
	)
	if err != nil {
		s.cancelWork()
		return nil, err
	}
	if pitfall == databaseFirst {
		s.consume = closingFirst{s.consume, db}
	}
	return s, nil
}

// handle stores one message's order, then acknowledges it. The library
// calls it for one message at a time.
func (s *storer) handle(msg jetstream.Msg) {
	s.inHand.Inc()
	defer s.inHand.Dec()
	if meta, err := msg.Metadata(); err == nil && meta.NumDelivered > 1 {
		s.counts.redelivered.Add(1)
	}
	if s.work.Err() != nil {
		handBack(msg) // the budget is spent
		return
	}
	o, err := parseOrder(msg.Data())
	if err != nil {
		// A message that can never be stored is not retried forever.
		slog.Error("bad order in the stream", "err", err)
		if err := msg.Term(); err != nil {
			slog.Warn("cannot terminate the message", "err", err)
		}
		return
	}
	if s.pitfall == ackBeforeCommit {
		// Confirmed, so that the server has it before the work starts.
		if err := msg.DoubleAck(s.work); err != nil {
			handBack(msg)
			return
		}
	}
	if s.workTime > 0 {
		slog.Info("storing order", "id", o.ID, "work_time", s.workTime)
	}
	ctx, span := tracer().Start(s.work, "store order", trace.WithAttributes(orderAttribute(o.ID)))
	defer span.End()
	inserted, err := s.orders.store(ctx, o, s.workTime)
	if err != nil {
		slog.Warn("order not stored, handed back", "id", o.ID, "err", err)
		handBack(msg)
		return
	}
	if inserted {
		s.counts.stored.Add(1)
	}
	if s.workTime > 0 {
		slog.Info("order stored", "id", o.ID, "inserted", inserted)
	}
	// DoubleAck waits for the server to confirm. If that fails, the
	// order comes back after AckWait and its second insert does nothing.
	if err := msg.DoubleAck(ctx); err != nil && !errors.Is(err, context.Canceled) {
		slog.Warn("acknowledgement not confirmed", "id", o.ID, "err", err)
	}
}

// handBack gives msg back to JetStream for delivery now, to this consumer
// or another, instead of after AckWait. Not with a plain Nak: the server
// keeps that in memory only (processNak puts the message on its redelivery
// queue), and an embedded server that stops with the process forgets it,
// so after a restart the message waits out AckWait all the same. A Nak
// with a delay rewrites the message's delivery time in the consumer's
// stored state, which the server writes when it shuts down.
func handBack(msg jetstream.Msg) {
	// If this fails, the connection is gone: the message comes back
	// after AckWait.
	if err := msg.NakWithDelay(time.Millisecond); err != nil {
		slog.Warn("cannot hand the message back", "err", err)
	}
}

// stop is the consumer's phase of the shutdown. Drain, unlike Stop,
// unsubscribes and then still delivers the messages already fetched, so
// they are stored and acknowledged instead of dropped to wait out AckWait
// (jetstream/pull.go). Both return at once: Closed is closed when the
// last handler has returned. If ctx ends first, the work is cancelled and
// what is left in hand is handed back.
func (s *storer) stop(ctx context.Context) error {
	s.consume.Drain()
	select {
	case <-s.consume.Closed():
		s.cancelWork()
		return nil
	case <-ctx.Done():
		s.cancelWork()
		return context.Cause(ctx)
	}
}

// counts are the figures "shutdown finished" logs, for a test to compare:
// orders answered 202 (duplicates included), orders this process inserted,
// and deliveries it received that were not the first.
type counts struct {
	accepted, stored, redelivered atomic.Int64
}
