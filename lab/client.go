package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"time"
)

// requestTimeout is a safety net for a single request; a request normally
// ends long before, at the latest when the process exits.
const requestTimeout = 30 * time.Second

// client is one HTTP/1.1 client that keeps its connection alive between
// requests, written on a bare connection rather than with net/http's
// Transport: the Transport quietly retries a GET that failed on a reused
// connection, which would turn a request the server dropped into one that
// was refused on the retry.
type client struct {
	addr string
	lane int
	conn net.Conn
	r    *bufio.Reader
	body string // the last response's body
}

// get sends GET path, on the kept-alive connection if there is one, and
// reports how it went. The connection is dropped after a failure, and when
// the server asks for it with Connection: close.
func (c *client) get(path string) Request {
	req := Request{Lane: c.lane, Start: time.Now()}
	var dialErr, err error
	status := 0
	if c.conn == nil {
		c.conn, dialErr = net.Dial("tcp", c.addr)
		if dialErr == nil {
			c.r = bufio.NewReader(c.conn)
		}
	}
	if dialErr == nil {
		var closing bool
		status, closing, err = c.exchange(path)
		if err != nil || closing {
			c.close()
		}
	} else {
		c.conn = nil
	}
	req.End = time.Now()
	req.Outcome = classify(dialErr, err, status)
	if req.Outcome == Completed {
		req.Pid = pidIn(c.body)
	}
	if dialErr != nil {
		err = dialErr
	}
	if err != nil {
		req.Err = err.Error()
	}
	return req
}

// exchange writes the request and reads the whole response.
func (c *client) exchange(path string) (status int, closing bool, err error) {
	c.conn.SetDeadline(time.Now().Add(requestTimeout))
	if _, err := io.WriteString(c.conn, "GET "+path+" HTTP/1.1\r\nHost: lab\r\n\r\n"); err != nil {
		return 0, false, err
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	c.body = string(body)
	if err != nil {
		return resp.StatusCode, true, err
	}
	return resp.StatusCode, resp.Close, nil
}

// awaitClosed waits, with the connection idle, until the server closes it
// (or anything else arrives on it), and returns the idle stretch.
func (c *client) awaitClosed(since time.Time) Request {
	c.conn.SetDeadline(time.Now().Add(requestTimeout))
	_, err := c.r.ReadByte()
	idle := Request{Lane: c.lane, Start: since, End: time.Now(), Outcome: Idle}
	if err != nil {
		idle.Err = err.Error()
	}
	c.close()
	return idle
}

func (c *client) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn, c.r = nil, nil
	}
}
