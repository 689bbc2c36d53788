package main

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/gracefulgo/walkthrough/internal/demotest"
	"github.com/nats-io/nats-server/v2/server"
)

// startNATSServer runs a NATS server with JetStream for the test, on a
// loopback port: the same server as the step embeds, reached over TCP as a
// server of its own would be. A user and password prove that -nats-url's
// password never reaches the log.
func startNATSServer(t *testing.T) (url string) {
	t.Helper()
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, // a free port
		JetStream: true, StoreDir: t.TempDir(),
		Username: "orders", Password: "s3cret-pass",
		NoSigs: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(demotest.EventTimeout) {
		t.Fatal("the test's NATS server did not start")
	}
	return fmt.Sprintf("nats://orders:s3cret-pass@%s", ns.Addr())
}

// TestTwoInstancesOneNATSServer: two processes on one external NATS server
// and one database, consuming the same durable consumer. The first holds a
// full prefetch of orders whose storing takes a minute when SIGTERM comes:
// its consumer's share of the budget runs out, and it hands them back.
// The second, running on, stores every order at once: AckWait is ten
// minutes, so only the hand-back can explain it. The password of
// -nats-url is masked in every line.
func TestTwoInstancesOneNATSServer(t *testing.T) {
	t.Parallel()
	natsURL := startNATSServer(t)
	database := filepath.Join(t.TempDir(), "orders.db")
	common := []string{"-nats-url", natsURL, "-database", database, "-drain-delay", "0s", "-ack-wait", "10m", "-prefetch", "4"}

	first := demotest.Start(t, append(common, "-work-time", "1m", "-shutdown-timeout", "6s")...)
	var ids []string
	for i := range 6 {
		id := fmt.Sprintf("two-%d", i)
		req, _ := http.NewRequest(http.MethodPost, "http://"+first.Addr+"/orders", strings.NewReader(`{"item":"desk","quantity":1}`))
		req.Header.Set("Idempotency-Key", id)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST /orders = %d, want 202", resp.StatusCode)
		}
		ids = append(ids, id)
	}
	first.WaitLog("storing order")

	second := demotest.Start(t, common...)
	first.Signal(syscall.SIGTERM)
	if exit := first.WaitExit(); exit.Code != 1 {
		t.Errorf("the first process: %v, want exit status 1 (its consumer's phase overran)", exit)
	}
	if l, ok := first.Logged("shutdown forced"); !ok || l.Attr("overran") != "consumer" {
		t.Errorf("shutdown forced %v, want overran=consumer", l.Attrs)
	}
	if loggedPhase(first, "nats-server") {
		t.Error("the first process stopped a NATS server that is not its own")
	}
	awaitStored(t, second, ids, demotest.EventTimeout)
	second.Signal(syscall.SIGTERM)
	if exit := second.WaitExit(); exit.Code != 0 {
		t.Fatalf("the second process: %v, want exit status 0", exit)
	}
	_, stored, redelivered := finishedCounts(t, second)
	if stored != len(ids) {
		t.Errorf("the second process stored %d orders, want all %d", stored, len(ids))
	}
	if redelivered == 0 {
		t.Error("the second process got no redelivery: the first handed nothing back")
	}
	t.Logf("the second process stored %d orders, %d of them redelivered", stored, redelivered)
	for _, p := range []*demotest.Process{first, second} {
		if out := p.Output(); strings.Contains(out, "s3cret-pass") {
			t.Errorf("the password of -nats-url is in the output:\n%s", out)
		} else if !strings.Contains(out, "nats://orders:xxxxx@") {
			t.Errorf("the output does not name the NATS server with its password masked:\n%s", out)
		}
	}
	if rows := storedRowsAt(t, database); len(rows) != len(ids) {
		t.Errorf("the table has %v, want the %d orders once each", rows, len(ids))
	}
}
