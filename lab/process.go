package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gracefulgo/walkthrough/internal/slogline"
)

// startTimeout bounds the wait for a step to log "listening" and answer on
// its port, and every other wait for something a step should do soon.
const startTimeout = 5 * time.Second

// process is a step's program running under the lab.
type process struct {
	cmd  *exec.Cmd
	addr string

	mu     sync.Mutex
	counts map[string]int       // log lines seen, by msg
	first  map[string]time.Time // when the first line with each msg was read
	tail   []string             // the last lines, for error messages
	grew   chan struct{}        // closed and replaced on every line

	exited     chan struct{} // closed once the process has exited
	exitAt     time.Time
	exitStatus string
}

// start runs the program at bin, in dir, listening on a free loopback port,
// and returns once it has logged "listening" and its port accepts
// connections.
func start(bin, dir string, args ...string) (*process, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	// The program writes into a pipe whose writing end is an *os.File, so
	// Wait returns the moment the process exits: it does not also wait for
	// a copying goroutine, and the exit time is the exit time.
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, append([]string{"-addr", addr}, args...)...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	w.Close()
	p := &process{cmd: cmd, addr: addr, counts: map[string]int{}, first: map[string]time.Time{}, grew: make(chan struct{}), exited: make(chan struct{})}
	go p.read(r)
	go func() {
		err := cmd.Wait()
		p.exitAt = time.Now()
		p.exitStatus = exitStatus(cmd.ProcessState, err)
		close(p.exited)
	}()
	if err := p.awaitListening(); err != nil {
		p.kill()
		return nil, err
	}
	return p, nil
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func exitStatus(ps *os.ProcessState, err error) string {
	if ps == nil {
		return "unknown: " + err.Error()
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "killed by " + signalName(ws.Signal())
	}
	return fmt.Sprint(ps.ExitCode())
}

func signalName(s syscall.Signal) string {
	switch s {
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGKILL:
		return "SIGKILL"
	case syscall.SIGINT:
		return "SIGINT"
	}
	return s.String()
}

func (p *process) read(r *os.File) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := slogline.Parse(sc.Text())
		p.mu.Lock()
		if p.counts[line.Msg()] == 0 {
			p.first[line.Msg()] = time.Now()
		}
		p.counts[line.Msg()]++
		p.tail = append(p.tail, line.Raw)
		if len(p.tail) > 5 {
			p.tail = p.tail[1:]
		}
		close(p.grew)
		p.grew = make(chan struct{})
		p.mu.Unlock()
	}
}

// loggedOrExited returns a channel that is closed once the program has
// logged a line with the given msg, or has exited.
func (p *process) loggedOrExited(msg string) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		if p.awaitLog(msg, 1) == nil || p.hasExited() {
			close(ch)
		}
	}()
	return ch
}

// awaitLog waits until the program has logged n lines with the given msg.
func (p *process) awaitLog(msg string, n int) error {
	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		got, grew := p.counts[msg], p.grew
		p.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-grew:
		case <-p.exited:
			return fmt.Errorf("exited (%s) having logged msg=%q %d of %d times; its last lines: %s", p.exitStatus, msg, got, n, p.lastLines())
		case <-deadline.C:
			return fmt.Errorf("logged msg=%q %d times in %s, not %d", msg, got, startTimeout, n)
		}
	}
}

func (p *process) lastLines() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.tail, " / ")
}

// awaitListening waits for the "listening" line, then for the port to
// accept a connection: a step may log before it has bound the port.
func (p *process) awaitListening() error {
	if err := p.awaitLog("listening", 1); err != nil {
		return err
	}
	deadline := time.Now().Add(startTimeout)
	for {
		c, err := net.Dial("tcp", p.addr)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) || p.hasExited() {
			return fmt.Errorf("logged listening but %s does not answer: %v", p.addr, err)
		}
		time.Sleep(5 * time.Millisecond) // poll interval while waiting for the port
	}
}

func (p *process) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// signal sends SIGTERM and returns when it was sent.
func (p *process) signal() (time.Time, error) {
	at := time.Now()
	return at, p.cmd.Process.Signal(syscall.SIGTERM)
}

// awaitExit waits up to patience for the process to exit, and kills it if
// it has not.
func (p *process) awaitExit(patience time.Duration) error {
	select {
	case <-p.exited:
		return nil
	case <-time.After(patience):
		p.kill()
		return fmt.Errorf("still running %s after the signal: killed by the lab", patience)
	}
}

func (p *process) kill() {
	if !p.hasExited() {
		p.cmd.Process.Kill()
	}
	<-p.exited
}

// probeListener dials again and again, from the moment it is called, until
// a dial fails, or stop is closed. It returns when the last dial that
// connected began (zero if none did) and when the first failed dial
// returned: the listener closed in between.
//
// The probes are a millisecond apart until hurry is closed, then follow
// each other with no pause. The lab closes hurry when the step logs
// "shutdown started", just before it closes its listener, or when the
// process has exited (step 01 logs nothing): probing with no
// pause from the signal on would take the CPU of a 2-core machine from the
// very step it times, and delay its reaction to the signal.
//
// A dial that times out is neither: once in a few dozen runs a probe's dial
// took a second to be refused, as if its SYN had been lost as the listener
// closed and the kernel had sent it again a second later. So a dial gives
// up after probeDialTimeout, and the probe dials again.
func probeListener(dial func() error, hurry, stop <-chan struct{}) (lastOpen, firstRefused time.Time) {
	for {
		at := time.Now()
		err := dial()
		switch {
		case err == nil:
			lastOpen = at
		case !isTimeout(err):
			return lastOpen, time.Now()
		}
		select {
		case <-stop:
			return lastOpen, time.Time{}
		case <-hurry:
		case <-time.After(probePause):
		}
	}
}

// probePause is the pause between two probes until the step says it is
// shutting down.
const probePause = time.Millisecond

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// probeDialTimeout bounds one probe's dial. On loopback a dial is answered
// in microseconds, in the kernel, whatever the program is doing.
const probeDialTimeout = 10 * time.Millisecond

// dialer returns a probe for addr: a dial that connects, then closes at once.
func dialer(addr string) func() error {
	return func() error {
		c, err := net.DialTimeout("tcp", addr, probeDialTimeout)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

// firstLogged returns when the first line with msg was read, or zero.
func (p *process) firstLogged(msg string) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.first[msg]
}
