package frontproxy

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/gracefulgo/walkthrough/internal/noretry"
)

// A Load sends GET / and POST /count through a proxy in lanes, one
// request at a time per lane, until stopped; nothing is sent twice by the
// load itself.
//
// Without keep-alive each request goes on a new connection, which keeps
// the race between the client and the proxy out of the count (net/http
// never sends a request again after a failure on a fresh connection, and
// no idle connection to the proxy is left for a reload to close): every
// failure counted is one the proxy answered, or a connection to the proxy
// that failed. Behind nginx that is what a test of the nginx-to-program
// hop needs.
//
// With keep-alive the lanes keep their connection to the proxy, as
// browsers and most clients do. HAProxy needs it to reuse its idle server
// connections at all: with http-reuse safe (its default) a session's first
// request always goes on a connection of its own. GET lanes are
// internal/noretry's client, which never sends a request twice; POST
// lanes net/http's, which sends a POST again only when it wrote nothing of
// it (nothingWrittenError in transport.go), so never one a server may
// have processed.
type Load struct {
	url  string
	stop chan struct{}
	wg   sync.WaitGroup

	mu     sync.Mutex
	res    LoadResult
	ok     chan struct{} // closed at the first answered request
	okOnce sync.Once
}

// LoadResult counts what the lanes saw.
type LoadResult struct {
	GETs, POSTs    noretry.Counts // by kind, as the clients saw them
	Statuses       map[int]int    // the status of every answer that was not a 200
	FailedExamples []string       // the first few failures, for the test's message
}

// Failed is how many requests of either method failed.
func (r LoadResult) Failed() int { return r.GETs.Failed() + r.POSTs.Failed() }

func (r LoadResult) String() string {
	return fmt.Sprintf("GET: %s; POST: %s; statuses %v", r.GETs, r.POSTs, r.Statuses)
}

// StartLoad starts lanes GET lanes and as many POST lanes against addr.
func StartLoad(addr string, lanes int, keepAlive bool) *Load {
	l := &Load{url: "http://" + addr, stop: make(chan struct{}), ok: make(chan struct{}),
		res: LoadResult{GETs: noretry.Counts{}, POSTs: noretry.Counts{}, Statuses: map[int]int{}}}
	for range lanes {
		for _, post := range []bool{false, true} {
			tr := &http.Transport{DisableKeepAlives: !keepAlive}
			c := &http.Client{Transport: tr, Timeout: noretry.Timeout}
			var get *noretry.Client
			if keepAlive && !post {
				get = &noretry.Client{Addr: addr, Peek: true}
			}
			l.wg.Add(1)
			go l.lane(c, get, post)
		}
	}
	return l
}

// Answered is closed once a request of the load has been answered 200.
func (l *Load) Answered() <-chan struct{} { return l.ok }

func (l *Load) lane(c *http.Client, get *noretry.Client, post bool) {
	defer l.wg.Done()
	for {
		if get != nil {
			r := get.Get("/")
			l.count(false, r.Kind, r.Status, r.Err)
			select {
			case <-l.stop:
				get.Close()
				return
			default:
			}
			continue
		}
		select {
		case <-l.stop:
			return
		default:
		}
		var resp *http.Response
		var err error
		if post {
			resp, err = c.Post(l.url+"/count", "text/plain", strings.NewReader("one more"))
		} else {
			resp, err = c.Get(l.url + "/")
		}
		kind, status := noretry.OK, 0
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			status = resp.StatusCode
		}
		switch {
		case err != nil:
			kind = noretry.KindOf(err)
		case status != http.StatusOK:
			kind = noretry.Status
		}
		l.count(post, kind, status, err)
	}
}

func (l *Load) count(post bool, kind noretry.Kind, status int, err error) {
	l.mu.Lock()
	counts := l.res.GETs
	if post {
		counts = l.res.POSTs
	}
	counts[kind]++
	if kind == noretry.OK {
		l.okOnce.Do(func() { close(l.ok) })
	}
	if status != 0 && status != http.StatusOK {
		l.res.Statuses[status]++
	}
	if kind != noretry.OK && len(l.res.FailedExamples) < 5 {
		l.res.FailedExamples = append(l.res.FailedExamples, fmt.Sprintf("post=%t status=%d err=%v", post, status, err))
	}
	l.mu.Unlock()
}

// Stop stops every lane after its request in flight and returns the counts.
func (l *Load) Stop() LoadResult {
	close(l.stop)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.res
}
