// Package demotest runs a step's real program as a child process and lets a
// test talk to it the way a user would: HTTP requests on a loopback port, real
// signals, the log lines it writes and the exit status it ends with.
//
// A step's test binary doubles as the program: its TestMain calls [Main],
// which runs the step's main function instead of the tests when the
// environment asks for it. So the child is the very code under test, built
// with the same flags (-race included), and no step imports this package.
package demotest

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// runProgramEnv tells a re-executed test binary to be the program.
const runProgramEnv = "DEMOTEST_RUN_PROGRAM"

// EventTimeout bounds every wait for something the program should do soon:
// a log line, an exit, a port answering. Waits end at the event, not at this
// bound; it only keeps a broken program from hanging the suite.
const EventTimeout = 5 * time.Second

// Main is a step's TestMain. In the child it runs program (the step's main)
// and exits 0 if program returns; otherwise it runs the tests.
func Main(m *testing.M, program func()) {
	if os.Getenv(runProgramEnv) == "1" {
		program()
		os.Exit(0)
	}
	// The scenarios spend their time waiting on child processes, not on
	// the CPU, so run more of them at once than -parallel's default of
	// GOMAXPROCS. A -parallel on the command line still wins.
	flag.Set("test.parallel", "16")
	os.Exit(m.Run())
}

// Step is the name of the step under test: the folder the test runs in,
// such as "04-notifycontext".
func Step(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Base(wd)
}

// FreeAddr returns a loopback address whose port was free a moment ago.
//
// The port comes from below the kernel's ephemeral range (32768-60999 on
// Linux, 49152-65535 on macOS), where client connections and ":0"
// listeners get theirs, so that no parallel test's dial or port-in-use
// listener can take it between now and the program's bind. A test binary
// starts at a random port and never hands out the same one twice.
func FreeAddr(t testing.TB) string {
	t.Helper()
	const low, high = 20000, 32768
	freePorts.Lock()
	defer freePorts.Unlock()
	if freePorts.next == 0 {
		freePorts.next = low + rand.IntN(high-low)
	}
	for range high - low {
		port := freePorts.next
		if freePorts.next++; freePorts.next == high {
			freePorts.next = low
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue // taken: try the next one
		}
		addr := ln.Addr().String()
		ln.Close()
		return addr
	}
	t.Fatalf("no free loopback port from %d to %d", low, high-1)
	return ""
}

// freePorts is the next port FreeAddr tries.
var freePorts struct {
	sync.Mutex
	next int
}

// Process is a running step program.
type Process struct {
	t    testing.TB
	cmd  *exec.Cmd
	Addr string // where it was told to listen

	mu    sync.Mutex
	lines []Line
	grew  chan struct{} // closed and replaced whenever a line arrives

	exited chan struct{} // closed when the process has exited
	exit   Exit
}

// Exit is how a process ended.
type Exit struct {
	Code   int            // exit code; -1 when a signal killed it
	Signal syscall.Signal // the signal that killed it, or 0
	At     time.Time
}

func (e Exit) String() string {
	if e.Signal != 0 {
		return "killed by " + signalName(e.Signal)
	}
	return fmt.Sprintf("exit status %d", e.Code)
}

// Start runs the step on a free loopback port with the given extra flags,
// and returns once it has logged "listening" and its port accepts
// connections.
func Start(t testing.TB, args ...string) *Process {
	t.Helper()
	p := StartAt(t, FreeAddr(t), args...)
	p.WaitListening()
	return p
}

// StartAt runs the step listening on addr and returns at once.
func StartAt(t testing.TB, addr string, args ...string) *Process {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-addr", addr}, args...)...)
	// GORACE: a program built with -race sleeps a second at exit, waiting
	// for late race reports, unless told not to; that second would be
	// measured as part of every shutdown.
	cmd.Env = append(os.Environ(), runProgramEnv+"=1", "GORACE=atexit_sleep_ms=0 "+os.Getenv("GORACE"))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &Process{t: t, cmd: cmd, Addr: addr, grew: make(chan struct{}), exited: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var readers sync.WaitGroup
	readers.Add(2)
	go p.read(stderr, &readers)
	go p.read(stdout, &readers)
	go func() {
		// Wait must not run before the pipes are drained, or it closes them under the readers.
		readers.Wait()
		cmd.Wait()
		p.exit = exitOf(cmd.ProcessState)
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", Step(t), p.Output())
		}
	})
	return p
}

func exitOf(ps *os.ProcessState) Exit {
	e := Exit{Code: ps.ExitCode(), At: time.Now()}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		e.Signal = ws.Signal()
	}
	return e
}

func (p *Process) read(r io.Reader, done *sync.WaitGroup) {
	defer done.Done()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := ParseLine(sc.Text())
		line.At = time.Now()
		p.mu.Lock()
		p.lines = append(p.lines, line)
		close(p.grew)
		p.grew = make(chan struct{})
		p.mu.Unlock()
	}
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

// Lines returns a copy of the lines written so far.
func (p *Process) Lines() []Line {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Line(nil), p.lines...)
}

// Logged returns the first line with the given msg, if there is one yet.
func (p *Process) Logged(msg string) (Line, bool) {
	for _, l := range p.Lines() {
		if l.Msg() == msg {
			return l, true
		}
	}
	return Line{}, false
}

// AwaitLog waits up to timeout for a line with the given msg. It reports
// false if the process exits or the time runs out first.
func (p *Process) AwaitLog(msg string, timeout time.Duration) (Line, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		grew := p.grew
		p.mu.Unlock()
		if l, ok := p.Logged(msg); ok {
			return l, true
		}
		select {
		case <-grew:
		case <-p.exited:
			// The readers finished before exited closed: every line is in.
			l, ok := p.Logged(msg)
			return l, ok
		case <-deadline.C:
			return Line{}, false
		}
	}
}

// WaitLog waits for a line with the given msg and fails the test if none
// comes within EventTimeout.
func (p *Process) WaitLog(msg string) Line {
	p.t.Helper()
	l, ok := p.AwaitLog(msg, EventTimeout)
	if !ok {
		p.t.Fatalf("%s never logged msg=%q (%s)", Step(p.t), msg, p.state())
	}
	return l
}

func (p *Process) state() string {
	select {
	case <-p.exited:
		return p.exit.String()
	default:
		return "still running"
	}
}

// WaitListening waits for the "listening" line and then for the port to
// accept a connection: some steps log before ListenAndServe has bound it.
func (p *Process) WaitListening() {
	p.t.Helper()
	p.WaitLog("listening")
	deadline := time.Now().Add(EventTimeout)
	for {
		c, err := net.Dial("tcp", p.Addr)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) || p.HasExited() {
			p.t.Fatalf("%s logged listening but %s does not answer: %v (%s)", Step(p.t), p.Addr, err, p.state())
		}
		time.Sleep(5 * time.Millisecond) // poll interval while waiting for the port
	}
}

// Signal sends sig to the process and returns when it was sent. The time
// is read before the send: read after, it could come late if this
// goroutine were descheduled, and a program that waited its full deadline
// would seem to have cut it short.
func (p *Process) Signal(sig os.Signal) time.Time {
	p.t.Helper()
	at := time.Now()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v: %v", sig, err)
	}
	return at
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// HasExited reports whether the process has exited.
func (p *Process) HasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// AwaitExit waits up to timeout for the process to exit.
func (p *Process) AwaitExit(timeout time.Duration) (Exit, bool) {
	select {
	case <-p.exited:
		return p.exit, true
	case <-time.After(timeout):
		return Exit{}, false
	}
}

// WaitExit waits for the process to exit and fails the test if it does not
// within EventTimeout.
func (p *Process) WaitExit() Exit {
	p.t.Helper()
	e, ok := p.AwaitExit(EventTimeout)
	if !ok {
		p.t.Fatalf("%s did not exit within %s", Step(p.t), EventTimeout)
	}
	return e
}

// ErrNotLogged is returned by [Process.LoggedBefore] when a line is missing.
var ErrNotLogged = errors.New("not logged")

// LoggedBefore reports whether the first line with msg a came before the
// first line with msg b. Both must have been logged.
func (p *Process) LoggedBefore(a, b string) (bool, error) {
	ia, ib := -1, -1
	for i, l := range p.Lines() {
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

func signalName(s syscall.Signal) string {
	switch s {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGKILL:
		return "SIGKILL"
	}
	return s.String()
}
