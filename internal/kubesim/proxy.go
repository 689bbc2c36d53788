// Package kubesim simulates, with real processes and real signals, the
// parts of a Kubernetes cluster that decide whether a rolling update loses
// requests, and nothing more:
//
//   - [Proxy] is a kube-proxy: a TCP proxy on loopback that sends each new
//     connection to one of the current endpoints, round robin, and leaves
//     an established connection where it is, even after its endpoint is
//     removed, as conntrack does;
//   - [Cluster.RollingUpdate] replaces the replicas one at a time
//     (maxSurge 1, maxUnavailable 0): it starts a new one, adds it to the
//     endpoints once /readyz answers 200, then deletes an old one: SIGTERM
//     at once, removal from the endpoints after a propagation delay,
//     SIGKILL at the grace period;
//   - [Load] is keep-alive HTTP/1.1 clients that never retry, counting
//     every request that does not end in a 200, by kind.
//
// The steps' tests and the lab share it.
package kubesim

import (
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"time"
)

// Proxy is a kube-proxy-like TCP proxy on a loopback port.
type Proxy struct {
	ln net.Listener

	mu        sync.Mutex
	endpoints []string
	next      int               // round robin position
	refused   map[string]bool   // client addresses whose endpoint refused them
	conns     map[net.Conn]bool // open connections, both sides, for Close
	wg        sync.WaitGroup    // the accept loop and every connection
}

// NewProxy listens on a free loopback port and proxies to no endpoint yet.
func NewProxy() (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, refused: map[string]bool{}, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Addr is the address clients connect to: the Service's.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Add makes addr an endpoint: new connections may go to it.
func (p *Proxy) Add(addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !slices.Contains(p.endpoints, addr) {
		p.endpoints = append(p.endpoints, addr)
	}
}

// Remove takes addr out of the endpoints. New connections no longer go to
// it; the ones already established stay, as conntrack keeps them.
func (p *Proxy) Remove(addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.endpoints = slices.DeleteFunc(p.endpoints, func(e string) bool { return e == addr })
}

// Endpoints returns the current endpoints.
func (p *Proxy) Endpoints() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.endpoints)
}

// Refused reports whether the connection a client made from local address
// clientAddr was refused by its endpoint. Through iptables the client's own
// SYN reaches the pod and is refused; a proxy in user space has accepted
// the connection before it dials, so it can only reset it. It records the
// address first, so that a client can tell the refusal from a reset.
func (p *Proxy) Refused(clientAddr string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.refused[clientAddr]
}

// Close stops accepting, cuts every connection and waits for them.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.handle(c.(*net.TCPConn))
		}()
	}
}

// pick chooses the endpoint for a new connection, round robin.
func (p *Proxy) pick() (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.endpoints) == 0 {
		return "", false
	}
	p.next %= len(p.endpoints)
	e := p.endpoints[p.next]
	p.next++
	return e, true
}

func (p *Proxy) track(c net.Conn, open bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if open {
		p.conns[c] = true
	} else {
		delete(p.conns, c)
	}
}

func (p *Proxy) handle(client *net.TCPConn) {
	p.track(client, true)
	defer p.track(client, false)
	endpoint, ok := p.pick()
	var backend net.Conn
	err := errors.New("no endpoints")
	if ok {
		backend, err = net.DialTimeout("tcp", endpoint, time.Second)
	}
	if err != nil {
		p.mu.Lock()
		p.refused[client.RemoteAddr().String()] = true
		p.mu.Unlock()
		reset(client)
		return
	}
	p.track(backend, true)
	defer p.track(backend, false)
	splice(client, backend.(*net.TCPConn))
}

// splice copies both ways until both sides are done. An end of stream is
// passed on as a half close, so that a server's close after its response
// reaches the client as it would without the proxy; any other error (a
// reset, above all) resets both sides.
func splice(client, backend *net.TCPConn) {
	done := make(chan struct{}, 2)
	pipe := func(dst, src *net.TCPConn) {
		defer func() { done <- struct{}{} }()
		if _, err := io.Copy(dst, src); err != nil {
			reset(dst)
			reset(src)
			return
		}
		// The end of stream cannot be passed on: the other side is gone,
		// so end this side too.
		if err := dst.CloseWrite(); err != nil {
			reset(src)
		}
	}
	go pipe(backend, client)
	go pipe(client, backend)
	<-done
	<-done
	client.Close()
	backend.Close()
}

// reset closes c with a TCP reset instead of an orderly end of stream.
func reset(c *net.TCPConn) {
	// SetLinger fails only on a connection already closed; Close then
	// reports the same, and there is nothing left to reset.
	_ = c.SetLinger(0)
	_ = c.Close()
}
