package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/gracefulgo/walkthrough/internal/demotest"
)

func TestMain(m *testing.M) { demotest.Main(m, main) }

// The streams change nothing about how ordinary requests drain: the step
// keeps every lesson of step 05.
func TestScenarios(t *testing.T) {
	t.Parallel()
	demotest.Suite{}.Run(t)
}

// TestBadCommandLineExits2: a stray word or a duration that is not more
// than 0 stops the program before it serves, with exit status 2.
func TestBadCommandLineExits2(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"shutdown-timeout", "3s"}, // the dash forgotten: flag parsing stops there
		{"-tick", "0s"},
		{"-write-timeout", "-1s"},
		{"-shutdown-timeout", "0s"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			p := demotest.StartAt(t, demotest.FreeAddr(t), args...)
			if exit := p.WaitExit(); exit.Code != 2 {
				t.Errorf("%s, want exit status 2", exit)
			}
			if _, listened := p.Logged("listening"); listened {
				t.Errorf("it started to serve:\n%s", p.Output())
			}
			if !strings.HasPrefix(args[0], "-") && !strings.Contains(p.Output(), "Usage") {
				t.Errorf("no usage for a stray word:\n%s", p.Output())
			}
		})
	}
}

// TestEventStreamEndsAtShutdown: an open event stream at SIGTERM gets a
// last "shutdown" event with a retry: hint, then a clean end of the
// response, and the program exits 0. With the default -shutdown-timeout of
// 10s, an exit 0 within the wait's 5s is an exit well before the deadline;
// a stream left to the deadline would be cut there, exit 1.
func TestEventStreamEndsAtShutdown(t *testing.T) {
	t.Parallel()
	p := demotest.Start(t, "-tick", "50ms")
	stream := openEvents(t, p)
	first := stream.next(t)
	if want := fmt.Sprintf(`{"pid":%d,"tick":1}`, p.Pid()); first.event != "tick" || first.id != "1" || first.data != want {
		t.Fatalf("first event %v, want a tick with id 1 and data %s", first, want)
	}
	p.Signal(syscall.SIGTERM)
	last := stream.next(t)
	for last.event == "tick" && last.err == nil {
		last = stream.next(t)
	}
	if last.err != nil || last.event != "shutdown" || last.retry != "1000" || last.data != fmt.Sprintf(`{"pid":%d}`, p.Pid()) {
		t.Errorf("after SIGTERM the stream sent %v, want a shutdown event with retry: 1000 and the pid", last)
	}
	if end := stream.next(t); !errors.Is(end.err, io.EOF) {
		t.Errorf("after the shutdown event: %v, want a clean end of the response (EOF)", end)
	}
	if exit := p.WaitExit(); exit.Code != 0 {
		t.Errorf("%s, want exit status 0", exit)
	}
	if l, ok := p.Logged("event stream ended"); !ok || l.Attr("cause") != "shutdown" {
		t.Errorf("want msg=\"event stream ended\" cause=shutdown, got %q", l.Raw)
	}
}

// TestEventStreamHead: HEAD /events answers the stream's headers and ends,
// instead of holding a stream with no body open.
func TestEventStreamHead(t *testing.T) {
	t.Parallel()
	p := demotest.Start(t)
	if r := p.Request(http.MethodHead, "/events"); r.Err != nil || r.Status != http.StatusOK || r.Header.Get("Content-Type") != "text/event-stream" {
		t.Errorf("HEAD /events: %v, Content-Type %q; want 200 text/event-stream", r, r.Header.Get("Content-Type"))
	}
	if _, ok := p.Logged("event stream opened"); ok {
		t.Errorf("HEAD /events opened a stream")
	}
}

// TestEventStreamResumes: a client that reconnects with Last-Event-ID (as
// EventSource does) gets the count from where it stopped.
func TestEventStreamResumes(t *testing.T) {
	t.Parallel()
	p := demotest.Start(t, "-tick", "1h")
	if e := openEvents(t, p, "Last-Event-ID", "41").next(t); e.id != "42" {
		t.Errorf("with Last-Event-ID: 41 the first event is %v, want id 42", e)
	}
}

// TestStreamOutlivesWriteTimeout: the server keeps a WriteTimeout, which
// still cuts an ordinary response that takes longer, but an event stream
// moves its write deadline on at each event and lives past it.
func TestStreamOutlivesWriteTimeout(t *testing.T) {
	t.Parallel()
	const writeTimeout = 300 * time.Millisecond
	p := demotest.Start(t, "-tick", "50ms", "-write-timeout", writeTimeout.String())
	slow := p.GetAsync("/slow?d=600ms")
	stream := openEvents(t, p)
	for opened := time.Now(); time.Since(opened) < 3*writeTimeout; {
		if e := stream.next(t); e.err != nil {
			t.Fatalf("the stream ended %s after it opened, with -write-timeout %s: %v", time.Since(opened).Round(time.Millisecond), writeTimeout, e.err)
		}
	}
	if r := demotest.AwaitResponse(slow, demotest.EventTimeout); r.Err == nil {
		t.Errorf("GET /slow?d=600ms got %v with -write-timeout %s: the server's WriteTimeout is not in force, and the test proves nothing", r, writeTimeout)
	}
}

// TestWebSocketClosedWithGoingAway: a WebSocket open at SIGTERM gets a close
// frame with status 1001; the client answers it, and the program exits 0.
func TestWebSocketClosedWithGoingAway(t *testing.T) {
	t.Parallel()
	p := demotest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), demotest.EventTimeout)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws://"+p.Addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	if err := conn.Write(ctx, websocket.MessageText, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := conn.Read(ctx); err != nil || string(msg) != "hello" {
		t.Fatalf("echo of hello: %q, %v", msg, err)
	}
	p.Signal(syscall.SIGTERM)
	// The library client answers the close frame as it reads it.
	if _, _, err := conn.Read(ctx); websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Errorf("after SIGTERM the client read %v, want a close with status 1001 (going away)", err)
	}
	if exit := p.WaitExit(); exit.Code != 0 {
		t.Errorf("%s, want exit status 0", exit)
	}
	if l, ok := p.Logged("websocket closed"); !ok || l.Attr("status") != "StatusGoingAway" {
		t.Errorf("want msg=\"websocket closed\" status=StatusGoingAway, got %q", l.Raw)
	}
}

// TestWebSocketThatNeverAnswersIsCut: a client that reads the close frame
// and never answers it does not hold the program past -shutdown-timeout:
// its connection is cut at the deadline and the program exits 1.
func TestWebSocketThatNeverAnswersIsCut(t *testing.T) {
	t.Parallel()
	const budget = 500 * time.Millisecond
	p := demotest.Start(t, "-shutdown-timeout", budget.String())
	ws := dialRaw(t, p)
	p.WaitLog("websocket opened")
	signalled := p.Signal(syscall.SIGTERM)
	if f, err := ws.next(demotest.EventTimeout); err != nil || f.closeCode() != 1001 {
		t.Fatalf("after SIGTERM the client read %v, %v, want a close frame with status 1001", f, err)
	}
	// No answer. The next thing the client reads is the end of the connection.
	if f, err := ws.next(demotest.EventTimeout); err == nil {
		t.Errorf("the server sent %v after its close frame, want the connection cut", f)
	}
	exit := p.WaitExit()
	if exit.Code != 1 {
		t.Errorf("%s, want exit status 1: the close handshake never finished", exit)
	}
	if took := exit.At.Sub(signalled); took < budget {
		t.Errorf("exited %s after SIGTERM, before its %s deadline: the client had no time to answer", took, budget)
	}
	if _, ok := p.Logged("shutdown forced"); !ok {
		t.Errorf("no msg=\"shutdown forced\":\n%s", p.Output())
	}
}

// TestWebSocketCutByCloseTimeoutExits1: with a budget
// longer than the 5s that coder/websocket's Close waits for the client's
// close frame, the library itself gives up and closes the connection. The
// client was cut all the same, so the program must not report a complete
// graceful shutdown: exit 1, with "shutdown forced", as at the deadline.
func TestWebSocketCutByCloseTimeoutExits1(t *testing.T) {
	t.Parallel()
	p := demotest.Start(t, "-shutdown-timeout", "1m")
	ws := dialRaw(t, p)
	p.WaitLog("websocket opened")
	p.Signal(syscall.SIGTERM)
	if f, err := ws.next(demotest.EventTimeout); err != nil || f.closeCode() != 1001 {
		t.Fatalf("after SIGTERM the client read %v, %v, want a close frame with status 1001", f, err)
	}
	// No answer. Close gives up after its 5s, well within the budget.
	exit, ok := p.AwaitExit(5*time.Second + demotest.EventTimeout)
	if !ok {
		t.Fatalf("no exit within Close's 5s and %s more", demotest.EventTimeout)
	}
	if exit.Code != 1 {
		t.Errorf("%s, want exit status 1: the client never answered, and its connection was cut", exit)
	}
	if _, ok := p.Logged("shutdown forced"); !ok {
		t.Errorf("no msg=\"shutdown forced\":\n%s", p.Output())
	}
}

// TestEchoInFlightIsDeliveredBeforeTheClose: a message whose echo is under
// way at SIGTERM (here: half sent, then finished after the signal) is echoed
// whole before the close frame goes out.
func TestEchoInFlightIsDeliveredBeforeTheClose(t *testing.T) {
	t.Parallel()
	p := demotest.Start(t)
	ws := dialRaw(t, p)
	p.WaitLog("websocket opened")
	ws.send(false, opText, []byte("hello, "))
	p.WaitLog("echo started")
	p.Signal(syscall.SIGTERM)
	p.WaitLog("websocket closing")
	ws.send(true, opContinuation, []byte("world"))
	echo, err := ws.next(demotest.EventTimeout)
	if err != nil || echo.opcode != opText || !echo.fin || string(echo.payload) != "hello, world" {
		t.Fatalf("the client read %v, %v, want the echo \"hello, world\" first", echo, err)
	}
	closing, err := ws.next(demotest.EventTimeout)
	if err != nil || closing.closeCode() != 1001 {
		t.Fatalf("after the echo the client read %v, %v, want a close frame with status 1001", closing, err)
	}
	ws.send(true, opClose, closing.payload[:2])
	if f, err := ws.next(demotest.EventTimeout); err == nil {
		t.Errorf("the server sent %v after the close handshake, want the end of the connection", f)
	}
	if exit := p.WaitExit(); exit.Code != 0 {
		t.Errorf("%s, want exit status 0", exit)
	}
	if l, ok := p.Logged("websocket closed"); !ok || l.Attr("status") != "StatusGoingAway" {
		t.Errorf("want msg=\"websocket closed\" status=StatusGoingAway, got %q", l.Raw)
	}
}

// TestWebSocketClosedByTheClientFirst: a client whose own close frame
// crosses the shutdown's. The client sends half a message, so the echo
// holds the socket and the close frame waits; then, after SIGTERM, its own
// close (1000) in the middle of the message, which RFC 6455 allows. The
// library answers it from the echo's read, so the shutdown's Close finds
// the socket closed (coder/websocket returns net.ErrClosed then): the log
// says the client closed, with its code, not that a handshake failed.
func TestWebSocketClosedByTheClientFirst(t *testing.T) {
	t.Parallel()
	p := demotest.Start(t)
	ws := dialRaw(t, p)
	p.WaitLog("websocket opened")
	ws.send(false, opText, []byte("hello, "))
	p.WaitLog("echo started")
	p.Signal(syscall.SIGTERM)
	p.WaitLog("websocket closing")
	ws.send(true, opClose, []byte{0x03, 0xe8}) // 1000, normal closure
	if f, err := ws.next(demotest.EventTimeout); err != nil || f.closeCode() != 1000 {
		t.Errorf("after its close the client read %v, %v, want the server's answer, a close with status 1000", f, err)
	}
	if exit := p.WaitExit(); exit.Code != 0 {
		t.Errorf("%s, want exit status 0", exit)
	}
	if l, ok := p.Logged("websocket close handshake failed"); ok {
		t.Errorf("the client closed first, and the server logged %q", l.Raw)
	}
	if l, ok := p.Logged("websocket closed"); !ok || l.Attr("status") != "StatusNormalClosure" || l.Attr("by") != "client" {
		t.Errorf("want msg=\"websocket closed\" status=StatusNormalClosure by=client, got %q:\n%s", l.Raw, p.Output())
	}
}

// An event, or how the stream ended (err).
type sseEvent struct {
	id, event, data, retry string
	err                    error
}

func (e sseEvent) String() string {
	if e.err != nil {
		return "end of stream: " + e.err.Error()
	}
	return fmt.Sprintf("id=%q event=%q data=%q retry=%q", e.id, e.event, e.data, e.retry)
}

type sseStream struct{ events chan sseEvent }

// openEvents opens /events with the given header pairs and reads its
// events in the background.
func openEvents(t *testing.T, p *demotest.Process, header ...string) *sseStream {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+p.Addr+"/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
		t.Fatalf("GET /events: %s, Content-Type %q", resp.Status, ct)
	}
	s := &sseStream{events: make(chan sseEvent, 1000)}
	go func() {
		r := bufio.NewReader(resp.Body)
		var e sseEvent
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				s.events <- sseEvent{err: err}
				return
			}
			field, value, _ := strings.Cut(strings.TrimSuffix(line, "\n"), ": ")
			switch field {
			case "":
				s.events <- e
				e = sseEvent{}
			case "id":
				e.id = value
			case "event":
				e.event = value
			case "data":
				e.data = value
			case "retry":
				e.retry = value
			}
		}
	}()
	return s
}

// next is the next event, or how the stream ended.
func (s *sseStream) next(t *testing.T) sseEvent {
	t.Helper()
	select {
	case e := <-s.events:
		return e
	case <-time.After(demotest.EventTimeout):
		t.Fatalf("no event within %s", demotest.EventTimeout)
		return sseEvent{}
	}
}
