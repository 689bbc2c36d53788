package demotest

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/gracefulgo/walkthrough/internal/proctree"
)

// Tree is a step program that hands over to copies of itself (step 12's
// graceful restart), run with [proctree]: every process of the family, its
// lines and exits, and a cleanup that kills them all.
type Tree struct {
	*proctree.Tree
	t testing.TB
}

// CopyProgram copies the test binary, which is the step's program (see
// [Main]), to dir and returns its path: a binary a test can replace on
// disk, as a deploy does, without touching the one that runs the tests.
func CopyProgram(t testing.TB, dir string) string {
	t.Helper()
	path := filepath.Join(dir, Step(t))
	if err := InstallProgram(os.Args[0], path); err != nil {
		t.Fatal(err)
	}
	return path
}

// InstallProgram puts a copy of the executable src at dst the way a deploy
// should: written beside it, then renamed over it, so a process running
// the old file keeps it and one starting now gets the whole new one.
func InstallProgram(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), filepath.Base(dst)+".new*")
	if err != nil {
		return err
	}
	_, err = io.Copy(tmp, in)
	err = errors.Join(err, tmp.Chmod(0o755), tmp.Close())
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

// StartTree runs binary (from [CopyProgram]) as the step, on a free
// loopback port, and returns once it has logged "listening" and its port
// answers. The test's cleanup kills every process of the tree. Where a
// tree cannot be watched (not Linux), the test is skipped.
func StartTree(t testing.TB, binary string, args ...string) *Tree {
	t.Helper()
	addr := FreeAddr(t)
	var started *proctree.Tree
	var err error
	for range 100 {
		cmd := exec.Command(binary, args...)
		cmd.Env = append(os.Environ(), runProgramEnv+"=1")
		started, err = proctree.Start(addr, cmd)
		// A binary just written can be "busy" for a moment: a process
		// forked meanwhile by another test holds the writer's descriptor
		// until it execs (golang.org/issue/22315).
		if !errors.Is(err, syscall.ETXTBSY) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if errors.Is(err, proctree.ErrUnsupported) {
		t.Skipf("skipped: %v; run it on Linux", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	tr := &Tree{Tree: started, t: t}
	t.Cleanup(func() {
		tr.Kill()
		if t.Failed() {
			t.Logf("%s output, every process:\n%s", Step(t), tr.Output())
		}
	})
	// The step logs "listening" once its socket is bound: no need to poll
	// the port.
	tr.WaitLogN("listening", 1)
	return tr
}

// WaitLogN waits for the nth line with msg, from any process of the tree,
// and fails the test if it does not come within EventTimeout.
func (tr *Tree) WaitLogN(msg string, n int) Line {
	tr.t.Helper()
	l, ok := tr.AwaitLogN(msg, n, EventTimeout)
	if !ok {
		tr.t.Fatalf("%s never logged msg=%q %d times", Step(tr.t), msg, n)
	}
	return l
}

// WaitLog waits for a line with msg written by the process pid.
func (tr *Tree) WaitLog(pid int, msg string) Line {
	tr.t.Helper()
	l, ok := tr.AwaitLog(pid, msg, EventTimeout)
	if !ok {
		tr.t.Fatalf("pid %d never logged msg=%q", pid, msg)
	}
	return l
}

// WaitExit waits for the process pid of the tree to exit.
func (tr *Tree) WaitExit(pid int) Exit {
	tr.t.Helper()
	e, ok := tr.AwaitExit(pid, EventTimeout)
	if !ok {
		tr.t.Fatalf("pid %d did not exit within %s", pid, EventTimeout)
	}
	return e
}

// Signal sends sig to the process pid of the tree.
func (tr *Tree) Signal(pid int, sig syscall.Signal) {
	tr.t.Helper()
	if _, err := tr.Tree.Signal(pid, sig); err != nil {
		tr.t.Fatalf("signal %v: %v", sig, err)
	}
}

// Get sends GET path on a connection of its own, as curl would.
func (tr *Tree) Get(path string) Response { return request(tr.Addr, "GET", path) }

// GetAsync sends GET path in the background; the answer arrives on the channel.
func (tr *Tree) GetAsync(path string) <-chan Response {
	ch := make(chan Response, 1)
	go func() { ch <- tr.Get(path) }()
	return ch
}

// Dial opens a raw connection to the tree's port, closed at the end of the test.
func (tr *Tree) Dial() (*Conn, error) {
	c, err := net.Dial("tcp", tr.Addr)
	if err != nil {
		return nil, err
	}
	tr.t.Cleanup(func() { c.Close() })
	return &Conn{Conn: c, r: bufio.NewReader(c)}, nil
}

// PidOf reads the pid a line says wrote it.
func PidOf(l Line) int {
	pid, _ := strconv.Atoi(l.Attr("pid"))
	return pid
}
