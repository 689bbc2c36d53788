package signals

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gracefulgo/walkthrough/internal/proc"
	"github.com/gracefulgo/walkthrough/internal/slogline"
)

// eventTimeout bounds every wait; see proc.EventTimeout.
const eventTimeout = proc.EventTimeout

// A wrapper is the process started in front of the program: make, go run,
// a shell, unshare. It runs in a process group of its own, as a shell runs
// a terminal's foreground job, so that a test can signal the group as the
// terminal does on Ctrl+C. Its output, the program's too (every wrapper
// here passes its stdout and stderr on), is read as lines.
//
// internal/proc's Process counts a process as exited once its output has
// ended. Here the program often outlives its wrapper and holds the output
// open, so a wrapper's exit and the output's end are two events.
type wrapper struct {
	t    *testing.T
	cmd  *exec.Cmd
	addr string // where step 04 was told to listen

	mu    sync.Mutex
	lines []slogline.Line
	grew  chan struct{} // closed and replaced whenever a line arrives

	outputEnded chan struct{} // closed once no process holds the output open
	exited      chan struct{} // closed once the wrapper has exited
	state       *os.ProcessState

	alsoKill []int // pids to SIGKILL at the end of the test: inits, orphans
}

// startWrapper starts argv in a process group of its own, in dir ("" for
// this folder), with this process's environment. At the end of the test every process it left is killed,
// and the test waits until the output has ended, so that nothing it
// started outlives it.
func startWrapper(t *testing.T, dir string, argv ...string) *wrapper {
	t.Helper()
	return startWrapperEnv(t, dir, nil, argv...)
}

// startWrapperEnv is startWrapper with the environment env (nil: this
// process's).
func startWrapperEnv(t *testing.T, dir string, env []string, argv ...string) *wrapper {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		t.Fatal(err)
	}
	w.Close()
	p := &wrapper{t: t, cmd: cmd, grew: make(chan struct{}), outputEnded: make(chan struct{}), exited: make(chan struct{})}
	go p.read(r)
	go func() {
		_ = cmd.Wait() // a non-zero exit is an error; ProcessState says how it ended
		p.state = cmd.ProcessState
		close(p.exited)
	}()
	t.Cleanup(func() {
		// Whatever has exited already is no error: ESRCH is ignored.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		for _, pid := range p.alsoKill {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		select {
		case <-p.outputEnded:
		case <-time.After(eventTimeout):
			t.Errorf("a process started by %s still holds its output open after SIGKILL:\n%s", argv[0], p.output())
		}
		<-p.exited
		if t.Failed() {
			t.Logf("what %s and the program wrote:\n%s", filepath.Base(argv[0]), p.output())
		}
	})
	return p
}

func (p *wrapper) read(r io.ReadCloser) {
	defer close(p.outputEnded)
	defer r.Close()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := slogline.Parse(sc.Text())
		p.mu.Lock()
		p.lines = append(p.lines, line)
		close(p.grew)
		p.grew = make(chan struct{})
		p.mu.Unlock()
	}
}

func (p *wrapper) watch() ([]slogline.Line, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lines[:len(p.lines):len(p.lines)], p.grew
}

// output is every line written so far.
func (p *wrapper) output() string {
	lines, _ := p.watch()
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.Raw + "\n")
	}
	return b.String()
}

// logged returns the first line with the given msg, if there is one yet.
func (p *wrapper) logged(msg string) (slogline.Line, bool) {
	lines, _ := p.watch()
	for _, l := range lines {
		if l.Msg() == msg {
			return l, true
		}
	}
	return slogline.Line{}, false
}

// awaitLine waits for the first line that match accepts, and fails the test
// if the output ends or the time runs out first.
func (p *wrapper) awaitLine(what string, match func(slogline.Line) bool) slogline.Line {
	p.t.Helper()
	deadline := time.After(eventTimeout)
	seen := 0
	for ended := false; ; {
		lines, grew := p.watch()
		for ; seen < len(lines); seen++ {
			if match(lines[seen]) {
				return lines[seen]
			}
		}
		if ended {
			p.t.Fatalf("the output ended without %s", what)
		}
		select {
		case <-grew:
		case <-p.outputEnded:
			ended = true // every line is in: look once more
		case <-deadline:
			p.t.Fatalf("waited %s for %s", eventTimeout, what)
		}
	}
}

// awaitLog waits for a line with the given msg.
func (p *wrapper) awaitLog(msg string) slogline.Line {
	p.t.Helper()
	return p.awaitLine(fmt.Sprintf("a line msg=%q", msg), func(l slogline.Line) bool { return l.Msg() == msg })
}

// awaitListening waits for step 04's "listening" line and returns the pid
// it logged (as the program sees it: 1 as PID 1 of a namespace), then for
// its port to answer.
func (p *wrapper) awaitListening() int {
	p.t.Helper()
	pid, err := strconv.Atoi(p.awaitLog("listening").Attr("pid"))
	if err != nil {
		p.t.Fatalf("the listening line names no pid: %v", err)
	}
	for deadline := time.Now().Add(eventTimeout); ; time.Sleep(5 * time.Millisecond) { // poll interval while the port opens
		if get(p.addr, "/").err == nil {
			return pid
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s does not answer", p.addr)
		}
	}
}

// awaitExit waits for the wrapper to exit and says how it did, as
// "exit status N" or "killed by SIGNAME".
func (p *wrapper) awaitExit() string {
	p.t.Helper()
	select {
	case <-p.exited:
		return exitOf(p.state)
	case <-time.After(eventTimeout):
		p.t.Fatalf("%s has not exited after %s", p.cmd.Args[0], eventTimeout)
		panic("unreachable")
	}
}

// awaitOutputEnd waits until no process holds the output open: the
// wrapper and everything it started have exited.
func (p *wrapper) awaitOutputEnd() {
	p.t.Helper()
	select {
	case <-p.outputEnded:
	case <-time.After(eventTimeout):
		p.t.Fatalf("a process still holds the output open after %s", eventTimeout)
	}
}

func exitOf(ps *os.ProcessState) string {
	if ps == nil {
		return "unknown: Wait returned no status"
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "killed by " + proc.SignalName(ws.Signal())
	}
	return fmt.Sprintf("exit status %d", ps.ExitCode())
}

// signal sends sig to the wrapper's pid, the one ps shows first.
func (p *wrapper) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

// signalGroup sends sig to the wrapper's process group, as a terminal does
// to its foreground job on Ctrl+C.
func (p *wrapper) signalGroup(sig syscall.Signal) {
	p.t.Helper()
	if err := syscall.Kill(-p.cmd.Process.Pid, sig); err != nil {
		p.t.Fatal(err)
	}
}

// alive reports whether pid is a process that has not exited. Where there
// is a /proc (Linux), a zombie, exited but not yet reaped, counts as
// exited; elsewhere (macOS) signal 0 says whether the pid exists.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	state, _, err := procStatus(pid)
	if err != nil {
		_, noProc := os.Stat("/proc/self/stat")
		return noProc != nil // gone in between, where there is a /proc
	}
	return state != "Z"
}

// procStatus reads a process's state (R, S, Z...) and parent from
// /proc/PID/stat.
func procStatus(pid int) (state string, ppid int, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, err
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
	fields := strings.Fields(rest)
	if len(fields) < 2 {
		return "", 0, fmt.Errorf("/proc/%d/stat: %q", pid, b)
	}
	ppid, err = strconv.Atoi(fields[1])
	return fields[0], ppid, err
}

// childOf returns the pid of pid's child, waiting for it to have one.
func childOf(t *testing.T, pid int) int {
	t.Helper()
	for deadline := time.Now().Add(eventTimeout); ; time.Sleep(5 * time.Millisecond) { // poll interval while the child starts
		entries, err := os.ReadDir("/proc")
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			child, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if _, ppid, err := procStatus(child); err == nil && ppid == pid {
				return child
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d has no child after %s", pid, eventTimeout)
		}
	}
}

// response is what a client got.
type response struct {
	status int
	body   string
	err    error
}

func (r response) String() string {
	if r.err != nil {
		return "error: " + r.err.Error()
	}
	return fmt.Sprintf("%d %q", r.status, r.body)
}

// get sends GET path to addr on a connection of its own, as curl does.
func get(addr, path string) response {
	transport := &http.Transport{}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: eventTimeout}
	r, err := client.Get("http://" + addr + path)
	if err != nil {
		return response{err: err}
	}
	defer r.Body.Close()
	body, err := io.ReadAll(r.Body)
	return response{status: r.StatusCode, body: string(body), err: err}
}

// slowRequest sends GET /slow?d=2s in the background and returns once the
// program has logged that it started: the request is then in flight.
func (p *wrapper) slowRequest() <-chan response {
	p.t.Helper()
	answer := make(chan response, 1)
	go func() { answer <- get(p.addr, "/slow?d=2s") }()
	p.awaitLog("slow request started")
	return answer
}

// awaitAnswer waits for the slow request's answer.
func (p *wrapper) awaitAnswer(answer <-chan response) response {
	p.t.Helper()
	select {
	case r := <-answer:
		return r
	case <-time.After(eventTimeout):
		p.t.Fatalf("no answer to /slow after %s", eventTimeout)
		panic("unreachable")
	}
}

// checkDrained fails the test unless the program caught a signal whose
// cause is the one given ("terminated signal received"), answered the slow
// request and finished its shutdown.
func (p *wrapper) checkDrained(cause string, answer <-chan response) {
	p.t.Helper()
	if got := p.awaitLog("shutdown started").Attr("cause"); got != cause {
		p.t.Errorf("the program's shutdown started on %q, want %q", got, cause)
	}
	if r := p.awaitAnswer(answer); r.err != nil || r.status != http.StatusOK {
		p.t.Errorf("the slow request in flight got %s, want its 200: the drain should finish it", r)
	}
	p.awaitLog("shutdown finished")
}

// checkOrphaned fails the test unless the program, whose pid is given,
// outlived the wrapper (which must have exited) without ever being
// signalled: it answers, and never logged "shutdown started". The program
// is killed at the end of the test.
func (p *wrapper) checkOrphaned(pid int) {
	p.t.Helper()
	p.alsoKill = append(p.alsoKill, pid)
	if !alive(pid) {
		p.t.Fatalf("the program (pid %d) is gone too; want it left running", pid)
	}
	if r := get(p.addr, "/"); r.err != nil || r.status != http.StatusOK {
		p.t.Errorf("the program, left behind, answered %s; want 200", r)
	}
	if l, ok := p.logged("shutdown started"); ok {
		p.t.Errorf("the program was signalled (%s); want it never told to stop", l.Raw)
	}
}
