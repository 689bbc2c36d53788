package demotest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gracefulgo/walkthrough/internal/noretry"
)

// Load is a steady stream of GET / on a step's port from clients that never
// retry (the repository's one load client, internal/noretry): each failure
// is counted, where net/http's Transport would quietly send the request
// again on a reused connection. Keep-alive lanes reuse
// their connection until the server answers Connection: close (then they
// dial again, as any HTTP/1.1 client must); new-connection lanes dial for
// every request and send Connection: close.
type Load struct {
	addr string
	stop chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex
	results []LoadResult
	grew    chan struct{}
}

// A LoadResult is one request of a [Load].
type LoadResult struct {
	Lane           string // "keep-alive 1", "new-conn 2", ...
	noretry.Result        // Pid is the pid that answered, from the body of /
}

// StartLoad starts keepAlive and newConn lanes against addr. The test's
// cleanup stops them.
func StartLoad(t testing.TB, addr string, keepAlive, newConn int) *Load {
	l := &Load{addr: addr, stop: make(chan struct{}), grew: make(chan struct{})}
	for i := range keepAlive {
		l.lane(fmt.Sprintf("keep-alive %d", i+1), true)
	}
	for i := range newConn {
		l.lane(fmt.Sprintf("new-conn %d", i+1), false)
	}
	t.Cleanup(func() { l.Stop() })
	return l
}

func (l *Load) lane(name string, keepAlive bool) {
	c := &noretry.Client{Addr: l.addr, Timeout: EventTimeout}
	if !keepAlive {
		c.Header = []string{"Connection: close"}
	}
	l.wg.Go(func() {
		defer c.Close()
		for {
			select {
			case <-l.stop:
				return
			default:
			}
			l.add(LoadResult{Lane: name, Result: c.Get("/")})
		}
	})
}

func (l *Load) add(r LoadResult) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.results = append(l.results, r)
	close(l.grew)
	l.grew = make(chan struct{})
}

// Stop stops every lane, waits for their last requests, and returns every
// result. Calling it again returns the same.
func (l *Load) Stop() []LoadResult {
	l.mu.Lock()
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.mu.Unlock()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]LoadResult(nil), l.results...)
}

// AwaitAnsweredBy waits up to timeout for a request of the load to be
// answered by pid, and reports whether one was.
func (l *Load) AwaitAnsweredBy(pid int, timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	seen := 0
	for {
		l.mu.Lock()
		results, grew := l.results, l.grew
		l.mu.Unlock()
		for ; seen < len(results); seen++ {
			if results[seen].Pid == pid {
				return true
			}
		}
		select {
		case <-grew:
		case <-deadline.C:
			return false
		}
	}
}
