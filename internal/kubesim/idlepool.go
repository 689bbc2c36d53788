package kubesim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// IdlePoolConfig says what an [IdlePool] does.
type IdlePoolConfig struct {
	// Conns is how many connections the pool opens at its start (with as
	// many requests at once), and how many requesters then share it.
	Conns int
	// Every is how long each requester waits between its requests; they
	// are spread over it. The Transport hands each request the idle
	// connection used last, so a few connections carry the requests and
	// the others sit idle, as in a pool sized for its peak: idle through a
	// whole drain delay, without one response to say Connection: close.
	Every time.Duration
	// Retry sends plain GETs, which Go's Transport retries once on a new
	// connection when a reused one turns out closed. Without it each GET
	// carries a body the Transport cannot rewind (no GetBody), so that it
	// never retries (net/http's shouldRetryRequest), as a client that
	// cannot know whether its request was idempotent would not.
	Retry bool
}

// IdlePool is the other kind of client of a Service: a pool of kept-alive
// connections that mostly sit idle, as a load balancer's upstream pool or
// a Go http.Transport's does, rather than [Load]'s busy clients. It is a
// real http.Transport, dialling the proxy, with its background read that
// drops a connection from the pool as soon as the server closes it.
type IdlePool struct {
	config IdlePoolConfig
	client *http.Client
	url    string
	stop   chan struct{}
	wg     sync.WaitGroup

	mu     sync.Mutex
	result IdlePoolResult
}

// IdlePoolResult is what an [IdlePool] counted.
type IdlePoolResult struct {
	Requests int
	OK       int
	// Lost is the error of every request that did not end in a 200.
	Lost []string
	// Opened is how many connections the pool opened.
	Opened int
	// Told is how many responses said Connection: close: the connection
	// was given up after a response, with nothing lost.
	Told int
	// ClosedIdle is how many connections the server closed while they sat
	// in the pool without having been told: Shutdown's close of an idle
	// connection, the race a drain delay cannot close.
	ClosedIdle int
}

func (r IdlePoolResult) String() string {
	return fmt.Sprintf("%d requests, %d ok, %d lost; %d connections opened, %d told Connection: close, %d closed while idle",
		r.Requests, r.OK, len(r.Lost), r.Opened, r.Told, r.ClosedIdle)
}

// StartIdlePool opens config.Conns connections, with as many requests at
// once, then starts config.Conns requesters, spread over config.Every.
func StartIdlePool(proxy *Proxy, config IdlePoolConfig) *IdlePool {
	p := &IdlePool{config: config, url: "http://" + proxy.Addr() + "/", stop: make(chan struct{})}
	dialer := &net.Dialer{Timeout: time.Second}
	p.client = &http.Client{
		Timeout: 10 * time.Second, // a hang bound, not a speed
		Transport: &http.Transport{
			MaxIdleConnsPerHost: config.Conns,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := dialer.DialContext(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				p.count(func(r *IdlePoolResult) { r.Opened++ })
				return &pooledConn{Conn: c, pool: p}, nil
			},
		},
	}
	var warm sync.WaitGroup
	for range config.Conns {
		warm.Go(p.get)
	}
	warm.Wait()
	for i := range config.Conns {
		p.wg.Add(1)
		go p.requester(time.Duration(i+1) * config.Every / time.Duration(config.Conns))
	}
	return p
}

func (p *IdlePool) count(f func(*IdlePoolResult)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(&p.result)
}

func (p *IdlePool) requester(offset time.Duration) {
	defer p.wg.Done()
	wait := offset
	for {
		select {
		case <-p.stop:
			return
		case <-time.After(wait):
		}
		wait = p.config.Every
		p.get()
	}
}

// get sends one request and counts what came of it.
func (p *IdlePool) get() {
	var body io.Reader
	if !p.config.Retry {
		body = strings.NewReader("x")
	}
	req, err := http.NewRequest(http.MethodGet, p.url, body)
	if err != nil {
		panic(err) // the URL is ours
	}
	req.GetBody = nil // cannot be rewound: never retried
	var conn *pooledConn
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) { conn, _ = info.Conn.(*pooledConn) },
	}))
	resp, err := p.client.Do(req)
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.Close && conn != nil {
			conn.told.Store(true)
		}
	}
	p.count(func(r *IdlePoolResult) {
		r.Requests++
		switch {
		case err != nil:
			r.Lost = append(r.Lost, err.Error())
		case resp.StatusCode != http.StatusOK:
			r.Lost = append(r.Lost, resp.Status)
		default:
			r.OK++
		}
		if err == nil && resp.Close {
			r.Told++
		}
	})
}

// Stop stops the requesters, waits for the requests in flight, closes the
// pool's connections and returns the counts.
func (p *IdlePool) Stop() IdlePoolResult {
	close(p.stop)
	p.wg.Wait()
	p.client.CloseIdleConnections()
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.result
	r.Lost = append([]string(nil), r.Lost...)
	return r
}

// pooledConn is a connection of the pool, which notices when the server
// closes it without having said so in a response.
type pooledConn struct {
	net.Conn
	pool   *IdlePool
	told   atomic.Bool // a response on it said Connection: close
	closed atomic.Bool // counted once
}

func (c *pooledConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	// The Transport's own close reads as net.ErrClosed; an end of stream or
	// a reset is the server's doing.
	if err != nil && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) &&
		!c.told.Load() && c.closed.CompareAndSwap(false, true) {
		c.pool.count(func(r *IdlePoolResult) { r.ClosedIdle++ })
	}
	return n, err
}
