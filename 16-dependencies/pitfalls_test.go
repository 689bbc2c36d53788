package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gracefulgo/walkthrough/internal/demotest"
	"github.com/jackc/pgx/v5"
)

// TestConsumerOverrun: an order whose storing outlasts the consumer's
// share of the budget. The consumer's phase is cut at its deadline, its
// transaction rolled back and its message handed back; the later phases
// still run, the program exits 1 and names the phase. The order is not
// lost: the next process stores it at once, without waiting out AckWait.
//
// With -pitfall ack-before-commit, the same shutdown loses the
// order: its message was acknowledged before the transaction that the cut
// rolled back, so JetStream has nothing to deliver again. (A kill -9
// between the acknowledgement and the commit loses it the same way, but
// only once the server has written the acknowledgement to its consumer
// state, which it does within 100ms (consumerFileStore.flushLoop): a test
// that kills cannot tell when that is.)
func TestConsumerOverrun(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name     string
		extra    []string
		wantLost bool
	}{
		{"acknowledged after the commit", nil, false},
		{"acknowledged before the commit", []string{"-pitfall", "ack-before-commit"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			store := t.TempDir()
			// AckWait far beyond the test: an order that comes back
			// comes back because it was handed back.
			args := []string{"-store", store, "-drain-delay", "0s", "-ack-wait", "10m"}
			p := demotest.Start(t, append(append(args, "-shutdown-timeout", "6s", "-work-time", "1m"), c.extra...)...)
			if r, _ := p.PostJSON("/orders", `{"item":"piano","quantity":1}`); r.Err != nil || r.Status != http.StatusAccepted {
				t.Fatalf("POST /orders = %v, want 202", r)
			}
			storing := p.WaitLog("storing order")
			id := storing.Attr("id")
			p.Signal(syscall.SIGTERM)
			exit := p.WaitExit()
			if exit.Code != 1 {
				t.Errorf("%v, want exit status 1: the consumer's phase overran", exit)
			}
			if l, ok := p.Logged("phase overran"); !ok || l.Attr("phase") != "consumer" {
				t.Errorf("phase overran line %v, want phase=consumer", l.Attrs)
			}
			if l, ok := p.Logged("shutdown forced"); !ok || l.Attr("overran") != "consumer" {
				t.Errorf("shutdown forced line %v, want overran=consumer", l.Attrs)
			}
			for _, phase := range []string{"nats", "database", "nats-server"} {
				if !loggedPhase(p, phase) {
					t.Errorf("the %s phase did not run after the overrun", phase)
				}
			}

			again := demotest.Start(t, args...)
			resumed := again.WaitLog("consumer resumed")
			if c.wantLost {
				// Nothing waits to be delivered, and the order is not
				// stored: it is lost.
				if resumed.Attr("pending") != "0" || resumed.Attr("ack_pending") != "0" {
					t.Fatalf("consumer resumed %v, want nothing pending: the order was acknowledged", resumed.Attrs)
				}
				if r := again.Get("/orders/" + id); r.Status != http.StatusNotFound {
					t.Errorf("GET /orders/%s = %v, want 404: the order is lost", id, r)
				}
				return
			}
			// Handed back, it is delivered at once: well within a
			// wait far shorter than AckWait.
			awaitStored(t, again, []string{id}, demotest.EventTimeout)
			if EventTimeout := demotest.EventTimeout; EventTimeout >= 10*time.Minute {
				t.Fatal("EventTimeout must stay shorter than -ack-wait for this test to prove the hand-back")
			}
		})
	}
}

// patience is how long a test waits for an exit that must not come: a
// shutdown that hangs. It is a patience, not a speed: the fixed program
// exits within its budget.
const patience = 4 * time.Second

// postOrders posts one order for each id and fails unless each is
// answered 202.
func postOrders(t *testing.T, p *demotest.Process, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if status, err := postOrderAs(http.DefaultClient, p.Addr, id); err != nil || status != http.StatusAccepted {
			t.Fatalf("POST /orders %s = %d (%v), want 202", id, status, err)
		}
	}
}

// orderIDs returns n ids that start with prefix.
func orderIDs(prefix string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return ids
}

// TestDatabaseClosedBeforeTheConsumer: the database closed while the
// consumer still holds messages (-pitfall database-first closes it at the
// start of the consumer's phase). On SQLite, database/sql's Close returns
// at once and the transactions still to come fail: the orders in hand are
// handed back instead of stored. On PostgreSQL, pgxpool's Close blocks
// until every connection taken from the pool is given back
// (jackc/pgx#1241): a transaction still at work holds the shutdown past
// its budget. In the step's order, the database closes after the consumer
// is done with it.
func TestDatabaseClosedBeforeTheConsumer(t *testing.T) {
	t.Parallel()
	for _, pitfall := range []bool{false, true} {
		name := "database after the consumer"
		extra := []string{}
		if pitfall {
			name, extra = "pitfall: database first", []string{"-pitfall", "database-first"}
		}
		t.Run("sqlite/"+name, func(t *testing.T) {
			t.Parallel()
			// Three orders of a second each: one in its transaction at
			// the signal, two waiting in hand.
			p := demotest.Start(t, append([]string{"-store", t.TempDir(), "-drain-delay", "0s", "-work-time", "1s", "-ack-wait", "10m", "-shutdown-timeout", "20s"}, extra...)...)
			postOrders(t, p, orderIDs("early", 3)...)
			p.WaitLog("storing order")
			p.Signal(syscall.SIGTERM)
			exit := p.WaitExit()
			failed, ok := p.Logged("order not stored, handed back")
			if !pitfall {
				if ok || exit.Code != 0 {
					t.Errorf("%v, %v: want exit status 0 and every order in hand stored", exit, failed.Attrs)
				}
				return
			}
			if !ok || !strings.Contains(failed.Attr("err"), "database is closed") {
				t.Errorf("order not stored line %v, want one for an order in hand, err: sql: database is closed", failed.Attrs)
			}
		})
		t.Run("postgres/"+name, func(t *testing.T) {
			t.Parallel()
			// One order whose storing outlasts the whole budget.
			database, application := postgresDB(t), "lab16-"+strings.ToLower(rand.Text())
			database += "&application_name=" + application
			args := []string{"-store", t.TempDir(), "-database", database, "-drain-delay", "0s", "-work-time", "1m", "-ack-wait", "10m"}
			const budget = 4 * time.Second
			p := demotest.Start(t, append(append(args, "-shutdown-timeout", budget.String()), extra...)...)
			postOrders(t, p, "held")
			// "storing order" comes before the transaction begins: wait
			// until PostgreSQL shows its connection in the transaction.
			p.WaitLog("storing order")
			awaitInTransaction(t, database, application)
			p.Signal(syscall.SIGTERM)
			if !pitfall {
				// The consumer's phase is cut, its transaction rolled
				// back; then the pool closes at once.
				if exit := p.WaitExit(); exit.Code != 1 || !loggedPhase(p, "database") {
					t.Errorf("%v, database phase finished %v: want exit status 1 (the consumer overran) and the database closed", exit, loggedPhase(p, "database"))
				}
				return
			}
			if exit, exited := p.AwaitExit(budget + patience); exited {
				t.Fatalf("%v within %s of a %s budget, want a shutdown that hangs in pgxpool's Close", exit, budget+patience, budget)
			}
			if _, ok := p.Logged("phase overran"); ok {
				t.Error("a phase ended: want the consumer's phase stuck in pgxpool's Close")
			}
		})
	}
}

// TestAckWaitShorterThanTheWork: an order whose storing takes longer than
// AckWait is delivered again while the first delivery is still being
// worked, to the other instance: both hold it at once, and the work (the
// card charged, which -work-time stands for) is done twice. The second
// insert does nothing, but the work happened. The step refuses a
// -work-time that is not shorter than -ack-wait; -pitfall
// work-outlasts-ack-wait lets it through.
func TestAckWaitShorterThanTheWork(t *testing.T) {
	t.Parallel()
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		p := demotest.StartAt(t, demotest.FreeAddr(t), "-store", t.TempDir(), "-work-time", "5s", "-ack-wait", "1s")
		if exit, ok := p.AwaitExit(demotest.EventTimeout); !ok || exit.Code != 2 {
			t.Fatalf("%v, want exit status 2: -work-time must be shorter than -ack-wait", exit)
		}
	})
	t.Run("pitfall: worked twice at once", func(t *testing.T) {
		t.Parallel()
		// A prefetch of 1: each instance has one pull request waiting,
		// and JetStream serves them in turn, so the redelivery goes to
		// the instance that does not hold the order.
		common := []string{"-nats-url", startNATSServer(t), "-database", filepath.Join(t.TempDir(), "orders.db"),
			"-drain-delay", "0s", "-prefetch", "1", "-ack-wait", "1s", "-work-time", "5s", "-pitfall", "work-outlasts-ack-wait"}
		instances := []*demotest.Process{demotest.Start(t, common...), demotest.Start(t, common...)}
		postOrders(t, instances[0], "twice")
		var storing []demotest.Line
		for _, p := range instances {
			storing = append(storing, p.WaitLog("storing order"))
		}
		for i, p := range instances {
			if id := storing[i].Attr("id"); id != "twice" {
				t.Fatalf("instance %d is storing order %q, want twice", i, id)
			}
			if _, done := p.Logged("order stored"); done {
				t.Errorf("instance %d had stored the order before the other started: want both at once", i)
			}
		}
		// Both finish the work; only one insert counts.
		inserted := 0
		for _, p := range instances {
			if p.WaitLog("order stored").Attr("inserted") == "true" {
				inserted++
			}
		}
		if inserted != 1 {
			t.Errorf("%d inserts, want 1: the table's key turns the second away", inserted)
		}
	})
}

// TestPrefetchTooLargeForTheBudget: a consumer that has fetched more than
// it can store within its share of the budget. With -prefetch 32 and
// 400ms an order, the consumer's phase is cut at 6.4s of an 8s budget, the shutdown is forced
// (exit status 1), and what it still held must be handed back, or it
// would wait out AckWait (ten minutes here): the next process stores every
// order at once. With the default -prefetch 4 the phase ends in its share
// and the program exits 0.
func TestPrefetchTooLargeForTheBudget(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		prefetch string
		wantExit int
	}{{"4", 0}, {"32", 1}} {
		t.Run("prefetch "+c.prefetch, func(t *testing.T) {
			t.Parallel()
			store := t.TempDir()
			args := []string{"-store", store, "-drain-delay", "0s", "-ack-wait", "10m"}
			p := demotest.Start(t, append(args, "-prefetch", c.prefetch, "-work-time", "400ms", "-shutdown-timeout", "8s")...)
			ids := orderIDs("batch", 32)
			postOrders(t, p, ids...)
			p.WaitLog("storing order")
			p.Signal(syscall.SIGTERM)
			if exit := p.WaitExit(); exit.Code != c.wantExit {
				t.Errorf("%v, want exit status %d", exit, c.wantExit)
			}
			// On a busy machine the NATS connection's phase, sending
			// the hand-backs, can overrun too; the consumer's comes first.
			if l, overran := p.Logged("shutdown forced"); overran != (c.wantExit == 1) || (overran && !strings.HasPrefix(l.Attr("overran")+",", "consumer,")) {
				t.Errorf("shutdown forced %v, want it only with the large prefetch, overran=consumer first", l.Attrs)
			}
			again := demotest.Start(t, args...)
			awaitStored(t, again, ids, demotest.EventTimeout)
		})
	}
}

// awaitInTransaction waits until a connection of the program, named
// application, holds a transaction open on the server at database.
func awaitInTransaction(t *testing.T, database, application string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), database)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	deadline := time.Now().Add(demotest.EventTimeout)
	for {
		var n int
		err := conn.QueryRow(context.Background(),
			`SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND state = 'idle in transaction'`, application).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no transaction of %s open within %s", application, demotest.EventTimeout)
		}
		time.Sleep(10 * time.Millisecond) // poll interval while the consumer begins its transaction
	}
}
