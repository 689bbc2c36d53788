package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/gracefulgo/walkthrough/internal/demotest"
	"github.com/gracefulgo/walkthrough/internal/goclient"
	"github.com/gracefulgo/walkthrough/internal/noretry"
)

// The clients of these tests are net/http's own (internal/goclient), with
// no retry in the caller: what they send again, they send by themselves,
// and that is what the step is about.

// goClient is goclient.New: net/http's client speaking HTTP/1.1 only, or
// h2c only.
var goClient = goclient.New

// post sends POST /count, with an Idempotency-Key when key is set.
func post(c *http.Client, addr, key string) (body string, kind noretry.Kind, err error) {
	return goclient.Post(c, addr, "/count", key)
}

// postPath is post to another path, such as /count?d=3s.
var postPath = goclient.Post

// ambiguous reports whether a kind leaves the client unable to know if the
// server did the work: every failure but a refused dial.
func ambiguous(k noretry.Kind) bool { return k != noretry.OK && k != noretry.Refused }

// finHolder dials real connections whose end, when the server closes one,
// reaches the client only once the client has written on it again. It
// makes the keep-alive race happen on purpose: the server's FIN is still
// on its way while the client sends its next request on the connection it
// believes idle and open. Everything else (the bytes, a GOAWAY frame)
// passes at once.
type finHolder struct {
	mu    sync.Mutex
	conns []*finHeld
}

func (h *finHolder) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	c := &finHeld{Conn: conn, ended: make(chan struct{}), wrote: make(chan struct{})}
	h.mu.Lock()
	h.conns = append(h.conns, c)
	h.mu.Unlock()
	return c, nil
}

// awaitEnd waits until the first connection dialed has ended: the server's
// FIN arrived (and is held), or the client closed it.
func (h *finHolder) awaitEnd(t *testing.T) {
	t.Helper()
	h.mu.Lock()
	if len(h.conns) == 0 {
		h.mu.Unlock()
		t.Fatal("no connection was dialed")
	}
	c := h.conns[0]
	h.mu.Unlock()
	select {
	case <-c.ended:
	case <-time.After(demotest.EventTimeout):
		t.Fatalf("the connection did not end within %s", demotest.EventTimeout)
	}
}

type finHeld struct {
	net.Conn
	endOnce, wroteOnce sync.Once
	ended              chan struct{} // closed when the FIN arrived, or the client closed the connection
	wrote              chan struct{} // closed by the first write after the FIN, or by Close
}

func (c *finHeld) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if errors.Is(err, io.EOF) {
		c.endOnce.Do(func() { close(c.ended) })
		<-c.wrote
	}
	return n, err
}

func (c *finHeld) Write(p []byte) (int, error) {
	select {
	case <-c.ended:
		// The request goes out on a connection the server has closed, and
		// only then does the client learn of the close.
		defer c.wroteOnce.Do(func() { close(c.wrote) })
	default:
	}
	return c.Conn.Write(p)
}

func (c *finHeld) Close() error {
	c.endOnce.Do(func() { close(c.ended) })
	c.wroteOnce.Do(func() { close(c.wrote) })
	return c.Conn.Close()
}

func readAll(resp *http.Response) (string, error) {
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
