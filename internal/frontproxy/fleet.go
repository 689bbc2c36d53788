package frontproxy

import (
	"fmt"
	"strconv"
	"syscall"
	"time"

	"github.com/gracefulgo/walkthrough/internal/proc"
)

// A Fleet is replicas of the program behind one proxy, and the rolling
// update a deploy does to them: start the new replica, tell the proxy,
// stop the old one. make run-15 and the measurements drive one.
type Fleet struct {
	Proxy *Proxy
	// Start starts a new replica and returns once it answers.
	Start func() (*proc.Process, error)
	// Server is the upstream line nginx gets for a replica's address
	// (nginx only); nil is "server ADDR max_fails=0".
	Server   func(addr string) string
	Replicas []*Replica
	// Log, when set, narrates each move of a roll.
	Log func(format string, args ...any)
	// Count adds up the count= of every replica stopped so far.
	Count int
	// StopFirst rolls as a newcomer's deploy does: SIGTERM the old
	// replica, and only then tell the proxy (nginx: the reload; HAProxy:
	// maintenance once it has exited, its check left to notice).
	StopFirst bool
}

// A Replica is one program behind the proxy, in its HAProxy slot.
type Replica struct {
	*proc.Process
	Slot string // HAProxy's server slot (s1...), "" behind nginx
}

func (f *Fleet) log(format string, args ...any) {
	if f.Log != nil {
		f.Log(format, args...)
	}
}

func (f *Fleet) servers() []string {
	var s []string
	for _, r := range f.Replicas {
		if f.Server != nil {
			s = append(s, f.Server(r.Addr))
		} else {
			s = append(s, "server "+r.Addr+" max_fails=0")
		}
	}
	return s
}

// Slots is how many server slots deploy/haproxy.cfg has.
const Slots = 4

// Add starts a replica and puts it behind the proxy. Behind nginx, the
// whole list goes in with the next Reload: call Add before StartNginx, or
// use Roll.
func (f *Fleet) Add() (*Replica, error) {
	p, err := f.Start()
	if err != nil {
		return nil, err
	}
	r := &Replica{Process: p}
	if f.Proxy != nil && f.Proxy.Name == "haproxy" {
		r.Slot = f.freeSlot()
		if err := f.Proxy.SetServer(r.Slot, r.Addr); err != nil {
			return nil, err
		}
		if _, err := f.Proxy.AwaitState(r.Slot, Running); err != nil {
			return nil, err
		}
	}
	f.Replicas = append(f.Replicas, r)
	return r, nil
}

func (f *Fleet) freeSlot() string {
	for i := 1; i <= Slots; i++ {
		slot := "s" + strconv.Itoa(i)
		used := false
		for _, r := range f.Replicas {
			used = used || r.Slot == slot
		}
		if !used {
			return slot
		}
	}
	return ""
}

// Roll replaces every replica, one at a time: the new one starts and the
// proxy is told; then the old one gets SIGTERM, and its count= is added
// to Count once it has exited.
func (f *Fleet) Roll() error {
	for range len(f.Replicas) {
		old := f.Replicas[0]
		// Added while the old one is still in the list, so that it gets a
		// slot of its own.
		n, err := f.Add()
		if err != nil {
			return err
		}
		f.Replicas = f.Replicas[1:]
		f.log("started %s (pid %d)%s", n.Addr, n.Pid(), slotName(n))
		if f.Proxy.Name == "nginx" && !f.StopFirst {
			took, err := f.Proxy.Reload(f.servers())
			if err != nil {
				return err
			}
			f.log("nginx reloaded without %s: every worker has the new list (%s)", old.Addr, took.Round(time.Millisecond))
		}
		sent, err := old.Signal(syscall.SIGTERM)
		if err != nil {
			return err
		}
		f.log("SIGTERM to %s (pid %d)", old.Addr, old.Pid())
		if f.Proxy.Name == "haproxy" && !f.StopFirst {
			down, err := f.Proxy.AwaitState(old.Slot, Stopped)
			if err != nil {
				return err
			}
			f.log("HAProxy's check marked %s DOWN %s after SIGTERM", old.Slot, down.Sub(sent).Round(time.Millisecond))
		}
		count, err := f.stopped(old)
		if err != nil {
			return err
		}
		f.log("%s exited; count=%d", old.Addr, count)
		if f.Proxy.Name == "nginx" && f.StopFirst {
			if _, err := f.Proxy.Reload(f.servers()); err != nil {
				return err
			}
			f.log("nginx reloaded without %s, after its exit", old.Addr)
		}
		if old.Slot != "" {
			if err := f.Proxy.Maint(old.Slot); err != nil {
				return err
			}
		}
	}
	return nil
}

// stopped waits for a replica that was sent SIGTERM to exit and returns
// its count=.
func (f *Fleet) stopped(r *Replica) (int, error) {
	e, ok := r.AwaitExit(proc.EventTimeout)
	if !ok {
		return 0, fmt.Errorf("%s did not exit within %s", r.Addr, proc.EventTimeout)
	}
	l, ok := r.Logged("shutdown finished")
	if !ok {
		l, ok = r.Logged("shutdown forced")
	}
	if !ok {
		return 0, fmt.Errorf("%s ended (%s) with no count:\n%s", r.Addr, e, r.Output())
	}
	n, err := strconv.Atoi(l.Attr("count"))
	if err != nil {
		return 0, err
	}
	f.Count += n
	return n, nil
}

// Stop stops every replica (SIGTERM, then their exit) and the proxy.
func (f *Fleet) Stop() error {
	var first error
	for _, r := range f.Replicas {
		// Every replica still in the list is serving: Roll removes one
		// from it before its SIGTERM.
		if _, err := r.Signal(syscall.SIGTERM); err != nil && first == nil {
			first = err
		}
		if _, err := f.stopped(r); err != nil && first == nil {
			first = err
		}
	}
	f.Replicas = nil
	if f.Proxy != nil {
		f.Proxy.Stop()
	}
	return first
}

func slotName(r *Replica) string {
	if r.Slot == "" {
		return ""
	}
	return " in HAProxy's slot " + r.Slot
}
