package main

import (
	"context"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	_ "google.golang.org/grpc/health" // client-side health checking
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/gracefulgo/walkthrough/internal/demotest"
)

// TestWatchRefusedOnceGoing: a health Watch that starts after SIGTERM, here
// during the drain delay, gets no message and ends with UNAVAILABLE at
// once. A NOT_SERVING before the end would reset the backoff of grpc-go's
// client health checker, which would then watch again at once, in a loop.
func TestWatchRefusedOnceGoing(t *testing.T) {
	t.Parallel()
	// A delay far longer than the test: it ends with a second signal.
	p := demotest.Start(t, "-drain-delay=1m")
	conn, _ := dial(t, p.Addr)
	health := healthpb.NewHealthClient(conn)
	if _, err := health.Check(rpcContext(t), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	p.Signal(syscall.SIGTERM)
	p.WaitLog("drain delay started")
	for _, service := range services {
		w, err := health.Watch(rpcContext(t), &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			t.Fatal(err)
		}
		got, err := w.Recv()
		if err == nil {
			t.Errorf("Watch(%q) during the drain delay sent %v; want no message", service, got)
			continue
		}
		if s := status.Convert(err); s.Code() != codes.Unavailable || s.Message() != shuttingDown {
			t.Errorf("Watch(%q) during the drain delay ended with %v; want UNAVAILABLE, %q", service, err, shuttingDown)
		}
	}
	if _, ok := p.Logged("drain delay finished"); ok {
		t.Fatal("the 1m drain delay finished during the test")
	}
	if _, err := p.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.WaitExit()
}

// TestHealthCheckingClientBacksOff: a grpc-go client with client-side
// health checking, against a server that is draining but has not yet sent
// its GOAWAY, makes a bounded number of Watch calls. The window is held
// open by a client that connected and never sent HTTP/2's preface:
// GracefulStop waits for its handshake (ConnectionTimeout, 2s) before it
// sends any GOAWAY. With a NOT_SERVING sent to every new Watch, the client
// watched again at once, for the whole window.
func TestHealthCheckingClientBacksOff(t *testing.T) {
	t.Parallel()
	p := demotest.Start(t)
	if _, err := p.Dial(); err != nil {
		t.Fatal(err)
	}
	var watches atomic.Int64
	conn, _ := dial(t, p.Addr,
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}],"healthCheckConfig":{"serviceName":""}}`),
		// The health checker's streams pass no interceptor and no stats
		// handler (grpc-go v1.85.0, newNonRetryClientStream): count them
		// on the wire, in the HEADERS frames the client writes.
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			return countWatches(c, &watches), nil
		}),
	)
	// READY means a Watch said SERVING; and the server accepts connections
	// in order, so the stalled one has been accepted too.
	conn.Connect()
	ctx := rpcContext(t)
	for s := conn.GetState(); s != connectivity.Ready; s = conn.GetState() {
		if !conn.WaitForStateChange(ctx, s) {
			t.Fatalf("client not READY: %v", s)
		}
	}

	p.Signal(syscall.SIGTERM)
	if e := p.WaitExit(); e.Code != 0 {
		t.Errorf("%v, want exit status 0", e)
	}
	// One Watch before the signal, its retry at once, and then retries
	// after a backoff of 1s, 1.6s, …: 3 or 4 in the 2s window.
	n := watches.Load()
	t.Logf("%d Watch calls", n)
	if n < 2 || n > 6 {
		t.Errorf("the client made %d Watch calls; want 2 to 6 (one, its retry, few more after the backoff)", n)
	}
}

// countWatches returns c, counting in n the health Watch calls written to
// it: its writes are read again as HTTP/2 frames.
func countWatches(c net.Conn, n *atomic.Int64) net.Conn {
	r, w := io.Pipe()
	go func() {
		// Past a frame it cannot read, it reads on: the writer must never block.
		defer func() { _, _ = io.Copy(io.Discard, r) }()
		if _, err := io.ReadFull(r, make([]byte, len(http2.ClientPreface))); err != nil {
			return
		}
		f := http2.NewFramer(nil, r)
		f.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
		for {
			frame, err := f.ReadFrame()
			if err != nil {
				return
			}
			if h, ok := frame.(*http2.MetaHeadersFrame); ok && h.PseudoValue("path") == "/grpc.health.v1.Health/Watch" {
				n.Add(1)
			}
		}
	}()
	return &teeConn{Conn: c, w: w}
}

// teeConn is a connection whose writes are also written to w.
type teeConn struct {
	net.Conn
	w *io.PipeWriter
}

func (c *teeConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	// The counter's copy: its failure is not the connection's.
	_, _ = c.w.Write(b[:n])
	return n, err
}

func (c *teeConn) Close() error {
	c.w.Close()
	return c.Conn.Close()
}
