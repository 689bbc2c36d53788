package main

import (
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/gracefulgo/walkthrough/internal/demotest"
)

// TestConsumerOverrun: an order whose storing outlasts the consumer's
// share of the budget. The consumer's phase is cut at its deadline, its
// transaction rolled back and its message handed back; the later phases
// still run, the program exits 1 and names the phase. The order is not
// lost: the next process stores it at once, without waiting out AckWait.
//
// With -ack-before-commit, the pitfall, the same shutdown loses the
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
		{"acknowledged before the commit", []string{"-ack-before-commit"}, true},
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
