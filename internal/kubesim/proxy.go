// Package kubesim simulates, with real processes and real signals, the
// parts of a Kubernetes cluster that decide whether a rolling update loses
// requests, and nothing more:
//
//   - [Proxy] is a kube-proxy: a TCP proxy on loopback that sends each new
//     connection to one of the ready endpoints, round robin, or, when none
//     is ready, to one that is terminating but still serving (KEP-1669's
//     fallback), and leaves an established connection where it is, even
//     after its endpoint is removed, as conntrack does;
//   - [Cluster.RollingUpdate] replaces the replicas one at a time
//     (maxSurge 1, maxUnavailable 0): it starts a new one, adds it to the
//     endpoints once /readyz answers 200, then deletes an old one: SIGTERM
//     at once, and the endpoint, as an EndpointSlice has it, turns
//     terminating (no longer ready) and, once the kubelet's readiness
//     probe fails, not serving; each change reaches the proxy a
//     propagation delay later; SIGKILL at the grace period;
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
	endpoints []*endpoint
	next      int               // round robin position
	refused   map[string]bool   // client addresses whose endpoint refused them
	dialed    map[string]int    // new connections sent to each endpoint
	closed    map[string]int    // of those, the ones its closed listener refused
	conns     map[net.Conn]bool // open connections, both sides, for Close
	wg        sync.WaitGroup    // the accept loop and every connection
}

// endpoint is one address of an EndpointSlice with its conditions
// (k8s.io/api/discovery/v1 EndpointConditions): a pod that is deleted
// stays in its slice, terminating and no longer ready, and serving for as
// long as its readiness probe passes.
type endpoint struct {
	addr        string
	terminating bool
	serving     bool
}

// ready is the slice's ready condition: serving and not terminating.
func (e *endpoint) ready() bool { return e.serving && !e.terminating }

// NewProxy listens on a free loopback port and proxies to no endpoint yet.
func NewProxy() (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, refused: map[string]bool{}, dialed: map[string]int{}, closed: map[string]int{}, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Addr is the address clients connect to: the Service's.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Add makes addr a ready endpoint: new connections may go to it.
func (p *Proxy) Add(addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.find(addr) == nil {
		p.endpoints = append(p.endpoints, &endpoint{addr: addr, serving: true})
	}
}

func (p *Proxy) find(addr string) *endpoint {
	for _, e := range p.endpoints {
		if e.addr == addr {
			return e
		}
	}
	return nil
}

// Terminating marks addr terminating, as the EndpointSlice controller does
// when its pod is deleted: it is no longer ready, so new connections go to
// it only when no endpoint is ready and it is still serving.
func (p *Proxy) Terminating(addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e := p.find(addr); e != nil {
		e.terminating = true
	}
}

// Serving sets addr's serving condition: its pod's readiness.
func (p *Proxy) Serving(addr string, serving bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e := p.find(addr); e != nil {
		e.serving = serving
	}
}

// Remove takes addr out of the endpoints. New connections no longer go to
// it; the ones already established stay, as conntrack keeps them.
func (p *Proxy) Remove(addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.endpoints = slices.DeleteFunc(p.endpoints, func(e *endpoint) bool { return e.addr == addr })
}

// Endpoints returns the ready endpoints.
func (p *Proxy) Endpoints() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ready []string
	for _, e := range p.endpoints {
		if e.ready() {
			ready = append(ready, e.addr)
		}
	}
	return ready
}

// Dialed returns how many new connections the proxy has sent to addr.
func (p *Proxy) Dialed(addr string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dialed[addr]
}

// RefusedBy returns how many of the new connections sent to addr it
// refused: sent to a listener that had closed, while the proxy still
// thought it served.
func (p *Proxy) RefusedBy(addr string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed[addr]
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

// pick chooses the endpoint for a new connection, round robin among the
// ready ones; when none is ready, among the ones that are terminating but
// serving, as kube-proxy has done since Kubernetes 1.26 (KEP-1669), so
// that a Service whose pods are all going away still answers while they
// drain.
func (p *Proxy) pick() (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var candidates []string
	for _, e := range p.endpoints {
		if e.ready() {
			candidates = append(candidates, e.addr)
		}
	}
	if len(candidates) == 0 {
		for _, e := range p.endpoints {
			if e.serving && e.terminating {
				candidates = append(candidates, e.addr)
			}
		}
	}
	if len(candidates) == 0 {
		return "", false
	}
	p.next %= len(candidates)
	e := candidates[p.next]
	p.next++
	p.dialed[e]++
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
		if ok {
			p.closed[endpoint]++
		}
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
