package main

import (
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"time"

	"github.com/gracefulgo/walkthrough/internal/proc"
)

// process is a step's program running under the lab.
type process struct {
	*proc.Process
}

// start runs the program at bin, in dir, listening on a free loopback port,
// and returns once it has logged "listening" and its port accepts
// connections.
func start(bin, dir string, args ...string) (*process, error) {
	addr, err := proc.FreeAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	started, err := proc.Start(addr, cmd)
	if err != nil {
		return nil, err
	}
	p := &process{started}
	if err := p.awaitListening(); err != nil {
		p.Kill()
		return nil, err
	}
	return p, nil
}

// exitStatus is how the process ended, as the lab's tables show it: the
// bare exit code, or what killed it.
func exitStatus(e proc.Exit) string {
	if e.Signal != 0 || e.Err != nil {
		return e.String()
	}
	return fmt.Sprint(e.Code)
}

// loggedOrExited returns a channel that is closed once the program has
// logged a line with the given msg, or has exited.
func (p *process) loggedOrExited(msg string) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		if p.awaitLog(msg, 1) == nil || p.HasExited() {
			close(ch)
		}
	}()
	return ch
}

// awaitLog waits until the program has logged n lines with the given msg.
func (p *process) awaitLog(msg string, n int) error {
	if _, ok := p.AwaitLogN(msg, n, proc.EventTimeout); ok {
		return nil
	}
	got := p.Count(msg)
	if e, exited := p.Exited(); exited {
		return fmt.Errorf("exited (%s) having logged msg=%q %d of %d times; its last lines: %s", exitStatus(e), msg, got, n, p.lastLines())
	}
	return fmt.Errorf("logged msg=%q %d times in %s, not %d", msg, got, proc.EventTimeout, n)
}

// lastLines is the last few lines the program wrote, for error messages.
func (p *process) lastLines() string {
	lines, _ := p.Watch()
	var raw []string
	for _, l := range lines[max(0, len(lines)-5):] {
		raw = append(raw, l.Raw)
	}
	return strings.Join(raw, " / ")
}

// awaitListening waits for the "listening" line, then for the port to
// accept a connection.
func (p *process) awaitListening() error {
	if err := p.awaitLog("listening", 1); err != nil {
		return err
	}
	if err := p.AwaitAnswer(proc.EventTimeout); err != nil {
		return fmt.Errorf("logged listening but %v", err)
	}
	return nil
}

// awaitExit waits up to patience for the process to exit, and kills it if
// it has not.
func (p *process) awaitExit(patience time.Duration) error {
	if _, ok := p.AwaitExit(patience); ok {
		return nil
	}
	p.Kill()
	return fmt.Errorf("still running %s after the signal: killed by the lab", patience)
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
	l, _ := p.Logged(msg)
	return l.At
}
