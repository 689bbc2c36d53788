// Package proctree runs a program that starts copies of itself, as a
// graceful restart does (the old process starts the new one, hands it the
// listening socket, and exits before it), and watches the whole family:
// every line any of them writes, and how each of them exits.
//
// The family lives in a process group of its own (Setpgid), which the
// copies inherit, so that one kill of the group ends all of them, children
// of children included, whatever state a failed test left them in. And the
// caller becomes a child subreaper (Linux's PR_SET_CHILD_SUBREAPER, what
// systemd and container inits use): a copy whose parent has exited is
// re-parented to the caller instead of to init, so the caller can wait for
// it and learn its exit status. That is Linux only; elsewhere [Start]
// returns [ErrUnsupported].
//
// Like internal/proc it is free of the testing package, so that tests and
// the lab use the same copy.
package proctree

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gracefulgo/walkthrough/internal/proc"
	"github.com/gracefulgo/walkthrough/internal/slogline"
)

// ErrUnsupported is returned by [Start] where a process cannot adopt its
// orphaned descendants.
var ErrUnsupported = errors.New("proctree: needs Linux (PR_SET_CHILD_SUBREAPER)")

// Tree is a running program and every process it started.
type Tree struct {
	Addr string // where the program was told to listen
	pgid int

	mu      sync.Mutex
	lines   []slogline.Line
	exits   map[int]proc.Exit
	changed chan struct{} // closed and replaced on every line and every exit

	done chan struct{} // closed once every process has exited and every line is read
}

// Start starts cmd with -addr addr before its other arguments, in a new
// process group, and returns at once. Every process of the tree writes into
// one pipe, read as slog lines; a step that shares its stderr with the
// process it hands over to says in each line which pid wrote it.
func Start(addr string, cmd *exec.Cmd) (*Tree, error) {
	if err := becomeSubreaper(); err != nil {
		return nil, err
	}
	cmd.Args = slices.Insert(cmd.Args, 1, "-addr", addr)
	// As internal/proc does: no second of sleep at exit under -race.
	cmd.Env = append(cmd.Environ(), "GORACE=atexit_sleep_ms=0 "+os.Getenv("GORACE"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	w.Close()
	t := &Tree{
		Addr:    addr,
		pgid:    cmd.Process.Pid, // Setpgid: the group is named after its leader
		exits:   make(map[int]proc.Exit),
		changed: make(chan struct{}),
		done:    make(chan struct{}),
	}
	// The tree reaps its processes itself, by group, so nothing else may
	// wait for the first one.
	_ = cmd.Process.Release() // on Unix it only drops the handle, and cannot fail
	read := make(chan struct{})
	go func() {
		t.read(r)
		close(read)
	}()
	go func() {
		t.reap()
		<-read
		close(t.done)
	}()
	return t, nil
}

// reap waits for every process of the group, the first one and those that
// were re-parented to this process, until none is left.
func (t *Tree) reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-t.pgid, &ws, 0, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return // ECHILD: none left
		}
		e := proc.Exit{Code: ws.ExitStatus(), At: time.Now()}
		if ws.Signaled() {
			e.Signal = ws.Signal()
		}
		t.update(func() { t.exits[pid] = e })
	}
}

func (t *Tree) read(r *os.File) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := slogline.Parse(sc.Text())
		line.At = time.Now()
		t.update(func() { t.lines = append(t.lines, line) })
	}
}

func (t *Tree) update(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f()
	close(t.changed)
	t.changed = make(chan struct{})
}

// Pid is the pid of the first process, the one Start started.
func (t *Tree) Pid() int { return t.pgid }

// Lines returns a copy of the lines written so far, by every process.
func (t *Tree) Lines() []slogline.Line {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.lines)
}

// Output is everything the tree wrote so far, one line per line.
func (t *Tree) Output() string {
	var b strings.Builder
	for _, l := range t.Lines() {
		b.WriteString(l.Raw)
		b.WriteByte('\n')
	}
	return b.String()
}

// Await waits up to timeout until cond, called with the lines and exits so
// far (not to be modified), reports true. It reports false if the time runs
// out, or once every process has exited and cond still does not hold.
func (t *Tree) Await(timeout time.Duration, cond func(lines []slogline.Line, exits map[int]proc.Exit) bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		t.mu.Lock()
		ok := cond(t.lines, t.exits)
		changed := t.changed
		t.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-changed:
		case <-t.done:
			t.mu.Lock()
			defer t.mu.Unlock()
			return cond(t.lines, t.exits)
		case <-deadline.C:
			return false
		}
	}
}

// AwaitLogN waits up to timeout for the nth line (from 1) with the given
// msg, written by any process of the tree.
func (t *Tree) AwaitLogN(msg string, n int, timeout time.Duration) (slogline.Line, bool) {
	var found slogline.Line
	ok := t.Await(timeout, func(lines []slogline.Line, _ map[int]proc.Exit) bool {
		seen := 0
		for _, l := range lines {
			if l.Msg() == msg {
				if seen++; seen == n {
					found = l
					return true
				}
			}
		}
		return false
	})
	return found, ok
}

// AwaitLog waits up to timeout for a line with the given msg written by the
// process pid (its pid attribute).
func (t *Tree) AwaitLog(pid int, msg string, timeout time.Duration) (slogline.Line, bool) {
	var found slogline.Line
	ok := t.Await(timeout, func(lines []slogline.Line, _ map[int]proc.Exit) bool {
		for _, l := range lines {
			if l.Msg() == msg && l.Attr("pid") == strconv.Itoa(pid) {
				found = l
				return true
			}
		}
		return false
	})
	return found, ok
}

// AwaitExit waits up to timeout for the process pid of the tree to exit.
func (t *Tree) AwaitExit(pid int, timeout time.Duration) (proc.Exit, bool) {
	var e proc.Exit
	ok := t.Await(timeout, func(_ []slogline.Line, exits map[int]proc.Exit) bool {
		var ok bool
		e, ok = exits[pid]
		return ok
	})
	return e, ok
}

// Exited reports how the process pid of the tree ended, if it has.
func (t *Tree) Exited(pid int) (proc.Exit, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.exits[pid]
	return e, ok
}

// Signal sends sig to the process pid, which must belong to the tree, and
// returns when it was sent.
func (t *Tree) Signal(pid int, sig syscall.Signal) (time.Time, error) {
	if pgid, err := syscall.Getpgid(pid); err != nil || pgid != t.pgid {
		return time.Time{}, fmt.Errorf("pid %d is not in the tree's process group %d (%v)", pid, t.pgid, err)
	}
	at := time.Now()
	return at, syscall.Kill(pid, sig)
}

// Done returns a channel that is closed once every process of the tree has
// exited and every line is read.
func (t *Tree) Done() <-chan struct{} { return t.done }

// Kill kills every process of the tree that is still running, with SIGKILL
// to the whole group, and waits until each has been reaped.
func (t *Tree) Kill() {
	select {
	case <-t.done:
		return
	default:
	}
	// ESRCH: the group is empty already, and reap is about to see it.
	_ = syscall.Kill(-t.pgid, syscall.SIGKILL)
	<-t.done
}
