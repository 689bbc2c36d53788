package proctree

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// roleEnv makes the re-executed test binary play a part in a tree:
// "parent" starts a "child" copy of itself, logs the child's pid, and
// exits 3 without waiting for it; "child" logs and waits to be killed.
const roleEnv = "PROCTREE_TEST_ROLE"

func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "parent":
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), roleEnv+"=child")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Start(); err != nil {
			fmt.Printf("msg=failed err=%q\n", err)
			os.Exit(1)
		}
		fmt.Printf("msg=started pid=%d child=%d\n", os.Getpid(), cmd.Process.Pid)
		os.Exit(3)
	case "child":
		fmt.Printf("msg=waiting pid=%d\n", os.Getpid())
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestOrphanIsReapedAndKilled: the first process exits while its child
// runs on; the tree reports the first one's exit status, adopts the child
// and kills it, with the group, on Kill.
// hangBound only catches a hang: a passing run is done in moments.
const hangBound = 30 * time.Second

func TestOrphanIsReapedAndKilled(t *testing.T) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), roleEnv+"=parent")
	tree, err := Start("127.0.0.1:1", cmd)
	if errors.Is(err, ErrUnsupported) {
		t.Skipf("skipped: %v; run it on Linux", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer tree.Kill()
	started, ok := tree.AwaitLogN("started", 1, hangBound)
	if !ok {
		t.Fatalf("the parent did not start its child:\n%s", tree.Output())
	}
	child, _ := strconv.Atoi(started.Attr("child"))
	if _, ok := tree.AwaitLog(child, "waiting", hangBound); !ok {
		t.Fatalf("the child did not start:\n%s", tree.Output())
	}
	if e, ok := tree.AwaitExit(tree.Pid(), hangBound); !ok || e.Code != 3 {
		t.Fatalf("the parent: %v (exited %v), want exit status 3", e, ok)
	}
	if _, ok := tree.Exited(child); ok {
		t.Fatal("the child exited with its parent; want it running on")
	}
	// The orphan is the test's child now (the subreaper), in the group.
	if ppid := parentOf(t, child); ppid != os.Getpid() {
		t.Errorf("the orphan's parent is %d, want this process %d", ppid, os.Getpid())
	}
	tree.Kill()
	if e, ok := tree.Exited(child); !ok || e.Signal != syscall.SIGKILL {
		t.Errorf("after Kill the child: %v (exited %v), want killed by SIGKILL", e, ok)
	}
	if err := syscall.Kill(child, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("the child's pid still exists after Kill (%v): not reaped", err)
	}
}

// parentOf reads a process's parent pid from /proc.
func parentOf(t *testing.T, pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// pid (comm) state ppid ...: comm may hold spaces, so cut after ')'.
	var state string
	var ppid int
	s := string(b)
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == ')' {
			if _, err := fmt.Sscanf(s[i+1:], " %s %d", &state, &ppid); err != nil {
				t.Fatalf("/proc/%d/stat: %v", pid, err)
			}
			break
		}
	}
	return ppid
}
