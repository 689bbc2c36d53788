package kubesim

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Kind is how a failed request failed.
type Kind string

// The kinds of failure, as the client saw them.
const (
	Refused Kind = "refused" // the connection was refused
	Reset   Kind = "reset"   // the connection was reset (or written to after a reset)
	EOF     Kind = "EOF"     // the connection ended before the whole response
	Status  Kind = "status"  // a response other than 200
	Other   Kind = "other"   // anything else (a timeout, say)
)

// Kinds is every kind, in the order reports show them.
var Kinds = []Kind{Refused, Reset, EOF, Status, Other}

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

// Load is clients that each keep an HTTP/1.1 connection alive and send
// GET requests on it one after the other. They never retry: a request that
// fails is counted and the client goes on with the next one, on a new
// connection. Like any decent connection pool they do not send on a
// connection the server has visibly closed (they check before each
// request, as Go's Transport does with its background read), and they
// open a new connection after a response with Connection: close.
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

// pidInBody finds the pid in an answer to GET /: "10-kubernetes, pid 4242".
var pidInBody = regexp.MustCompile(`pid (\d+)`)

func (l *Load) client() {
	defer l.wg.Done()
	var c *clientConn
	sent := 0 // on c
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for {
		select {
		case <-l.stop:
			return
		default:
		}
		if c != nil && c.closedByServer() {
			c.Close()
			c = nil
		}
		reused := c != nil
		if c == nil {
			conn, err := net.Dial("tcp", l.proxy.Addr())
			if err != nil {
				// The proxy resets a connection its endpoint refused;
				// when the reset arrives before the dial has returned,
				// the dial fails with it. Either way it was a refusal.
				kind := kindOf(err)
				if kind == Reset {
					kind = Refused
				}
				l.fail(Failure{At: time.Now(), Kind: kind, Err: err.Error()})
				continue
			}
			c = &clientConn{Conn: conn, r: bufio.NewReader(conn)}
			sent = 0
		}
		sent++
		status, body, closing, err := c.get(l.Path)
		switch {
		case err != nil:
			kind := kindOf(err)
			if l.proxy.Refused(c.LocalAddr().String()) {
				kind = Refused
			}
			l.fail(Failure{At: time.Now(), Kind: kind, Reused: reused, Err: err.Error()})
			c.Close()
			c = nil
		case status != http.StatusOK:
			l.fail(Failure{At: time.Now(), Kind: Status, Reused: reused, Err: strconv.Itoa(status)})
		default:
			l.mu.Lock()
			l.result.OK++
			if m := pidInBody.FindStringSubmatch(body); m != nil {
				pid, _ := strconv.Atoi(m[1])
				l.result.Answered[pid] = time.Now()
			}
			l.mu.Unlock()
		}
		if c != nil && (closing || sent == l.PerConn) {
			c.Close()
			c = nil
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

// kindOf classifies a request's error.
func kindOf(err error) Kind {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return Refused
	case isReset(err):
		return Reset
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return EOF
	}
	return Other
}

// clientConn is one client's kept-alive connection.
type clientConn struct {
	net.Conn
	r *bufio.Reader
}

// requestTimeout bounds one request, so that a lost one cannot hang the load.
const requestTimeout = 10 * time.Second

// get sends GET path and reads the whole response. closing reports that the
// server asked to close the connection.
func (c *clientConn) get(path string) (status int, body string, closing bool, err error) {
	c.SetDeadline(time.Now().Add(requestTimeout))
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: kubesim\r\n\r\n"); err != nil {
		return 0, "", false, err
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return 0, "", false, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", false, err
	}
	return resp.StatusCode, string(b), resp.Close, nil
}

// closedByServer reports whether the server has closed (or reset) the idle
// connection: a peek that does not wait finds an end of stream, an error,
// or bytes nobody asked for. (A read deadline in the past would not do:
// Go fails such a read before it looks at the socket.)
func (c *clientConn) closedByServer() bool {
	if c.r.Buffered() > 0 {
		return true
	}
	raw, err := c.Conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		return true
	}
	closed := true
	var b [1]byte
	err = raw.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// Nothing to read is the only answer of a connection still open.
		// No error means a byte, or the end of stream (0 bytes).
		closed = !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EWOULDBLOCK)
		return true
	})
	return closed || err != nil
}

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
