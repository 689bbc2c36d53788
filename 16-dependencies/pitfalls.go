package main

// The pitfalls this step can be told to make (-pitfall), each for the test
// that shows what it costs (pitfalls_test.go, docs/pitfalls.md 34 to 38).
// None is on by default.

import "github.com/nats-io/nats.go/jetstream"

const (
	// ackBeforeCommit acknowledges each message before its transaction:
	// a shutdown that cuts the transaction, or a kill -9, loses the order.
	ackBeforeCommit = "ack-before-commit"
	// workOutlastsAckWait lets -work-time be longer than -ack-wait:
	// JetStream delivers the order again, to another instance, while the
	// first is still storing it.
	workOutlastsAckWait = "work-outlasts-ack-wait"
	// databaseFirst closes the database at the start of the consumer's
	// phase, before the consumer is done with it: SQLite fails the
	// messages still in hand, and pgxpool's Close waits for the
	// connection a transaction holds, however long that takes.
	databaseFirst = "database-first"
)

var pitfalls = []string{ackBeforeCommit, workOutlastsAckWait, databaseFirst}

// closingFirst is the consume context of -pitfall database-first: its
// Drain, which the consumer's phase calls first, closes the database
// while the messages in hand still need it.
type closingFirst struct {
	jetstream.ConsumeContext
	orders orderStore
}

func (c closingFirst) Drain() {
	_ = c.orders.close()
	c.ConsumeContext.Drain()
}
