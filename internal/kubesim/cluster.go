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
	// Propagation is how long after SIGTERM the endpoint removal reaches
	// the proxy. It is 1s when zero.
	Propagation time.Duration
	// GracePeriod is terminationGracePeriodSeconds: how long after SIGTERM
	// a replica that has not exited gets SIGKILL. It is 30s when zero.
	GracePeriod time.Duration
	// ReadinessPath is what the readiness probe asks; /readyz when empty.
	ReadinessPath string
}

// Cluster is a Deployment's replicas behind a Service ([Proxy]).
type Cluster struct {
	Config
	Proxy *Proxy

	mu       sync.Mutex
	replicas []*Replica
	events   []Event
	deleting sync.WaitGroup
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
	EventStarted = "started"          // the process was started
	EventReady   = "ready"            // /readyz answered 200 and the endpoint was added
	EventSIGTERM = "SIGTERM"          // deleted: the signal was sent
	EventRemoved = "endpoint removed" // the removal reached the proxy
	EventSIGKILL = "SIGKILL"          // the grace period ran out
	EventExited  = "exited"
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

// Delete deletes a replica as the API server and the kubelet do: SIGTERM
// now; the endpoint removal reaches the proxy Propagation later; SIGKILL
// at GracePeriod if the process has not exited by then. It returns at
// once; RollingUpdate and Close wait for the deletion to end.
func (c *Cluster) Delete(r *Replica) {
	c.deleting.Add(2)
	sent, err := r.Signal(syscall.SIGTERM)
	c.mu.Lock()
	c.events = append(c.events, Event{At: sent, Replica: r.Name, What: EventSIGTERM})
	c.mu.Unlock()
	go func() {
		defer c.deleting.Done()
		time.Sleep(time.Until(sent.Add(c.Propagation))) // the simulated propagation itself
		c.Proxy.Remove(r.Addr)
		c.record(r, EventRemoved)
	}()
	go func() {
		defer c.deleting.Done()
		if err != nil {
			return // it had exited already
		}
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
	}()
}

// Close kills every replica and stops the proxy.
func (c *Cluster) Close() {
	for _, r := range c.Replicas() {
		r.Kill()
	}
	c.deleting.Wait()
	c.Proxy.Close()
}
