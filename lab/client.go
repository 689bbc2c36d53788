package main

import (
	"time"

	"github.com/gracefulgo/walkthrough/internal/noretry"
)

// client is one lane of the lab's load: the repository's one no-retry
// client (internal/noretry), whose results are placed on the lane's row of
// the timeline. It keeps its connection alive between requests.
type client struct {
	noretry.Client
	lane int
}

func newClient(addr string, lane int) *client {
	return &client{Client: noretry.Client{Addr: addr}, lane: lane}
}

// get sends GET path and places the result on the client's lane.
func (c *client) get(path string) Request {
	return c.place(c.Get(path))
}

// place puts a result on the client's lane.
func (c *client) place(r noretry.Result) Request {
	req := Request{Lane: c.lane, Start: r.Start, End: r.End, Outcome: outcome(r.Kind), Pid: r.Pid}
	if r.Err != nil {
		req.Err = r.Err.Error()
	}
	return req
}

// awaitClosed waits, with the connection idle, until the server closes it
// (or anything else arrives on it), and returns the idle stretch.
func (c *client) awaitClosed(since time.Time) Request {
	idle := Request{Lane: c.lane, Start: since, Outcome: Idle}
	if err := c.AwaitClosed(noretry.Timeout); err != nil {
		idle.Err = err.Error()
	}
	idle.End = time.Now()
	return idle
}
