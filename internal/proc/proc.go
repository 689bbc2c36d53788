// Package proc runs a step's program as a child process and watches it: the
// lines it writes, parsed as slog text; when it logs a given line; when its
// port answers; how and when it exits. It is kept free of the testing
// package so that both the test harness (internal/demotest) and the lab
// program (lab/) run their children with it.
package proc

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gracefulgo/walkthrough/internal/slogline"
)

// EventTimeout bounds every wait for something the program should do soon:
// a log line, an exit, a port answering. Waits end at the event, not at this
// bound; it only keeps a broken program from hanging its caller. It is tens
// of seconds because two cores shared by four test packages under -race
// made 5 s a throughput expectation: a 50 ms send took 680 ms there.
const EventTimeout = 30 * time.Second

// FreeAddr returns a loopback address whose port was free a moment ago.
//
// The port comes from below the kernel's ephemeral range (32768-60999 on
// Linux, 49152-65535 on macOS), where client connections and ":0"
// listeners get theirs, so that no parallel test's dial or port-in-use
// listener can take it between now and the program's bind.
//
// Several processes hand out ports at once (go test runs four packages'
// test binaries, and the lab may run beside them), and two that checked
// the same free port would both give it to a program: one of them then
// fails to listen, or a test talks to another package's server. So each
// process first claims a block of ports of its own, by holding an flock on
// a file named after the block in the temporary folder, for as long as it
// lives (the kernel lets go of it when the process ends, however it ends),
// and never hands out the same port twice.
func FreeAddr() (string, error) {
	freePorts.Lock()
	defer freePorts.Unlock()
	for range portsHigh - portsLow {
		if freePorts.next == freePorts.end {
			if err := claimBlock(); err != nil {
				return "", err
			}
		}
		port := freePorts.next
		freePorts.next++
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue // taken by something else: try the next one
		}
		addr := ln.Addr().String()
		ln.Close()
		return addr, nil
	}
	return "", fmt.Errorf("no free loopback port from %d to %d", portsLow, portsHigh-1)
}

// The ports FreeAddr hands out, in blocks of portsBlock.
const portsLow, portsHigh, portsBlock = 20000, 32700, 100

// freePorts is the block this process holds: the next port FreeAddr tries,
// and the end of the block.
var freePorts struct {
	sync.Mutex
	next, end int
	tried     int // blocks tried so far, from a random first one
	first     int
}

// claimBlock takes the next block that no other process holds.
func claimBlock() error {
	blocks := (portsHigh - portsLow) / portsBlock
	if freePorts.tried == 0 {
		freePorts.first = rand.IntN(blocks)
	}
	dir := filepath.Join(os.TempDir(), "gracefulgo-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return fmt.Errorf("the port blocks' folder: %w", err)
	}
	for ; freePorts.tried < blocks; freePorts.tried++ {
		b := (freePorts.first + freePorts.tried) % blocks
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("block-%d", b)), os.O_CREATE|os.O_RDWR, 0o666)
		if err != nil {
			return fmt.Errorf("a port block's lock file: %w", err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close() // another process holds this block
			continue
		}
		heldBlocks = append(heldBlocks, f) // held until the process ends
		freePorts.tried++
		freePorts.next, freePorts.end = portsLow+b*portsBlock, portsLow+(b+1)*portsBlock
		return nil
	}
	return fmt.Errorf("every block of loopback ports from %d to %d is held by another process", portsLow, portsHigh-1)
}

// heldBlocks keeps the lock files open, and so their locks held.
var heldBlocks []*os.File

// Process is a running program.
type Process struct {
	cmd  *exec.Cmd
	Addr string // where it was told to listen

	mu    sync.Mutex
	lines []slogline.Line
	grew  chan struct{} // closed and replaced whenever a line arrives

	done chan struct{} // closed once the process has exited and its lines are read
	exit Exit
}

// Exit is how a process ended.
type Exit struct {
	Code   int            // exit code; -1 when a signal killed it
	Signal syscall.Signal // the signal that killed it, or 0
	At     time.Time      // when it exited
	Err    error          // why the status is unknown, in the rare case it is
}

func (e Exit) String() string {
	switch {
	case e.Err != nil:
		return "unknown: " + e.Err.Error()
	case e.Signal != 0:
		return "killed by " + SignalName(e.Signal)
	}
	return fmt.Sprintf("exit status %d", e.Code)
}

// SignalName is the name kill(1) and the C headers use, such as SIGTERM.
func SignalName(s syscall.Signal) string {
	switch s {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGKILL:
		return "SIGKILL"
	case syscall.SIGHUP:
		return "SIGHUP"
	}
	return s.String()
}

// Start starts cmd with -addr addr before its flags, so that the program
// listens on addr, and returns at once. The flag goes after the words that
// lead the arguments, so that a program with roles (`09-worker-process web
// -database ...`) gets it after its role; an empty addr adds no flag, for a
// role that serves no HTTP. The program's stdout and stderr are read as
// lines; its environment gets GORACE=atexit_sleep_ms=0.
func Start(addr string, cmd *exec.Cmd) (*Process, error) {
	if addr != "" {
		at := 1
		for at < len(cmd.Args) && !strings.HasPrefix(cmd.Args[at], "-") {
			at++
		}
		cmd.Args = slices.Insert(cmd.Args, at, "-addr", addr)
	}
	// A program built with -race sleeps a second at exit, waiting for late
	// race reports, unless told not to; that second would be measured as
	// part of every shutdown.
	cmd.Env = append(cmd.Environ(), "GORACE=atexit_sleep_ms=0 "+os.Getenv("GORACE"))
	// The program writes into one pipe whose writing end is an *os.File, so
	// Wait returns the moment the process exits (it does not also wait for
	// a copying goroutine) and the exit time is the exit time. The lines of
	// both streams keep the order the program wrote them in.
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
	w.Close() // the child holds its own copy: the pipe ends when the child does
	p := &Process{cmd: cmd, Addr: addr, grew: make(chan struct{}), done: make(chan struct{})}
	read := make(chan struct{})
	go func() {
		p.read(r)
		close(read)
	}()
	go func() {
		err := cmd.Wait()
		exit := exitOf(cmd.ProcessState, err)
		// The process counts as exited only once every line it wrote has
		// been read, so that a wait for a line can give up at the exit.
		// The pipe reaches its end as the process exits: this waits
		// microseconds, and the exit time above is not moved.
		<-read
		p.exit = exit
		close(p.done)
	}()
	return p, nil
}

func exitOf(ps *os.ProcessState, err error) Exit {
	e := Exit{Code: ps.ExitCode(), At: time.Now()}
	if ps == nil {
		e.Err = err
		return e
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		e.Signal = ws.Signal()
	}
	return e
}

func (p *Process) read(r *os.File) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := slogline.Parse(sc.Text())
		line.At = time.Now()
		p.mu.Lock()
		p.lines = append(p.lines, line)
		close(p.grew)
		p.grew = make(chan struct{})
		p.mu.Unlock()
	}
}

// Watch returns the lines written so far, to read but not to modify, and a
// channel that is closed when the next one arrives.
func (p *Process) Watch() (lines []slogline.Line, grew <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lines[:len(p.lines):len(p.lines)], p.grew
}

// Lines returns a copy of the lines written so far.
func (p *Process) Lines() []slogline.Line {
	lines, _ := p.Watch()
	return append([]slogline.Line(nil), lines...)
}

// Output is everything the program wrote so far, one line per line.
func (p *Process) Output() string {
	var b strings.Builder
	for _, l := range p.Lines() {
		b.WriteString(l.Raw)
		b.WriteByte('\n')
	}
	return b.String()
}

// Logged returns the first line with the given msg, if there is one yet.
func (p *Process) Logged(msg string) (slogline.Line, bool) {
	lines, _ := p.Watch()
	for _, l := range lines {
		if l.Msg() == msg {
			return l, true
		}
	}
	return slogline.Line{}, false
}

// Count is how many lines with the given msg were written so far.
func (p *Process) Count(msg string) int {
	lines, _ := p.Watch()
	n := 0
	for _, l := range lines {
		if l.Msg() == msg {
			n++
		}
	}
	return n
}

// ErrNotLogged is returned by [Process.LoggedBefore] when a line is missing.
var ErrNotLogged = errors.New("not logged")

// LoggedBefore reports whether the first line with msg a came before the
// first line with msg b. Both must have been logged.
func (p *Process) LoggedBefore(a, b string) (bool, error) {
	ia, ib := -1, -1
	lines, _ := p.Watch()
	for i, l := range lines {
		if ia < 0 && l.Msg() == a {
			ia = i
		}
		if ib < 0 && l.Msg() == b {
			ib = i
		}
	}
	switch {
	case ia < 0:
		return false, fmt.Errorf("%q %w", a, ErrNotLogged)
	case ib < 0:
		return false, fmt.Errorf("%q %w", b, ErrNotLogged)
	}
	return ia < ib, nil
}

// AwaitLog waits up to timeout for a line with the given msg. It reports
// false if the process exits or the time runs out first.
func (p *Process) AwaitLog(msg string, timeout time.Duration) (slogline.Line, bool) {
	return p.AwaitLogN(msg, 1, timeout)
}

// AwaitLogN waits up to timeout for the nth line with the given msg. It
// reports false if the process exits or the time runs out first.
func (p *Process) AwaitLogN(msg string, n int, timeout time.Duration) (slogline.Line, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	seen, found := 0, 0
	for exited := false; ; {
		lines, grew := p.Watch()
		for ; seen < len(lines); seen++ {
			if lines[seen].Msg() == msg {
				if found++; found == n {
					return lines[seen], true
				}
			}
		}
		if exited {
			return slogline.Line{}, false
		}
		select {
		case <-grew:
		case <-p.done:
			exited = true // every line is in now: look once more
		case <-deadline.C:
			return slogline.Line{}, false
		}
	}
}

// AwaitAnswer waits up to timeout for the program's port to accept a
// connection: a program may log that it listens before it has bound the
// port. It gives up early if the process exits.
func (p *Process) AwaitAnswer(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.Dial("tcp", p.Addr)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) || p.HasExited() {
			return fmt.Errorf("%s does not answer: %v", p.Addr, err)
		}
		time.Sleep(5 * time.Millisecond) // poll interval while waiting for the port
	}
}

// Signal sends sig to the process and returns when it was sent. The time
// is read before the send: read after, it could come late if this
// goroutine were descheduled, and a program that waited its full deadline
// would seem to have cut it short.
func (p *Process) Signal(sig os.Signal) (time.Time, error) {
	at := time.Now()
	return at, p.cmd.Process.Signal(sig)
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done returns a channel that is closed once the process has exited and
// every line it wrote has been read.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports how the process ended, and false while it runs.
func (p *Process) Exited() (Exit, bool) {
	select {
	case <-p.done:
		return p.exit, true
	default:
		return Exit{}, false
	}
}

// HasExited reports whether the process has exited.
func (p *Process) HasExited() bool {
	_, ok := p.Exited()
	return ok
}

// AwaitExit waits up to timeout for the process to exit.
func (p *Process) AwaitExit(timeout time.Duration) (Exit, bool) {
	select {
	case <-p.done:
		return p.exit, true
	case <-time.After(timeout):
		return Exit{}, false
	}
}

// Kill kills the process unless it has exited, and waits until it has.
func (p *Process) Kill() {
	if !p.HasExited() {
		p.cmd.Process.Kill()
	}
	<-p.done
}
