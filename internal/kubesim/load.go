package kubesim

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/gracefulgo/walkthrough/internal/noretry"
)

// Kind is how a failed request failed: the kinds of the repository's one
// load client, internal/noretry, so that they mean the same here as in the
// lab and the demo tests.
type Kind = noretry.Kind

// The kinds of failure, as the client saw them.
const (
	Refused = noretry.Refused // the connection was refused
	Reset   = noretry.Reset   // the connection was reset (or written to after a reset)
	EOF     = noretry.EOF     // the connection ended before the whole response
	Status  = noretry.Status  // a response other than 200
	Other   = noretry.Other   // anything else (a timeout, say)
)

// Kinds is every kind, in the order reports show them.
var Kinds = noretry.Failures

// Failure is one request that did not end in a 200.
type Failure struct {
	At     time.Time
	Kind   Kind
	Reused bool   // on a kept-alive connection that had served a request before
	Err    string // the error or the status
}

// Result is what a load saw.
type Result struct {
	OK       int
	Failures []Failure
	// Answered is, for each pid that answered a 200, when it last did.
	Answered map[int]time.Time
}

// Count is how many failures were of kind k.
func (r Result) Count(k Kind) int {
	n := 0
	for _, f := range r.Failures {
		if f.Kind == k {
			n++
		}
	}
	return n
}

// String sums the result up: "1234 ok, 0 failed" or "1200 ok, 3 failed (refused 2, EOF 1)".
func (r Result) String() string {
	s := fmt.Sprintf("%d ok, %d failed", r.OK, len(r.Failures))
	sep := " ("
	for _, k := range Kinds {
		if n := r.Count(k); n > 0 {
			s += fmt.Sprintf("%s%s %d", sep, k, n)
			sep = ", "
		}
	}
	if sep == ", " {
		s += ")"
	}
	return s
}

// LoadConfig says what the clients of a [Load] do.
type LoadConfig struct {
	Clients int
	Path    string        // what each request GETs
	Pause   time.Duration // each client's think time between requests
	// PerConn is how many requests a client sends on one connection
	// before it closes it and opens another (0: no limit). Real traffic
	// keeps opening connections (new clients, pools that recycle theirs);
	// without that, every client would stay on the pod it first reached.
	PerConn int
}

// Load is clients (internal/noretry's) that each keep an HTTP/1.1
// connection alive and send GET requests on it one after the other. They
// never retry: a request that fails is counted and the client goes on with
// the next one, on a new connection. Like any decent connection pool they
// do not send on a connection the server has visibly closed (Peek: they
// check before each request, as Go's Transport does with its background
// read), and they open a new connection after a response with
// Connection: close.
type Load struct {
	proxy *Proxy
	LoadConfig

	stop chan struct{}
	wg   sync.WaitGroup

	mu     sync.Mutex
	result Result
}

// StartLoad starts the clients, connecting to the proxy.
func StartLoad(proxy *Proxy, config LoadConfig) *Load {
	l := &Load{proxy: proxy, LoadConfig: config, stop: make(chan struct{}),
		result: Result{Answered: map[int]time.Time{}}}
	for range config.Clients {
		l.wg.Add(1)
		go l.client()
	}
	return l
}

// Stop stops the clients, lets each finish the request it is sending, and
// returns what they saw, failures in the order they happened.
func (l *Load) Stop() Result {
	close(l.stop)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	slices.SortStableFunc(l.result.Failures, func(a, b Failure) int { return a.At.Compare(b.At) })
	return l.result
}

// Snapshot returns how many requests succeeded and failed so far.
func (l *Load) Snapshot() (ok, failed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.result.OK, len(l.result.Failures)
}

func (l *Load) client() {
	defer l.wg.Done()
	c := &noretry.Client{Addr: l.proxy.Addr(), PerConn: l.PerConn, Peek: true, Timeout: requestTimeout}
	defer c.Close()
	for {
		select {
		case <-l.stop:
			return
		default:
		}
		r := c.Get(l.Path)
		switch {
		case r.OK():
			l.mu.Lock()
			l.result.OK++
			if r.Pid != 0 {
				l.result.Answered[r.Pid] = r.End
			}
			l.mu.Unlock()
		case r.Kind == Status:
			l.fail(Failure{At: r.End, Kind: Status, Reused: r.Reused, Err: fmt.Sprint(r.Status)})
		default:
			kind := r.Kind
			// The proxy resets a connection its endpoint refused: when the
			// reset arrives before the dial has returned, the dial fails
			// with it; after, the request does. Either way the endpoint
			// never saw the request: a refusal.
			if r.Local != "" && l.proxy.Refused(r.Local) {
				kind = Refused
			}
			l.fail(Failure{At: r.End, Kind: kind, Reused: r.Reused, Err: r.Err.Error()})
		}
		if l.Pause > 0 {
			time.Sleep(l.Pause) // the client's think time between requests
		}
	}
}

func (l *Load) fail(f Failure) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.result.Failures = append(l.result.Failures, f)
}

// requestTimeout bounds one request, so that a lost one cannot hang the load.
const requestTimeout = 10 * time.Second

// AwaitOK waits up to timeout until n requests have succeeded, and reports
// whether they had.
func (l *Load) AwaitOK(n int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if ok, _ := l.Snapshot(); ok >= n {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond) // poll interval while the load warms up
	}
}
