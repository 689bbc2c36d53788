package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gracefulgo/walkthrough/internal/demotest"
	"github.com/gracefulgo/walkthrough/internal/proc"
)

// startNATSServer runs a standalone NATS server with JetStream for the
// test, on a loopback port: the nats-server command, built from the same
// module the step embeds (tools/go.mod pins it as a go tool), reached over
// TCP as a server of one's own would be. A user and password prove that
// -nats-url's password never reaches the log. Without the tool's modules
// in the module cache the test skips; under CI=true it builds it, or fails.
func startNATSServer(t *testing.T) (url string) {
	t.Helper()
	_ = os.Getenv("TOOLS_PRESENT") // so that make test does not replay a skip once nats-server is built (tools/present.sh)
	bin, err := demotest.GoTool("nats-server", os.Getenv("CI") != "true")
	if errors.Is(err, demotest.ErrNotDownloaded) {
		t.Skip("no standalone nats-server: go tool -modfile=tools/go.mod nats-server --version fetches and builds it, then make test-16")
	}
	if err != nil {
		t.Fatal(err)
	}
	addr := demotest.FreeAddr(t)
	host, port, _ := net.SplitHostPort(addr)
	server, err := proc.Start("", exec.Command(bin, "-a", host, "-p", port, "-js", "-sd", t.TempDir(),
		"--user", "orders", "--pass", "s3cret-pass"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		server.Kill()
		if t.Failed() {
			t.Logf("nats-server output:\n%s", server.Output())
		}
	})
	// It logs "Server is ready" once JetStream is up and it listens.
	timeout := time.After(demotest.EventTimeout)
	for seen := 0; ; {
		lines, grew := server.Watch()
		for ; seen < len(lines); seen++ {
			if strings.Contains(lines[seen].Raw, "Server is ready") {
				return fmt.Sprintf("nats://orders:s3cret-pass@%s", addr)
			}
		}
		select {
		case <-grew:
		case <-server.Done():
			t.Fatalf("nats-server exited before it was ready:\n%s", server.Output())
		case <-timeout:
			t.Fatalf("nats-server not ready within %s:\n%s", demotest.EventTimeout, server.Output())
		}
	}
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
