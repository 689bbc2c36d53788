package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gracefulgo/walkthrough/internal/demotest"
)

// The upgrade tests run a copy of the test binary (the step's program, see
// demotest.Main) from a temporary directory, as facebookgo/grace's tests
// run a binary they built: on SIGHUP, tableflip starts os.Args[0] again,
// the file now at that path, so a test can replace it as a deploy does.

// TestThreeUpgradesUnderLoad: three SIGHUPs in a row, under keep-alive and
// new-connection load that never retries. No request fails; each SIGHUP
// brings a new pid, named by the PID file; each old process finishes the
// slow request it had in flight when the SIGHUP came, then exits 0.
func TestThreeUpgradesUnderLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	tree := demotest.StartTree(t, demotest.CopyProgram(t, dir), "-pid-file", pidFile, "-shutdown-timeout", "5s")
	load := demotest.StartLoad(t, tree.Addr, 4, 2)

	pid := tree.Pid()
	pids := []int{pid}
	for upgrade := 1; upgrade <= 3; upgrade++ {
		if !load.AwaitAnsweredBy(pid, demotest.EventTimeout) {
			t.Fatalf("upgrade %d: the load was never answered by pid %d", upgrade, pid)
		}
		// The first one outlasts keepAliveGrace, so that Shutdown is what
		// drains it; the others end within it. It starts before the SIGHUP,
		// so it must also outlast the upgrade: a second's margin (under
		// -race on two busy cores, 245ms passed from its start to the
		// drain, and 200ms of margin failed the check below).
		d := 300 * time.Millisecond
		if upgrade == 1 {
			d = keepAliveGrace + time.Second
		}
		slow := tree.GetAsync("/slow?d=" + d.String())
		tree.WaitLog(pid, "slow request started")
		newPid := upgradeOnce(t, tree, pid, upgrade+1)
		if exit := tree.WaitExit(pid); exit.Code != 0 {
			t.Errorf("upgrade %d: the old process %d: %s, want exit status 0", upgrade, pid, exit)
		}
		if r := demotest.AwaitResponse(slow, demotest.EventTimeout); !r.OK() {
			t.Errorf("upgrade %d: the slow request in flight at SIGHUP got %v, want 200", upgrade, r)
		}
		tree.WaitLog(pid, "slow request finished") // on the old process, not cut
		line := tree.WaitLog(pid, "shutdown finished")
		if took, err := time.ParseDuration(line.Attr("took")); upgrade == 1 && (err != nil || took < keepAliveGrace) {
			t.Errorf("upgrade %d: shutdown finished took=%s, want more than keepAliveGrace: the slow request was not drained by Shutdown", upgrade, line.Attr("took"))
		}
		if got := readPidFile(t, pidFile); got != newPid {
			t.Errorf("upgrade %d: the PID file names %d, want the new process %d", upgrade, got, newPid)
		}
		pid = newPid
		pids = append(pids, pid)
	}
	if !load.AwaitAnsweredBy(pid, demotest.EventTimeout) {
		t.Errorf("the load was never answered by the last pid %d", pid)
	}
	results := load.Stop()
	checkNoFailure(t, results)
	if len(uniq(pids)) != 4 {
		t.Errorf("pids %v: want four different processes", pids)
	}

	tree.Signal(pid, syscall.SIGTERM)
	if exit := tree.WaitExit(pid); exit.Code != 0 {
		t.Errorf("the last process after SIGTERM: %s, want exit status 0", exit)
	}
}

// upgradeOnce sends SIGHUP to pid and waits for the nth "listening" line,
// the new process's; it returns that process's pid. A SIGHUP so soon after
// the last upgrade that the process has not yet seen its parent exit (the
// parent's end of a pipe closing, read in a goroutine) is ignored, "the
// previous process is still draining", or, if tableflip has not seen it
// either, fails with "parent hasn't exited": the process keeps serving and
// the SIGHUP is sent again, as an operator would.
func upgradeOnce(t *testing.T, tree *demotest.Tree, pid, n int) int {
	t.Helper()
	for attempt := 1; ; attempt++ {
		refusals := countFailed(tree, pid) + countMsg(tree.Lines(), pid, "upgrade ignored")
		tree.Signal(pid, syscall.SIGHUP)
		ok := tree.Await(demotest.EventTimeout, func(lines []demotest.Line, _ map[int]demotest.Exit) bool {
			return countMsg(lines, 0, "listening") >= n || countMsg(lines, pid, "upgrade failed")+countMsg(lines, pid, "upgrade ignored") > refusals
		})
		if !ok {
			t.Fatalf("pid %d: no new process listening, and no upgrade failed or ignored, after SIGHUP", pid)
		}
		if l, ok := tree.AwaitLogN("listening", n, 0); ok {
			newPid := demotest.PidOf(l)
			if newPid == pid || newPid == 0 {
				t.Fatalf("the new listening line names pid %d (old %d)", newPid, pid)
			}
			return newPid
		}
		out := tree.Output()
		if attempt == 3 || !strings.Contains(out, "parent hasn't exited") && !strings.Contains(out, "still draining") {
			t.Fatalf("pid %d: the upgrade failed:\n%s", pid, out)
		}
	}
}

// awaitCount waits until pid has logged msg n times.
func awaitCount(t *testing.T, tree *demotest.Tree, pid int, msg string, n int) {
	t.Helper()
	if !tree.Await(demotest.EventTimeout, func(lines []demotest.Line, _ map[int]demotest.Exit) bool {
		return countMsg(lines, pid, msg) >= n
	}) {
		t.Fatalf("pid %d logged msg=%q fewer than %d times", pid, msg, n)
	}
}

func countFailed(tree *demotest.Tree, pid int) int {
	return countMsg(tree.Lines(), pid, "upgrade failed")
}

// countMsg counts the lines with msg written by pid (any pid if 0).
func countMsg(lines []demotest.Line, pid int, msg string) int {
	n := 0
	for _, l := range lines {
		if l.Msg() == msg && (pid == 0 || demotest.PidOf(l) == pid) {
			n++
		}
	}
	return n
}

// TestBrokenDeploy: the binary on disk is replaced by one that exits at
// once, then by one that never gets ready; a SIGHUP with each fails, logs
// "upgrade failed", and leaves the old process serving, with no request
// lost. A SIGHUP during the second one is ignored. With the good binary
// back, the next SIGHUP hands over.
func TestBrokenDeploy(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	binary := demotest.CopyProgram(t, dir)
	good := binary + ".good"
	if err := demotest.InstallProgram(binary, good); err != nil {
		t.Fatal(err)
	}
	// The timeout also bounds the good deploy at the end: 500 ms was shorter
	// than a real binary's start on two busy cores (go1.27.3's CI run timed it
	// out), so it is a hang bound, and the never-ready deploy waits it out.
	tree := demotest.StartTree(t, binary, "-pid-file", pidFile, "-upgrade-timeout", "10s")
	pid := tree.Pid()
	load := demotest.StartLoad(t, tree.Addr, 2, 1)

	deploy(t, binary, "#!/bin/sh\necho 'broken build: cannot start' >&2\nexit 3\n")
	tree.Signal(pid, syscall.SIGHUP)
	failed := tree.WaitLog(pid, "upgrade failed")
	if err := failed.Attr("err"); !strings.Contains(err, "exited") {
		t.Errorf("upgrade failed err=%q, want it to say the new process exited", err)
	}

	deploy(t, binary, "#!/bin/sh\nexec sleep 30\n") // starts, never says it is ready
	tree.Signal(pid, syscall.SIGHUP)
	awaitCount(t, tree, pid, "upgrade started", 2)
	tree.Signal(pid, syscall.SIGHUP) // during the upgrade: ignored
	tree.WaitLog(pid, "upgrade ignored")
	awaitCount(t, tree, pid, "upgrade failed", 2)
	if out := tree.Output(); !strings.Contains(out, "timed out") {
		t.Errorf("the second upgrade failed, but not for the -upgrade-timeout:\n%s", out)
	}
	if got := countMsg(tree.Lines(), pid, "upgrade started"); got != 2 {
		t.Errorf("%d upgrades started, want 2: the SIGHUP during one must not start another", got)
	}
	if r := tree.Get("/"); !strings.Contains(r.Body, fmt.Sprintf("pid %d", pid)) {
		t.Errorf("after two broken deploys GET / = %v, want the old process %d", r, pid)
	}
	if got := readPidFile(t, pidFile); got != pid {
		t.Errorf("the PID file names %d after failed upgrades, want %d", got, pid)
	}

	if err := demotest.InstallProgram(good, binary); err != nil {
		t.Fatal(err)
	}
	newPid := upgradeOnce(t, tree, pid, 2)
	if exit := tree.WaitExit(pid); exit.Code != 0 {
		t.Errorf("the old process after the good deploy: %s, want exit status 0", exit)
	}
	if got := readPidFile(t, pidFile); got != newPid {
		t.Errorf("the PID file names %d, want the new process %d", got, newPid)
	}
	if !load.AwaitAnsweredBy(newPid, demotest.EventTimeout) {
		t.Errorf("the load was never answered by the new process %d", newPid)
	}
	checkNoFailure(t, load.Stop())
}

// TestKeptAliveConnectionAfterHandOver: a client whose kept-alive
// connection to the old process is idle at the hand-over sends its next
// request on it, as it may at any moment. The old process answers it, with
// Connection: close, instead of closing the connection under it.
func TestKeptAliveConnectionAfterHandOver(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tree := demotest.StartTree(t, demotest.CopyProgram(t, dir))
	pid := tree.Pid()
	c, err := tree.Dial()
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Do("/"); !r.OK() {
		t.Fatalf("GET / on a kept-alive connection: %v", r)
	}
	tree.Signal(pid, syscall.SIGHUP)
	tree.WaitLog(pid, "shutdown started") // handed over: the new process serves
	r := c.Do("/")
	if !r.OK() || !strings.Contains(r.Body, fmt.Sprintf("pid %d", pid)) {
		t.Fatalf("the next request on the kept-alive connection got %v, want 200 from the old process %d", r, pid)
	}
	if !r.Close {
		t.Errorf("the answer after the hand-over does not say Connection: close")
	}
	if exit := tree.WaitExit(pid); exit.Code != 0 {
		t.Errorf("the old process: %s, want exit status 0", exit)
	}
}

// deploy replaces the binary at path with a shell script, as a broken
// build would, by a rename that a process running the old file survives.
func deploy(t *testing.T, path, script string) {
	t.Helper()
	tmp := path + ".deploy"
	if err := os.WriteFile(tmp, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func readPidFile(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("PID file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("PID file holds %q: %v", b, err)
	}
	return pid
}

// checkNoFailure fails the test for each request of the load that failed,
// and if the load sent too few requests to prove anything.
func checkNoFailure(t *testing.T, results []demotest.LoadResult) {
	t.Helper()
	failed := 0
	for _, r := range results {
		if !r.OK() {
			if failed++; failed <= 5 {
				t.Errorf("%s: %v at %s", r.Lane, r.Result, r.End.Format("15:04:05.000"))
			}
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d requests failed, want 0", failed, len(results))
	}
	if len(results) < 50 {
		t.Errorf("only %d requests: the load did not run", len(results))
	}
	t.Logf("%d requests, %d failed", len(results), failed)
}

func uniq(pids []int) map[int]bool {
	m := map[int]bool{}
	for _, p := range pids {
		m[p] = true
	}
	return m
}
