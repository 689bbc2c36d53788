// Package noretry is the one load client of the repository: an HTTP/1.1
// client on a bare connection that never sends a request twice. The lab's
// figures, the demo tests' loads and the simulated rolling update all count
// with it, so "refused", "reset" and "EOF" mean the same in each of them.
//
// It is written on a bare connection rather than with net/http's Transport
// because the Transport quietly sends a GET again when it failed on a
// reused connection the server had closed: that would turn a request the
// server dropped into one that succeeded, and hide the very race a
// graceful shutdown is about.
package noretry

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Kind is how a request ended, as the client saw it.
type Kind string

// The kinds. Only Refused proves that the server never saw the request;
// after Reset, EOF or Other the client cannot know whether the work was
// done, so it may not safely send the request again.
const (
	OK      Kind = "ok"      // a 200 and its whole body
	Refused Kind = "refused" // the connection was never made: the server cannot have seen the request
	Reset   Kind = "reset"   // the connection was reset, or written to after a reset
	EOF     Kind = "EOF"     // the connection ended before the whole response
	Status  Kind = "status"  // a whole response, but not a 200
	Other   Kind = "other"   // anything else: a timeout, say
)

// Failures is every kind but OK, in the order reports show them.
var Failures = []Kind{Refused, Reset, EOF, Status, Other}

// Timeout is a request's default time limit: a hang bound, not an
// expectation. A request normally ends long before it, at the latest when
// the process it was sent to exits.
const Timeout = 30 * time.Second

// Result is one request.
type Result struct {
	Start, End time.Time
	Kind       Kind
	Status     int    // 0 when no response came
	Body       string // what arrived of it
	Close      bool   // the server said Connection: close
	Reused     bool   // sent on a kept-alive connection that had served a request before
	Redialed   bool   // Peek found the kept-alive connection closed by the server, so a new one was dialed
	Err        error  // set for every kind but OK and Status
	Local      string // the client's address on the connection it was sent on ("" if none was made)
	Pid        int    // the pid the body names ("pid 4242", as every step's GET / says), or 0
}

// OK reports whether the request got a 200 and its whole body.
func (r Result) OK() bool { return r.Kind == OK }

func (r Result) String() string {
	switch r.Kind {
	case OK:
		return fmt.Sprintf("200 %q", r.Body)
	case Status:
		return fmt.Sprintf("%s: %d %q", r.Kind, r.Status, r.Body)
	}
	return fmt.Sprintf("%s: %v", r.Kind, r.Err)
}

// Client is one client: it keeps its connection alive between requests
// until the server answers Connection: close, a request fails, or PerConn
// requests have been sent on it, and then dials again for the next one.
// A Client is not safe for use by several goroutines; a load runs one per
// lane.
type Client struct {
	Addr string
	// Header lines sent with every request, such as "Connection: close".
	Header []string
	// PerConn is how many requests go on one connection before the client
	// closes it (0: no limit). Real traffic keeps opening connections.
	PerConn int
	// Peek makes the client look, before it reuses a kept-alive connection,
	// whether the server has closed it, and dial a new one if so, as Go's
	// Transport does with its background read. Without it the client sends
	// on a closed connection and counts what that costs.
	Peek bool
	// Timeout bounds one request (0: the package's Timeout).
	Timeout time.Duration

	conn net.Conn
	r    *bufio.Reader
	sent int // requests sent on conn
}

// Get sends GET path and reads the whole response.
func (c *Client) Get(path string) Result {
	res := Result{Start: time.Now()}
	if c.conn != nil && c.Peek && closedByServer(c.conn, c.r) {
		c.Close()
		res.Redialed = true
	}
	if c.conn == nil {
		conn, err := net.DialTimeout("tcp", c.Addr, c.timeout())
		if err != nil {
			res.End, res.Kind, res.Err = time.Now(), Refused, err
			return res
		}
		c.conn, c.r, c.sent = conn, bufio.NewReader(conn), 0
	}
	res.Reused = c.sent > 0
	res.Local = c.conn.LocalAddr().String()
	c.sent++
	var err error
	res.Status, res.Body, res.Close, err = c.exchange(path)
	res.End = time.Now()
	switch {
	case err != nil:
		res.Kind, res.Err = kindOf(err), err
	case res.Status != http.StatusOK:
		res.Kind = Status
	default:
		res.Kind = OK
		res.Pid = PidIn(res.Body)
	}
	if err != nil || res.Close || c.sent == c.PerConn {
		c.Close()
	}
	return res
}

func (c *Client) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return Timeout
}

// exchange writes the request and reads the whole response.
func (c *Client) exchange(path string) (status int, body string, closing bool, err error) {
	c.conn.SetDeadline(time.Now().Add(c.timeout()))
	var req strings.Builder
	req.WriteString("GET " + path + " HTTP/1.1\r\nHost: noretry\r\n")
	for _, h := range c.Header {
		req.WriteString(h + "\r\n")
	}
	req.WriteString("\r\n")
	if _, err := io.WriteString(c.conn, req.String()); err != nil {
		return 0, "", false, err
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return 0, "", false, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Close, err
}

// Connected reports whether the client holds a kept-alive connection.
func (c *Client) Connected() bool { return c.conn != nil }

// ClosedByServer reports, without waiting, whether the server has closed
// the kept-alive connection the client holds: what Peek checks.
func (c *Client) ClosedByServer() bool { return c.conn != nil && closedByServer(c.conn, c.r) }

// AwaitClosed waits, with the kept-alive connection idle, until the server
// closes it (or anything else arrives on it, or timeout passes), then lets
// the connection go. It returns the read's error: io.EOF for a clean close.
func (c *Client) AwaitClosed(timeout time.Duration) error {
	if c.conn == nil {
		return errors.New("no connection to wait on")
	}
	defer c.Close()
	c.conn.SetDeadline(time.Now().Add(timeout))
	_, err := c.r.ReadByte()
	return err
}

// Close lets the connection go; the next Get dials a new one.
func (c *Client) Close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn, c.r = nil, nil
	}
}

// KindOf classifies the error of a request made by any client, net/http's
// own included: a refused dial is Refused, for it proves the server never
// saw the request; net/http's "server closed idle connection" is EOF, the
// end of a kept-alive connection before any answer. nil is OK.
func KindOf(err error) Kind {
	switch {
	case err == nil:
		return OK
	case errors.Is(err, syscall.ECONNREFUSED):
		return Refused
	case strings.Contains(err.Error(), "server closed idle connection"):
		// net/http's errServerClosedIdle, which it does not export.
		return EOF
	}
	return kindOf(err)
}

// kindOf classifies the error of a request sent on an open connection.
func kindOf(err error) Kind {
	switch {
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return Reset
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return EOF
	}
	return Other
}

// closedByServer reports whether the server has closed (or reset) the idle
// connection: a peek that does not wait finds an end of stream, an error,
// or bytes nobody asked for. (A read deadline in the past would not do:
// Go fails such a read before it looks at the socket.)
func closedByServer(conn net.Conn, r *bufio.Reader) bool {
	if r.Buffered() > 0 {
		return true
	}
	tcp, ok := conn.(*net.TCPConn)
	if !ok {
		return false
	}
	raw, err := tcp.SyscallConn()
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

var pidInBody = regexp.MustCompile(`pid (\d+)`)

// PidIn finds the pid in an answer to GET / ("05-serve-error-select, pid
// 4242"), or returns 0.
func PidIn(body string) int {
	m := pidInBody.FindStringSubmatch(body)
	if m == nil {
		return 0
	}
	pid, _ := strconv.Atoi(m[1])
	return pid
}

// Counts is how many requests ended in each kind.
type Counts map[Kind]int

// Count counts the kinds of results.
func Count(results []Result) Counts {
	n := Counts{}
	for _, r := range results {
		n[r.Kind]++
	}
	return n
}

// Failed is how many requests did not end in OK.
func (n Counts) Failed() int {
	f := 0
	for _, k := range Failures {
		f += n[k]
	}
	return f
}

// String sums the counts up: "1234 ok, 0 failed" or "1200 ok, 3 failed
// (refused 2, EOF 1)".
func (n Counts) String() string {
	s := fmt.Sprintf("%d ok, %d failed", n[OK], n.Failed())
	var kinds []string
	for _, k := range Failures {
		if n[k] > 0 {
			kinds = append(kinds, fmt.Sprintf("%s %d", k, n[k]))
		}
	}
	if len(kinds) > 0 {
		s += " (" + strings.Join(kinds, ", ") + ")"
	}
	return s
}
