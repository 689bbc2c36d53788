package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gracefulgo/walkthrough/internal/demotest"
)

// TestConnectionAcceptedBeforeHandOver: a client whose connection the old
// process accepted before the hand-over, and that sends its first request
// only after it, as a client does a moment after connecting (or a browser
// after a preconnect). The old process answers it, with Connection: close,
// instead of letting Shutdown drop it unanswered.
func TestConnectionAcceptedBeforeHandOver(t *testing.T) {
	t.Parallel()
	tree := demotest.StartTree(t, demotest.CopyProgram(t, t.TempDir()))
	pid := tree.Pid()
	c, err := tree.Dial() // accepted by the old process: the only one yet
	if err != nil {
		t.Fatal(err)
	}
	tree.Signal(pid, syscall.SIGHUP)
	tree.WaitLog(pid, "shutdown started") // handed over: the new process serves
	r := c.Do("/")
	if !r.OK() || !strings.Contains(r.Body, fmt.Sprintf("pid %d", pid)) {
		t.Fatalf("the first request on a connection accepted before the hand-over got %v, want 200 from the old process %d", r, pid)
	}
	if !r.Close {
		t.Errorf("the answer after the hand-over does not say Connection: close")
	}
	if exit := tree.WaitExit(pid); exit.Code != 0 {
		t.Errorf("the old process: %s, want exit status 0", exit)
	}
}

// TestSigtermDuringUpgrade: a SIGTERM while the new binary is starting
// stops the service. The new process is killed, so nothing is left holding
// the socket after the old one exits: the port refuses connections.
func TestSigtermDuringUpgrade(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	binary := demotest.CopyProgram(t, dir)
	tree := demotest.StartTree(t, binary)
	pid := tree.Pid()
	// The new binary holds the write end of a FIFO until it dies, so the
	// test sees its end as an EOF; it would take long to be ready. sleep
	// inherits the socket, as the program would.
	alive := filepath.Join(dir, "alive")
	if err := syscall.Mkfifo(alive, 0o600); err != nil {
		t.Fatal(err)
	}
	fifo, err := os.OpenFile(alive, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fifo.Close()
	deploy(t, binary, "#!/bin/sh\nexec 9>"+alive+"\necho 'level=INFO msg=\"new binary started\"' >&2\nexec sleep 30\n")
	tree.Signal(pid, syscall.SIGHUP)
	tree.WaitLogN("new binary started", 1)
	tree.Signal(pid, syscall.SIGTERM)
	if exit := tree.WaitExit(pid); exit.Code != 0 {
		t.Errorf("the old process after SIGTERM: %s, want exit status 0", exit)
	}
	if err := fifo.SetReadDeadline(time.Now().Add(demotest.EventTimeout)); err != nil {
		t.Fatal(err)
	}
	if _, err := fifo.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("the new process started by the SIGHUP outlived the SIGTERM to the old one (%v)", err)
	}
	if c, err := net.Dial("tcp", tree.Addr); !errors.Is(err, syscall.ECONNREFUSED) {
		if c != nil {
			c.Close()
		}
		t.Errorf("after SIGTERM during an upgrade, a new connection: %v, want it refused", err)
	}
}

// TestHangupDuringDrain: a SIGHUP that reaches the old process after its
// hand-over (systemd's $MAINPID is the old pid until it exits) is logged
// and ignored, not dropped without a word. And one to the new process
// meanwhile (the PID file names it) is ignored too, saying that the old one
// still drains: tableflip would refuse it ("parent hasn't exited"), and
// "upgrade failed" is for a new binary that failed.
//
// The test holds the old process in its drain with a request of a minute
// and lets it go itself, by closing the connection, once it has seen what
// it waits for: a drain that lasted a fixed 300 ms was over before the
// second SIGHUP whenever starting the new process took longer.
func TestHangupDuringDrain(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tree := demotest.StartTree(t, demotest.CopyProgram(t, dir), "-pid-file", filepath.Join(dir, "pid"))
	pid := tree.Pid()
	hold, err := tree.Dial()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(hold, "GET /slow?d=1m HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	tree.WaitLog(pid, "slow request started")
	tree.Signal(pid, syscall.SIGHUP)
	tree.WaitLog(pid, "shutdown started")
	tree.Signal(pid, syscall.SIGHUP)
	ignored := false
	tree.Await(demotest.EventTimeout, func(lines []demotest.Line, exits map[int]demotest.Exit) bool {
		ignored = countMsg(lines, pid, "upgrade ignored") > 0
		_, exited := exits[pid]
		return ignored || exited
	})
	if !ignored {
		t.Errorf("pid %d did not log upgrade ignored for a SIGHUP during its drain:\n%s", pid, tree.Output())
	}
	newPid := readPidFile(t, filepath.Join(dir, "pid"))
	tree.Signal(newPid, syscall.SIGHUP)
	line := tree.WaitLog(newPid, "upgrade ignored")
	if !strings.Contains(line.Attr("reason"), "still draining") {
		t.Errorf("the new process ignored a SIGHUP during the old one's drain saying %q, want that the previous process is still draining", line.Raw)
	}
	if n := countMsg(tree.Lines(), newPid, "upgrade started") + countMsg(tree.Lines(), newPid, "upgrade failed"); n > 0 {
		t.Errorf("the new process tried to upgrade while its parent drained:\n%s", tree.Output())
	}
	hold.Close() // the drain may end now: the handler sees its context cancelled
	if exit := tree.WaitExit(pid); exit.Code != 0 {
		t.Errorf("the old process: %s, want exit status 0", exit)
	}
}

// TestInterruptDuringHandOverDrain: Ctrl+C in the terminal of make run-12
// while the old process still drains. The terminal sends SIGINT to its
// foreground process group, which the new process shares (tableflip starts
// it in its parent's group): both get it. The new one shuts down
// gracefully; the old one, which stopped catching SIGINT when its drain
// began, ends at once and cuts its request. The README says so, and what to
// type instead.
func TestInterruptDuringHandOverDrain(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tree := demotest.StartTree(t, demotest.CopyProgram(t, dir), "-pid-file", filepath.Join(dir, "pid"))
	pid := tree.Pid()
	slow := tree.GetAsync("/slow?d=1m")
	tree.WaitLog(pid, "slow request started")
	tree.Signal(pid, syscall.SIGHUP)
	tree.WaitLog(pid, "shutdown started")
	newPid := readPidFile(t, filepath.Join(dir, "pid"))
	// What the terminal does on Ctrl+C: the tree's group is named after pid.
	if err := syscall.Kill(-pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if exit := tree.WaitExit(pid); exit.Signal != syscall.SIGINT {
		t.Errorf("the old process, draining, after SIGINT: %s, want it ended by the signal", exit)
	}
	if r := demotest.AwaitResponse(slow, demotest.EventTimeout); r.OK() {
		t.Errorf("the request the old process was draining got %v, want it cut", r)
	}
	if line := tree.WaitLog(newPid, "shutdown started"); line.Attr("cause") != "interrupt signal received" {
		t.Errorf("the new process: %q, want a shutdown caused by the interrupt", line.Raw)
	}
	// Not its exit status: had it exited before the old one, the old one
	// (its parent) would have reaped it, not the test.
	tree.WaitLog(newPid, "shutdown finished")
}
