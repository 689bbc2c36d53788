package demotest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Response is what a client saw: a status and body, or an error.
type Response struct {
	Status int
	Header http.Header
	Close  bool // the server said Connection: close (net/http takes that header out of Header)
	Body   string
	Err    error
	At     time.Time // when the client had the whole answer, or gave up
}

func (r Response) String() string {
	if r.Err != nil {
		return "error: " + r.Err.Error()
	}
	return fmt.Sprintf("%d %q", r.Status, r.Body)
}

// OK reports whether the client got a 200 and its whole body.
func (r Response) OK() bool { return r.Err == nil && r.Status == http.StatusOK }

// Get sends GET path on a connection of its own, as curl would.
func (p *Process) Get(path string) Response { return p.Request(http.MethodGet, path) }

// Request sends a request with the given method for path on a connection of
// its own, as `curl -X method` would.
func (p *Process) Request(method, path string) Response { return request(p.Addr, method, path) }

func request(addr, method, path string) Response {
	req, err := http.NewRequest(method, "http://"+addr+path, nil)
	if err != nil {
		return Response{Err: err, At: time.Now()}
	}
	transport := &http.Transport{}
	defer transport.CloseIdleConnections()
	// Like curl, do not follow redirects: a 301 is an answer to report.
	client := &http.Client{Transport: transport, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	resp, err := client.Do(req)
	if err != nil {
		return Response{Err: err, At: time.Now()}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return Response{Status: resp.StatusCode, Header: resp.Header, Close: resp.Close, Body: string(body), Err: err, At: time.Now()}
}

// GetAsync sends GET path in the background; the answer arrives on the channel.
func (p *Process) GetAsync(path string) <-chan Response {
	ch := make(chan Response, 1)
	go func() { ch <- p.Get(path) }()
	return ch
}

// AwaitResponse waits up to timeout for an answer from GetAsync.
func AwaitResponse(ch <-chan Response, timeout time.Duration) Response {
	select {
	case r := <-ch:
		return r
	case <-time.After(timeout):
		return Response{Err: fmt.Errorf("no answer within %s", timeout), At: time.Now()}
	}
}

// Conn is a raw client connection, for the cases where the HTTP client's own
// connection handling would hide what is tested: a kept-alive idle
// connection, an explicit Connection: close, a client that stalls.
type Conn struct {
	net.Conn
	r *bufio.Reader
}

// Dial opens a raw connection to the process.
func (p *Process) Dial() (*Conn, error) {
	c, err := net.Dial("tcp", p.Addr)
	if err != nil {
		return nil, err
	}
	p.t.Cleanup(func() { c.Close() })
	return &Conn{Conn: c, r: bufio.NewReader(c)}, nil
}

// Do writes a GET request for path with the given extra header lines, such
// as "Connection: close", and reads the response.
func (c *Conn) Do(path string, headers ...string) Response {
	req := "GET " + path + " HTTP/1.1\r\nHost: demotest\r\n"
	for _, h := range headers {
		req += h + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		return Response{Err: err, At: time.Now()}
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return Response{Err: err, At: time.Now()}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return Response{Status: resp.StatusCode, Header: resp.Header, Close: resp.Close, Body: string(body), Err: err, At: time.Now()}
}

// AwaitClosed waits up to timeout for the server to close the connection,
// and reports whether it did. Any byte the server sends instead counts as
// not closed.
func (c *Conn) AwaitClosed(timeout time.Duration) (bool, error) {
	c.SetReadDeadline(time.Now().Add(timeout))
	defer c.SetReadDeadline(time.Time{})
	b, err := c.r.ReadByte()
	switch {
	case err == nil:
		return false, fmt.Errorf("the server sent %q on an idle connection", b)
	case isTimeout(err):
		return false, nil
	default:
		return true, nil // EOF or reset: closed
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
