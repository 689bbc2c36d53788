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
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"testing"
	"time"

	"github.com/gracefulgo/walkthrough/internal/proc"
)

// runProgramEnv tells a re-executed test binary to be the program.
const runProgramEnv = "DEMOTEST_RUN_PROGRAM"

// EventTimeout bounds every wait for something the program should do soon:
// a log line, an exit, a port answering; see [proc.EventTimeout].
const EventTimeout = proc.EventTimeout

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
	if err := flag.Set("test.parallel", "16"); err != nil {
		panic(err) // the testing package no longer has -test.parallel
	}
	os.Exit(m.Run())
}

// builtProgram, when set by [MainBuilt], is the step's binary: Command runs
// it instead of the test binary.
var builtProgram string

// MainBuilt is the TestMain of a test that lives in a module of its own,
// beside its step, so that a large module only it needs (the browser
// test's chromedp) is not in the repository's go.mod: it cannot call the
// step's main, so it builds the step's package pkg (a path such as
// ./11-streaming, in the module whose folder is root) with go build, and
// the processes it starts run that binary. Building in the step's own
// module takes the step's dependencies from its go.sum, as make run does.
func MainBuilt(m *testing.M, root, pkg string) {
	dir, err := os.MkdirTemp("", "demotest-")
	if err != nil {
		panic(err)
	}
	builtProgram = filepath.Join(dir, path.Base(pkg))
	build := exec.Command("go", "build", "-o", builtProgram, pkg)
	build.Dir = root
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	code := 1
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "go build %s (in %s): %v\n", pkg, root, err)
	} else {
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
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

// FreeAddr returns a loopback address whose port was free a moment ago,
// below the ephemeral range; see [proc.FreeAddr].
func FreeAddr(t testing.TB) string {
	t.Helper()
	addr, err := proc.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// Process is a running step program. Its lines, its exit and the waits for
// them come from [proc.Process]; the methods here fail the test instead of
// returning an error.
type Process struct {
	*proc.Process
	t testing.TB
}

// Exit is how a process ended.
type Exit = proc.Exit

// ErrNotLogged is returned by [Process.LoggedBefore] when a line is missing.
var ErrNotLogged = proc.ErrNotLogged

// Start runs the step on a free loopback port with the given extra flags,
// and returns once it has logged "listening" and its port accepts
// connections.
func Start(t testing.TB, args ...string) *Process {
	t.Helper()
	p := StartAt(t, FreeAddr(t), args...)
	p.WaitListening()
	return p
}

// Command returns a command that runs the step's program (this test
// binary, told to be the program) with the given flags, for a caller that
// starts it itself: [proc.Start], a simulated cluster.
func Command(args ...string) *exec.Cmd {
	if builtProgram != "" {
		return exec.Command(builtProgram, args...)
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), runProgramEnv+"=1")
	return cmd
}

// StartAt runs the step listening on addr and returns at once.
func StartAt(t testing.TB, addr string, args ...string) *Process {
	t.Helper()
	started, err := proc.Start(addr, Command(args...))
	if err != nil {
		t.Fatal(err)
	}
	p := &Process{Process: started, t: t}
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("%s output:\n%s", Step(t), p.Output())
		}
	})
	return p
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
	if e, ok := p.Exited(); ok {
		return e.String()
	}
	return "still running"
}

// WaitListening waits for the "listening" line and then for the port to
// accept a connection: some steps log before ListenAndServe has bound it.
func (p *Process) WaitListening() {
	p.t.Helper()
	p.WaitLog("listening")
	if err := p.AwaitAnswer(EventTimeout); err != nil {
		p.t.Fatalf("%s logged listening but %v (%s)", Step(p.t), err, p.state())
	}
}

// Signal sends sig to the process and returns when it was sent (the time
// is read before the send; see [proc.Process.Signal]).
func (p *Process) Signal(sig os.Signal) time.Time {
	p.t.Helper()
	at, err := p.Process.Signal(sig)
	if err != nil {
		p.t.Fatalf("signal %v: %v", sig, err)
	}
	return at
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
