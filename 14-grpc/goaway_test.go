package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	"github.com/gracefulgo/walkthrough/internal/demotest"
)

// HTTP/2 frame types (RFC 9113, section 6) the tests look for.
const (
	frameHeaders = 0x1
	frameGoAway  = 0x7
)

// TestGoAwayRetriedElsewhere makes the race that GOAWAY exists for, and
// shows what a grpc-go client does with it. A client balances over two
// servers, A and B, on one ClientConn. Its connection to A holds back the
// frames of the client's calls, so an RPC the client started on A has not
// reached A when A gets SIGTERM. GracefulStop sends a first GOAWAY (last
// stream 2^31-1) and a PING; the PING's answer goes through, and A sends
// the second GOAWAY, naming the last stream it will process, which is
// before that RPC. The client then knows that A never saw it,
// and retries it by itself (a transparent retry: stream.go, shouldRetry,
// "First attempt, stream unprocessed") on B. The caller sees an answer,
// not an error; A exits 0 and never ran it; the two counts of answered
// calls add up to the answers the client got.
func TestGoAwayRetriedElsewhere(t *testing.T) {
	t.Parallel()
	res := goAwayRace(t, 2)
	if res.err != nil {
		t.Fatalf("the call caught in A's shutdown failed: %v (code %v); want it retried on B", res.err, status.Code(res.err))
	}
	if res.by != "B" {
		t.Errorf("the call caught in A's shutdown was answered by %s, want B", res.by)
	}
}

// TestGoAwayWithNowhereElse: the same race with A alone. The client
// retries the call all the same, but A's listener is closed: the call
// fails with UNAVAILABLE, and A never ran it, which the client can know
// (the GOAWAY said so) and a caller can act on.
func TestGoAwayWithNowhereElse(t *testing.T) {
	t.Parallel()
	res := goAwayRace(t, 1)
	if code := status.Code(res.err); code != codes.Unavailable {
		t.Errorf("the call caught in A's shutdown, with no other server: %v (code %v), want UNAVAILABLE", res.err, code)
	}
}

// raceResult is what became of the call caught in A's shutdown.
type raceResult struct {
	by  string // "A", "B"
	err error
}

// goAwayRace runs the race with 1 server (A) or 2 (A and B), checks what
// holds either way (a transparent retry, the counts, exit 0), and returns
// what became of the call caught in A's shutdown.
func goAwayRace(t *testing.T, servers int) raceResult {
	procs := map[string]*demotest.Process{"A": demotest.Start(t)}
	if servers == 2 {
		procs["B"] = demotest.Start(t)
	}
	a := procs["A"]
	var addrs []resolver.Address
	pidOf := map[string]string{}
	for _, name := range []string{"A", "B"} {
		if p, ok := procs[name]; ok {
			addrs = append(addrs, resolver.Address{Addr: p.Addr})
			pidOf[fmt.Sprintf("pid %d)", p.Pid())] = name
		}
	}
	answeredBy := func(body string) string {
		for pid, name := range pidOf {
			if strings.HasSuffix(body, pid) {
				return name
			}
		}
		return "nobody"
	}

	var mu sync.Mutex
	conns := map[string]*heldConn{} // the latest connection to each address
	dialer := func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := new(net.Dialer).DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		h := newHeldConn(c)
		mu.Lock()
		conns[addr] = h
		mu.Unlock()
		return h, nil
	}
	r := manual.NewBuilderWithScheme("servers")
	r.InitialState(resolver.State{Addresses: addrs})
	var retries retryCounter
	_, client := dial(t, r.Scheme()+":///step14",
		grpc.WithResolvers(r),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig": [{"round_robin": {}}]}`),
		grpc.WithContextDialer(dialer),
		grpc.WithStatsHandler(&retries))

	// Round robin sends calls to each server in turn once it is connected
	// to all: call until each has answered.
	answers := map[string]int{}
	for len(answers) < servers {
		body, err := sleep(t, client, 0)
		if err != nil {
			t.Fatalf("Sleep(0) before the signal: %v", err)
		}
		answers[answeredBy(body)]++
		if answers["nobody"] > 0 || answers["A"]+answers["B"] > 100 {
			t.Fatalf("answers %v: want every server answering", answers)
		}
	}

	// From now on the connection to A delivers nothing the client writes.
	mu.Lock()
	toA := conns[a.Addr]
	mu.Unlock()
	if !toA.holdWrites() {
		t.Fatal("the client was writing a frame on A's connection with no call under way")
	}
	// Call until one call's HEADERS frame is held back on A's connection;
	// the calls that went to B meanwhile are answered.
	type result struct {
		body string
		err  error
	}
	pending := make(chan result, 1)
	for held := false; !held; {
		go func() {
			body, err := sleep(t, client, 0)
			pending <- result{body, err}
		}()
		select {
		case <-toA.heldHeaders:
			held = true
		case res := <-pending:
			if res.err != nil {
				t.Fatalf("Sleep(0) while A's connection holds back: %v", res.err)
			}
			answers[answeredBy(res.body)]++
		}
	}

	a.Signal(syscall.SIGTERM)
	// The first GOAWAY says "2^31-1"; the second, sent when the PING's
	// answer is back (internal/transport/http2_server.go,
	// outgoingGoAwayHandler), names the last stream A will process.
	// A closes the connection right after the second GOAWAY when no call
	// is left on it: a GOAWAY read before the close counts, whichever of
	// the two the select sees first.
	timeout := time.After(demotest.EventTimeout)
	for second := false; !second; {
		var last uint32
		select {
		case last = <-toA.goAways:
		case <-toA.readFailed:
			select {
			case last = <-toA.goAways:
			default:
				t.Fatal("A closed the connection without a second GOAWAY: the client cannot know whether A ran the held call")
			}
		case <-timeout:
			t.Fatalf("no second GOAWAY from A within %v of SIGTERM", demotest.EventTimeout)
		}
		second = last != 1<<31-1
		t.Logf("GOAWAY from A: last stream %d", last)
		// The second GOAWAY names the last call A saw: the highest
		// stream the connection let through, not the held one.
		if saw := toA.sentStream(); second && last != saw {
			t.Errorf("A's second GOAWAY names stream %d, want %d, the last stream A was sent", last, saw)
		}
	}
	var caught result
	select {
	case caught = <-pending:
	case <-time.After(demotest.EventTimeout):
		t.Fatal("the held call got no answer after A's second GOAWAY")
	}
	toA.release()
	if caught.err == nil {
		answers[answeredBy(caught.body)]++
	}
	if n := retries.transparent.Load(); n < 1 {
		t.Errorf("%d transparent retries seen by the stats handler, want at least 1", n)
	}

	if e := a.WaitExit(); e.Code != 0 {
		t.Errorf("A: %v, want exit status 0", e)
	}
	if b, ok := procs["B"]; ok {
		b.Signal(syscall.SIGTERM)
		if e := b.WaitExit(); e.Code != 0 {
			t.Errorf("B: %v, want exit status 0", e)
		}
	}
	// What each server says it answered is what the client got from it:
	// the held call was not run on A, and not run twice.
	for name, p := range procs {
		line, ok := p.Logged("shutdown finished")
		if !ok {
			t.Errorf("%s did not log shutdown finished", name)
			continue
		}
		if got, want := line.Attr("sleeps"), fmt.Sprint(answers[name]); got != want {
			t.Errorf("%s answered sleeps=%s, but the client got %s answers from it", name, got, want)
		}
	}
	if n := a.Count("sleep started"); n != answers["A"] {
		t.Errorf("A started %d calls, answered %d: it ran the held call", n, answers["A"])
	}
	t.Logf("answers %v, transparent retries %d, the held call: %q, %v", answers, retries.transparent.Load(), caught.body, caught.err)
	by := ""
	if caught.err == nil {
		by = answeredBy(caught.body)
	}
	return raceResult{by: by, err: caught.err}
}

// retryCounter is a client stats handler that counts the attempts grpc-go
// starts as transparent retries.
type retryCounter struct{ transparent atomic.Int64 }

func (r *retryCounter) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (r *retryCounter) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (r *retryCounter) HandleConn(context.Context, stats.ConnStats) {}
func (r *retryCounter) HandleRPC(_ context.Context, s stats.RPCStats) {
	if begin, ok := s.(*stats.Begin); ok && begin.IsTransparentRetryAttempt {
		r.transparent.Add(1)
	}
}

// heldConn is a client's connection that can hold back the frames of the
// client's calls, as a slow network would delay them, while the rest goes
// through: what the connection itself says (SETTINGS, PING answers,
// WINDOW_UPDATE on stream 0) and everything read. It reads the HTTP/2
// frames going each way: it reports a HEADERS frame held back (a call that
// has not left the client) and every GOAWAY read (its last stream id).
type heldConn struct {
	net.Conn
	heldHeaders chan struct{}
	goAways     chan uint32
	readFailed  chan struct{} // closed when a Read fails: the server closed the connection
	failOnce    sync.Once

	mu      sync.Mutex
	holding bool
	held    []byte
	// sent is the highest stream whose HEADERS went through to the
	// server: the last call the server saw.
	sent    uint32
	written frames // what the client writes, after its 24-byte preface
	read    frames
}

func newHeldConn(c net.Conn) *heldConn {
	return &heldConn{
		Conn:        c,
		heldHeaders: make(chan struct{}, 1),
		goAways:     make(chan uint32, 4),
		readFailed:  make(chan struct{}),
		written:     frames{skip: len("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")},
	}
}

// holdWrites starts holding back the calls' frames. It reports false if
// the client is in the middle of writing a frame, which a client with no
// call under way is not.
func (c *heldConn) holdWrites() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.holding = c.written.atBoundary()
	return c.holding
}

// sentStream is the highest stream the server was sent HEADERS for.
func (c *heldConn) sentStream() uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sent
}

// release sends what was held back, and lets later writes through.
func (c *heldConn) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.holding = false
	_, _ = c.Conn.Write(c.held) // the server may have closed: it does not matter
	c.held = nil
}

func (c *heldConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.holding {
		c.written.scan(p, func(f frame) {
			if f.typ == frameHeaders {
				c.sent = max(c.sent, f.stream)
			}
		})
		return c.Conn.Write(p)
	}
	// Whole frames only: a stream's frame is held back, the connection's
	// goes on. The order of the held frames, and of every HEADERS frame
	// among them (HPACK's state depends on it), is kept.
	var err error
	c.written.scan(p, func(f frame) {
		if f.stream != 0 {
			c.held = append(c.held, f.raw...)
			if f.typ == frameHeaders {
				select {
				case c.heldHeaders <- struct{}{}:
				default:
				}
			}
			return
		}
		if _, werr := c.Conn.Write(f.raw); werr != nil && err == nil {
			err = werr
		}
	})
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *heldConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.read.scan(p[:n], func(f frame) {
		if f.typ == frameGoAway && len(f.payload) >= 4 {
			select {
			case c.goAways <- binary.BigEndian.Uint32(f.payload) & (1<<31 - 1):
			default:
			}
		}
	})
	c.mu.Unlock()
	if err != nil {
		c.failOnce.Do(func() { close(c.readFailed) })
	}
	return n, err
}

// A frame is one HTTP/2 frame: a 9-byte header (length, type, flags,
// stream id), then the payload.
type frame struct {
	typ     byte
	stream  uint32
	payload []byte
	raw     []byte // header and payload
}

// frames cuts a byte stream into frames.
type frames struct {
	skip    int // bytes to pass over first
	pending []byte
}

func (f *frames) atBoundary() bool { return f.skip == 0 && len(f.pending) == 0 }

// scan takes in p and calls fn, if not nil, with each frame it completes.
func (f *frames) scan(p []byte, fn func(frame)) {
	n := min(f.skip, len(p))
	f.skip -= n
	f.pending = append(f.pending, p[n:]...)
	for len(f.pending) >= 9 {
		length := int(f.pending[0])<<16 | int(f.pending[1])<<8 | int(f.pending[2])
		if len(f.pending) < 9+length {
			return
		}
		raw := append([]byte(nil), f.pending[:9+length]...)
		f.pending = append([]byte(nil), f.pending[9+length:]...)
		if fn != nil {
			fn(frame{typ: raw[3], stream: binary.BigEndian.Uint32(raw[5:9]) & (1<<31 - 1), payload: raw[9:], raw: raw})
		}
	}
}
