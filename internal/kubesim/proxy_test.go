package kubesim

import (
	"bufio"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/gracefulgo/walkthrough/internal/proc"
)

// backend is an endpoint that answers each line with its name and the line,
// and closes the connection when it reads "bye".
func backend(t *testing.T, name string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewScanner(c)
				for r.Scan() {
					if r.Text() == "bye" {
						return
					}
					if _, err := io.WriteString(c, name+" "+r.Text()+"\n"); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

type client struct {
	net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, p *Proxy) *client {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{c, bufio.NewReader(c)}
}

func (c *client) say(line string) (string, error) {
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return "", err
	}
	return c.r.ReadString('\n')
}

// TestProxy: new connections go round robin to the current endpoints; an
// established one stays with its endpoint after the endpoint is removed;
// a server's close reaches the client as an end of stream; with no
// endpoint left, a new connection is reset and counted as refused.
func TestProxy(t *testing.T) {
	p, err := NewProxy()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	a, b := backend(t, "a"), backend(t, "b")
	p.Add(a)
	p.Add(b)
	var got []string
	var onA *client
	for range 4 {
		c := dial(t, p)
		answer, err := c.say("hi")
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, answer[:1])
		if answer[:1] == "a" {
			onA = c
		}
	}
	if want := "abab"; got[0]+got[1]+got[2]+got[3] != want {
		t.Errorf("new connections went to %v, want round robin %s", got, want)
	}

	p.Remove(a)
	if answer, err := onA.say("still there?"); err != nil || answer != "a still there?\n" {
		t.Errorf("an established connection after its endpoint was removed: %q, %v; want it still served by a", answer, err)
	}
	for range 2 {
		if answer, err := dial(t, p).say("hi"); err != nil || answer[:1] != "b" {
			t.Errorf("a new connection after a was removed: %q, %v; want b", answer, err)
		}
	}
	if _, err := io.WriteString(onA, "bye\n"); err != nil {
		t.Fatal(err)
	}
	onA.SetReadDeadline(time.Now().Add(proc.EventTimeout))
	if _, err := onA.r.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("after the server closed, the client read %v, want EOF", err)
	}

	p.Remove(b)
	// The reset can reach the client before its connect returns, so the
	// dial itself may fail; then the refusal is the one recorded.
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		p.mu.Lock()
		n := len(p.refused)
		p.mu.Unlock()
		if n != 1 {
			t.Errorf("the dial failed (%v) and %d refusals were recorded, want 1", err, n)
		}
		return
	}
	defer c.Close()
	if _, err := (&client{c, bufio.NewReader(c)}).say("anyone?"); err == nil {
		t.Error("a connection with no endpoint was answered")
	}
	if !p.Refused(c.LocalAddr().String()) {
		t.Error("a connection with no endpoint was not counted as refused")
	}
}

// TestProxyTerminatingEndpoints: a terminating endpoint is not ready, so
// new connections skip it while another is ready; when none is ready they
// fall back to the terminating ones still serving (KEP-1669), and only
// when none of those is left is a new connection refused.
func TestProxyTerminatingEndpoints(t *testing.T) {
	p, err := NewProxy()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	a, b := backend(t, "a"), backend(t, "b")
	p.Add(a)
	p.Add(b)
	answers := func(n int) string {
		got := ""
		for range n {
			c := dial(t, p)
			answer, err := c.say("hi")
			if err != nil {
				got += "-"
				continue
			}
			got += answer[:1]
		}
		return got
	}
	p.Terminating(a)
	if got := answers(2); got != "bb" {
		t.Errorf("a terminating, b ready: new connections went to %q, want bb", got)
	}
	p.Terminating(b)
	if got := answers(2); got != "ab" && got != "ba" {
		t.Errorf("both terminating and serving: new connections went to %q, want one to each", got)
	}
	p.Serving(a, false)
	if got := answers(2); got != "bb" {
		t.Errorf("both terminating, only b serving: new connections went to %q, want bb", got)
	}
	if n := p.Dialed(b); n != 5 {
		t.Errorf("b was sent %d new connections, want 5", n)
	}
	p.Serving(b, false)
	c, err := net.Dial("tcp", p.Addr())
	if err == nil {
		defer c.Close()
		if _, err := (&client{c, bufio.NewReader(c)}).say("anyone?"); err == nil {
			t.Error("a connection with no serving endpoint was answered")
		}
	}
}
