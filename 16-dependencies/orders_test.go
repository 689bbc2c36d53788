package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gracefulgo/walkthrough/internal/demotest"
)

// orderLoad is clients posting orders with keys of their own, each on a
// kept-alive connection, until stopped or refused.
type orderLoad struct {
	mu       sync.Mutex
	accepted []string // the ids answered 202
	unknown  []string // the ids whose answer never came: stored or not
	other    []string // any other answer, which is a failure
	count    chan struct{}
	stop     chan struct{}
	wg       sync.WaitGroup
}

func startOrderLoad(addr string, clients, maxEach int) *orderLoad {
	l := &orderLoad{count: make(chan struct{}, clients*maxEach), stop: make(chan struct{})}
	for c := range clients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			client := &http.Client{Transport: &http.Transport{}, Timeout: demotest.EventTimeout}
			defer client.CloseIdleConnections()
			for i := range maxEach {
				select {
				case <-l.stop:
					return
				default:
				}
				id := fmt.Sprintf("c%d-%d", c, i)
				status, err := postOrderAs(client, addr, id)
				l.mu.Lock()
				switch {
				case err != nil:
					l.unknown = append(l.unknown, id)
				case status == http.StatusAccepted:
					l.accepted = append(l.accepted, id)
				default:
					l.other = append(l.other, fmt.Sprintf("%s: %d", id, status))
				}
				l.mu.Unlock()
				if err != nil {
					return // refused: the server is gone
				}
				l.count <- struct{}{}
			}
		}()
	}
	return l
}

// awaitAccepted waits until n requests have been answered.
func (l *orderLoad) awaitAnswered(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(demotest.EventTimeout)
	for range n {
		select {
		case <-l.count:
		case <-timeout:
			t.Fatalf("fewer than %d orders answered within %s", n, demotest.EventTimeout)
		}
	}
}

// finish stops the clients and waits for their last answers.
func (l *orderLoad) finish() (accepted, unknown, other []string) {
	close(l.stop)
	l.wg.Wait()
	return l.accepted, l.unknown, l.other
}

func postOrderAs(client *http.Client, addr, id string) (int, error) {
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/orders", strings.NewReader(`{"item":"book","quantity":1}`))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Idempotency-Key", id)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, err = io.ReadAll(resp.Body)
	return resp.StatusCode, err
}

// awaitStored waits until GET /orders/{id} answers 200 for every id.
func awaitStored(t *testing.T, p *demotest.Process, ids []string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for _, id := range ids {
		for {
			r := p.Get("/orders/" + id)
			if r.OK() {
				break
			}
			if r.Err != nil || r.Status != http.StatusNotFound {
				t.Fatalf("GET /orders/%s = %v, want 200 or 404", id, r)
			}
			if time.Now().After(deadline) {
				t.Fatalf("order %s, answered 202, is still not stored after %s", id, within)
			}
			time.Sleep(10 * time.Millisecond) // poll interval while the consumer catches up
		}
	}
}

// storedRows reads the table the program wrote in -store, once no process
// runs.
func storedRows(t *testing.T, store string) map[string]int {
	t.Helper()
	return storedRowsAt(t, filepath.Join(store, "orders.db"))
}

// storedRowsAt reads the table of database, a SQLite file or a PostgreSQL
// URL: how many rows each id has.
func storedRowsAt(t *testing.T, database string) map[string]int {
	t.Helper()
	if strings.HasPrefix(database, "postgres://") {
		return postgresRows(t, database)
	}
	db, err := sql.Open("sqlite", "file:"+database)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(context.Background(), `SELECT id, COUNT(*) FROM orders GROUP BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	stored := map[string]int{}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		stored[id] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return stored
}

// finishedCounts returns the figures of "shutdown finished".
func finishedCounts(t *testing.T, p *demotest.Process) (accepted, stored, redelivered int) {
	t.Helper()
	l, ok := p.Logged("shutdown finished")
	if !ok {
		t.Fatalf(`no "shutdown finished" line`)
	}
	n := func(key string) int {
		v, err := strconv.Atoi(l.Attr(key))
		if err != nil {
			t.Fatalf("shutdown finished %s=%q: %v", key, l.Attr(key), err)
		}
		return v
	}
	return n("accepted"), n("stored"), n("redelivered")
}

// checkStoredOnce: every accepted order is in the table, once, and nothing
// is there that was not sent.
func checkStoredOnce(t *testing.T, database string, accepted, unknown []string) {
	t.Helper()
	rows := storedRowsAt(t, database)
	sent := map[string]bool{}
	for _, id := range append(accepted, unknown...) {
		sent[id] = true
	}
	for _, id := range accepted {
		if rows[id] != 1 {
			t.Errorf("order %s, answered 202, is stored %d times, want once", id, rows[id])
		}
	}
	for id := range rows {
		if !sent[id] {
			t.Errorf("order %s is stored but was never sent", id)
		}
	}
}

// TestOrdersThroughSIGTERM: a load of POSTs, and SIGTERM in the middle of
// it. The program exits 0, having answered every order it took and left no
// message in hand: what it had fetched is stored and acknowledged. The
// orders the consumer had not reached are still in the stream, and a new
// process on the same -store stores them: every order answered 202 is
// stored once. Each store takes 20ms, so that the consumer is always
// behind the clients and holds a full prefetch at the signal; AckWait is
// far beyond the test, so that a message left in hand (a consumer stopped
// with Stop, which drops what it had fetched) fails the test instead of
// slowing it.
func TestOrdersThroughSIGTERM(t *testing.T) {
	onEachDatabase(t, ordersThroughSIGTERM)
}

func ordersThroughSIGTERM(t *testing.T, store, database string) {
	args := []string{"-store", store, "-database", database, "-drain-delay", "0s", "-shutdown-timeout", "10s", "-ack-wait", "10m", "-work-time", "20ms"}
	p := demotest.Start(t, args...)
	load := startOrderLoad(p.Addr, 8, 200)
	load.awaitAnswered(t, 40)
	p.Signal(syscall.SIGTERM)
	exit := p.WaitExit()
	accepted, unknown, other := load.finish()
	if exit.Code != 0 {
		t.Fatalf("%v after SIGTERM, want exit status 0", exit)
	}
	if len(other) > 0 {
		t.Errorf("answers other than 202: %v", other)
	}
	gotAccepted, stored1, _ := finishedCounts(t, p)
	if gotAccepted != len(accepted) {
		t.Errorf("the program counts %d orders accepted, the clients saw %d 202s", gotAccepted, len(accepted))
	}
	for _, phase := range []string{"drain-delay", "http", "consumer", "nats", "database", "nats-server"} {
		if _, ok := p.Logged("phase finished"); !ok || !loggedPhase(p, phase) {
			t.Errorf("no phase finished line for %s", phase)
		}
	}

	again := demotest.Start(t, args...)
	if resumed := again.WaitLog("consumer resumed"); resumed.Attr("ack_pending") != "0" {
		t.Fatalf("consumer resumed %v, want ack_pending=0: the first process left messages in hand", resumed.Attrs)
	}
	awaitStored(t, again, accepted, demotest.EventTimeout)
	again.Signal(syscall.SIGTERM)
	if exit := again.WaitExit(); exit.Code != 0 {
		t.Fatalf("the second process: %v, want exit status 0", exit)
	}
	_, stored2, _ := finishedCounts(t, again)
	checkStoredOnce(t, database, accepted, unknown)
	if rows := len(storedRowsAt(t, database)); stored1+stored2 != rows {
		t.Errorf("the processes say they stored %d+%d orders, the table has %d", stored1, stored2, rows)
	}
	t.Logf("%d accepted, %d without an answer; stored %d before the exit and %d after the restart", len(accepted), len(unknown), stored1, stored2)
}

func loggedPhase(p *demotest.Process, phase string) bool {
	for _, l := range p.Lines() {
		if l.Msg() == "phase finished" && l.Attr("phase") == phase {
			return true
		}
	}
	return false
}

// TestKill9UnderLoad, on SQLite and on PostgreSQL: kill -9 in the middle of a load of POSTs, so at any
// point of a publish, a transaction or an acknowledgement. A new process on
// the same -store stores every order that was answered 202, once: what was
// in hand comes back after AckWait, and a redelivery of an order already
// committed inserts nothing. Each store takes 20ms, so that the kill finds
// messages in hand, one of them in its transaction.
func TestKill9UnderLoad(t *testing.T) {
	onEachDatabase(t, kill9UnderLoad)
}

func kill9UnderLoad(t *testing.T, store, database string) {
	args := []string{"-store", store, "-database", database, "-drain-delay", "0s", "-ack-wait", "2s", "-work-time", "20ms"}
	p := demotest.Start(t, args...)
	load := startOrderLoad(p.Addr, 8, 200)
	load.awaitAnswered(t, 40)
	p.Signal(syscall.SIGKILL)
	p.WaitExit()
	accepted, unknown, other := load.finish()
	if len(other) > 0 {
		t.Errorf("answers other than 202: %v", other)
	}

	again := demotest.Start(t, args...)
	awaitStored(t, again, accepted, demotest.EventTimeout)
	again.Signal(syscall.SIGTERM)
	if exit := again.WaitExit(); exit.Code != 0 {
		t.Fatalf("the second process: %v, want exit status 0", exit)
	}
	_, stored, redelivered := finishedCounts(t, again)
	checkStoredOnce(t, database, accepted, unknown)
	t.Logf("%d accepted, %d without an answer; after the restart %d stored, %d redelivered", len(accepted), len(unknown), stored, redelivered)
}

// TestRetriedPostIsOneOrder: a POST sent again with the same
// Idempotency-Key is answered 202 with the same id, and JetStream, which
// has the message id already, says it is a duplicate: one order is stored.
func TestRetriedPostIsOneOrder(t *testing.T) {
	t.Parallel()
	store := t.TempDir()
	p := demotest.Start(t, "-store", store, "-drain-delay", "0s")
	client := &http.Client{}
	var answers []map[string]any
	for range 2 {
		req, _ := http.NewRequest(http.MethodPost, "http://"+p.Addr+"/orders", strings.NewReader(`{"item":"pen","quantity":3}`))
		req.Header.Set("Idempotency-Key", "retry-1")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var answer map[string]any
		err = json.NewDecoder(resp.Body).Decode(&answer)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST /orders = %d %v (%v), want 202", resp.StatusCode, answer, err)
		}
		answers = append(answers, answer)
	}
	if answers[0]["id"] != "retry-1" || answers[1]["id"] != "retry-1" || answers[0]["duplicate"] != false || answers[1]["duplicate"] != true {
		t.Errorf("answers %v, want id retry-1 twice, the second a duplicate", answers)
	}
	awaitStored(t, p, []string{"retry-1"}, demotest.EventTimeout)
	p.Signal(syscall.SIGTERM)
	if exit := p.WaitExit(); exit.Code != 0 {
		t.Fatalf("%v, want exit status 0", exit)
	}
	if _, stored, _ := finishedCounts(t, p); stored != 1 {
		t.Errorf("stored=%d, want 1", stored)
	}
	if rows := storedRows(t, store); len(rows) != 1 || rows["retry-1"] != 1 {
		t.Errorf("table %v, want retry-1 once", rows)
	}
}
