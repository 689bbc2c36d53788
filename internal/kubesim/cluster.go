package kubesim

import (
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/gracefulgo/walkthrough/internal/proc"
)

// Config is what a [Cluster] runs and how its deletions are timed.
type Config struct {
	// Command returns the command that runs one replica; the cluster adds
	// -addr with a free loopback port (see [proc.Start]).
	Command func() *exec.Cmd
	// Propagation is how long a change of an endpoint (terminating at
	// SIGTERM, not serving when the readiness probe fails, gone at exit)
	// takes to reach the proxy. It is 1s when zero.
	Propagation time.Duration
	// GracePeriod is terminationGracePeriodSeconds: how long after SIGTERM
	// a replica that has not exited gets SIGKILL. It is 30s when zero.
	GracePeriod time.Duration
	// ReadinessPath is what the readiness probe asks; /readyz when empty.
	ReadinessPath string
	// ReadinessPeriod is how often the kubelet's readiness probe asks a
	// terminating replica (it goes on probing readiness after SIGTERM, and
	// stops only liveness and startup probes); 50ms when zero.
	ReadinessPeriod time.Duration
	// ReadinessFailureThreshold is how many failures in a row turn the
	// endpoint's serving condition off; 1 when zero.
	ReadinessFailureThreshold int
}

// Cluster is a Deployment's replicas behind a Service ([Proxy]).
type Cluster struct {
	Config
	Proxy *Proxy

	mu       sync.Mutex
	replicas []*Replica
	events   []Event
	deleting sync.WaitGroup // until each deleted replica has exited
	settling sync.WaitGroup // until its endpoint's last changes have reached the proxy
	seq      int
}

// Replica is one pod: a running program and its endpoint.
type Replica struct {
	Name string // pod-1, pod-2, ...
	*proc.Process
	Killed bool // SIGKILLed at the grace period
}

// Event is one moment of the rollout's timeline.
type Event struct {
	At      time.Time
	Replica string
	What    string // one of the Event* constants
}

// What happened to a replica, in the order it happens.
const (
	EventStarted    = "started"          // the process was started
	EventReady      = "ready"            // /readyz answered 200 and the endpoint was added
	EventSIGTERM    = "SIGTERM"          // deleted: the signal was sent, and the endpoint turned terminating
	EventRemoved    = "endpoint removed" // the endpoint's terminating (so not ready) reached the proxy
	EventNotServing = "not serving"      // the readiness probe failed, and serving=false reached the proxy
	EventSIGKILL    = "SIGKILL"          // the grace period ran out
	EventExited     = "exited"
	EventGone       = "endpoint gone" // the process exited, and its endpoint's removal reached the proxy
)

// probeInterval is how often /readyz is polled while a replica starts.
const probeInterval = 5 * time.Millisecond

// NewCluster starts a proxy and n replicas, each added to the endpoints
// once it is ready.
func NewCluster(config Config, n int) (*Cluster, error) {
	proxy, err := NewProxy()
	if err != nil {
		return nil, err
	}
	if config.Propagation == 0 {
		config.Propagation = time.Second
	}
	if config.GracePeriod == 0 {
		config.GracePeriod = 30 * time.Second
	}
	if config.ReadinessPath == "" {
		config.ReadinessPath = "/readyz"
	}
	if config.ReadinessPeriod == 0 {
		config.ReadinessPeriod = 50 * time.Millisecond
	}
	if config.ReadinessFailureThreshold == 0 {
		config.ReadinessFailureThreshold = 1
	}
	cl := &Cluster{Config: config, Proxy: proxy}
	for range n {
		if _, err := cl.startReplica(); err != nil {
			cl.Close()
			return nil, err
		}
	}
	return cl, nil
}

func (c *Cluster) record(r *Replica, what string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, Event{At: time.Now(), Replica: r.Name, What: what})
}

// Events returns the timeline so far, in the order of the times.
func (c *Cluster) Events() []Event {
	c.mu.Lock()
	events := slices.Clone(c.events)
	c.mu.Unlock()
	slices.SortStableFunc(events, func(a, b Event) int { return a.At.Compare(b.At) })
	return events
}

// Replicas returns every replica started so far, deleted ones included.
func (c *Cluster) Replicas() []*Replica {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Replica(nil), c.replicas...)
}

// startReplica starts a replica, waits until its readiness path answers
// 200, as the kubelet's readiness probe would, and adds it to the endpoints.
func (c *Cluster) startReplica() (*Replica, error) {
	addr, err := proc.FreeAddr()
	if err != nil {
		return nil, err
	}
	p, err := proc.Start(addr, c.Command())
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.seq++
	r := &Replica{Name: fmt.Sprintf("pod-%d", c.seq), Process: p}
	c.replicas = append(c.replicas, r)
	c.mu.Unlock()
	c.record(r, EventStarted)
	if err := awaitReady(r, c.ReadinessPath); err != nil {
		return nil, err
	}
	c.Proxy.Add(addr)
	c.record(r, EventReady)
	return r, nil
}

// awaitReady polls path until it answers 200. Each probe is a connection
// of its own, as the kubelet's are.
func awaitReady(r *Replica, path string) error {
	client := &http.Client{
		Transport: &http.Transport{DisableKeepAlives: true},
		Timeout:   time.Second, // timeoutSeconds: 1, the kubelet's default
	}
	deadline := time.Now().Add(proc.EventTimeout)
	for {
		resp, err := client.Get("http://" + r.Addr + path)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if r.HasExited() || time.Now().After(deadline) {
			return fmt.Errorf("%s never became ready: last probe %v, %v; its output:\n%s", r.Name, resp, err, r.Output())
		}
		time.Sleep(probeInterval)
	}
}

// RollingUpdate replaces every replica running now, one at a time, as a
// Deployment with maxSurge 1 and maxUnavailable 0 does: start a new one,
// wait for it to be ready, then delete an old one and go on at once, not
// waiting for the old one to exit (a terminating pod counts for nothing).
// It returns once every old replica has exited.
func (c *Cluster) RollingUpdate() error {
	old := c.live()
	var errs []error
	for _, r := range old {
		if _, err := c.startReplica(); err != nil {
			errs = append(errs, err)
			break
		}
		c.Delete(r)
	}
	c.deleting.Wait()
	return errors.Join(errs...)
}

// live is the replicas not deleted.
func (c *Cluster) live() []*Replica {
	c.mu.Lock()
	defer c.mu.Unlock()
	var live []*Replica
	for _, r := range c.replicas {
		deleted := false
		for _, e := range c.events {
			if e.Replica == r.Name && e.What == EventSIGTERM {
				deleted = true
			}
		}
		if !deleted {
			live = append(live, r)
		}
	}
	return live
}

// Delete deletes a replica as the API server, the EndpointSlice controller
// and the kubelet do: SIGTERM now, and the endpoint, which stays in its
// slice, turns terminating (so not ready), which reaches the proxy
// Propagation later; the kubelet goes on probing readiness, and when the
// probe has failed ReadinessFailureThreshold times in a row the endpoint
// turns not serving, which reaches the proxy Propagation after that;
// SIGKILL at GracePeriod if the process has not exited by then; once it
// has exited, the endpoint is removed, Propagation later again. It returns
// at once; RollingUpdate waits for the exit (and the terminating's
// arrival), AwaitDeleted and Close for the endpoint's last changes too.
func (c *Cluster) Delete(r *Replica) {
	c.deleting.Add(2)
	c.settling.Add(2)
	sent, err := r.Signal(syscall.SIGTERM)
	c.mu.Lock()
	c.events = append(c.events, Event{At: sent, Replica: r.Name, What: EventSIGTERM})
	c.mu.Unlock()
	go func() {
		defer c.deleting.Done()
		time.Sleep(time.Until(sent.Add(c.Propagation))) // the simulated propagation itself
		c.Proxy.Terminating(r.Addr)
		c.record(r, EventRemoved)
	}()
	go func() {
		defer c.settling.Done()
		failed, ok := c.awaitNotReady(r)
		if !ok {
			return // it exited first
		}
		time.Sleep(time.Until(failed.Add(c.Propagation)))
		c.Proxy.Serving(r.Addr, false)
		c.record(r, EventNotServing)
	}()
	exited := make(chan struct{})
	go func() {
		defer c.settling.Done()
		<-exited
		exit, _ := r.Exited()
		time.Sleep(time.Until(exit.At.Add(c.Propagation)))
		c.Proxy.Remove(r.Addr)
		c.record(r, EventGone)
	}()
	go func() {
		defer c.deleting.Done()
		defer close(exited)
		if err == nil {
			exit, ok := r.AwaitExit(time.Until(sent.Add(c.GracePeriod)))
			if !ok {
				c.mu.Lock()
				r.Killed = true
				c.mu.Unlock()
				c.record(r, EventSIGKILL)
				r.Kill()
				exit, _ = r.Exited()
			}
			c.mu.Lock()
			c.events = append(c.events, Event{At: exit.At, Replica: r.Name, What: EventExited})
			c.mu.Unlock()
		}
	}()
}

// awaitNotReady probes a terminating replica's readiness path every
// ReadinessPeriod, each probe a connection of its own, until it has failed
// ReadinessFailureThreshold times in a row, and returns when the last
// failure was seen; ok is false if the process exited first.
func (c *Cluster) awaitNotReady(r *Replica) (failed time.Time, ok bool) {
	client := &http.Client{
		Transport: &http.Transport{DisableKeepAlives: true},
		Timeout:   time.Second, // timeoutSeconds: 1, the kubelet's default
	}
	tick := time.NewTicker(c.ReadinessPeriod)
	defer tick.Stop()
	failures := 0
	for {
		select {
		case <-r.Done():
			return time.Time{}, false
		case <-tick.C:
		}
		resp, err := client.Get("http://" + r.Addr + c.ReadinessPath)
		if err == nil {
			resp.Body.Close()
		}
		if err != nil || resp.StatusCode < 200 || resp.StatusCode >= 400 {
			failures++
		} else {
			failures = 0
		}
		if failures == c.ReadinessFailureThreshold {
			return time.Now(), true
		}
	}
}

// AwaitDeleted waits until every deletion begun so far has ended: the
// replica exited and its endpoint is gone from the proxy.
func (c *Cluster) AwaitDeleted() {
	c.deleting.Wait()
	c.settling.Wait()
}

// Close kills every replica and stops the proxy.
func (c *Cluster) Close() {
	for _, r := range c.Replicas() {
		r.Kill()
	}
	c.AwaitDeleted()
	c.Proxy.Close()
}
