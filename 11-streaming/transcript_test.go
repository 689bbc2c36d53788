package main

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/coder/websocket"
	"github.com/gracefulgo/walkthrough/internal/demotest"
)

// TestTranscripts runs the sessions this step's README shows and checks
// that a real run still goes that way, line for line. To rewrite
// testdata/*.transcript after a change: DEMOTEST_UPDATE=1 go test -run
// TestTranscripts ./11-streaming, then make docs. make demo-11 narrates
// them live.
func TestTranscripts(t *testing.T) {
	t.Parallel() // the sessions wait on the programs, not on the CPU
	demotest.Transcripts{Scripts: []demotest.Script{
		{Name: "events", Title: "an event stream open at SIGTERM", Run: func(s *demotest.Session) { eventsSession(t, s) }},
		{Name: "websocket", Title: "a WebSocket open at SIGTERM", Run: websocketSession},
		{Name: "websocket-cut", Title: "a WebSocket client that never answers the close", Run: func(s *demotest.Session) { websocketCutSession(t, s) }},
		demotest.PortInUseScript,
	}}.Run(t)
}

func eventsSession(t *testing.T, s *demotest.Session) {
	s.Start("-tick", "1h")
	s.Note("A client opens the event stream, as curl -N localhost:8080/events would. The first tick comes at once.")
	s.Client("GET /events")
	stream := openEvents(t, s.P)
	s.Expect("event stream opened")
	showEvent(s, stream.next(t))
	s.Note("A deploy sends SIGTERM while the stream is open.")
	s.Signal(syscall.SIGTERM)
	s.Expect("shutdown started")
	showEvent(s, stream.next(t))
	showEvent(s, stream.next(t))
	s.WaitExit()
}

// showEvent records an event as it came over the wire, or how the stream ended.
func showEvent(s *demotest.Session, e sseEvent) {
	if e.err != nil {
		s.Client("end of stream (" + e.err.Error() + ")")
		return
	}
	var fields []string
	for _, f := range [][2]string{{"id", e.id}, {"event", e.event}, {"retry", e.retry}, {"data", e.data}} {
		if f[1] != "" {
			fields = append(fields, f[0]+": "+f[1])
		}
	}
	s.Client(strings.Join(fields, " | "))
}

func websocketSession(s *demotest.Session) {
	s.Start()
	ctx, cancel := context.WithTimeout(context.Background(), demotest.EventTimeout)
	defer cancel()
	s.Note("A WebSocket client connects to /ws and sends hello; the echo comes back.")
	s.Client("connect /ws")
	conn, _, err := websocket.Dial(ctx, "ws://"+s.P.Addr+"/ws", nil)
	if err != nil {
		s.Client("cannot connect: " + err.Error())
		s.WaitExit()
		return
	}
	defer conn.CloseNow()
	s.Expect("websocket opened")
	s.Client("send hello")
	if err := conn.Write(ctx, websocket.MessageText, []byte("hello")); err != nil {
		s.Client("send failed: " + err.Error())
	}
	s.Expect("echo sent")
	if _, msg, err := conn.Read(ctx); err != nil {
		s.Client("read failed: " + err.Error())
	} else {
		s.Client(fmt.Sprintf("read %q", msg))
	}
	s.Signal(syscall.SIGTERM)
	s.Expect("shutdown started")
	s.Expect("websocket closing")
	_, _, err = conn.Read(ctx)
	s.Client(fmt.Sprintf("read a close frame: status %d (%s); the client library answers it", websocket.CloseStatus(err), websocket.CloseStatus(err)))
	s.WaitExit()
}

func websocketCutSession(t *testing.T, s *demotest.Session) {
	s.Start("-shutdown-timeout", "500ms")
	s.Note("A WebSocket client that reads the close frame and never answers it; the budget is 500ms.")
	s.Client("connect /ws")
	ws := dialRaw(t, s.P)
	s.Expect("websocket opened")
	s.Signal(syscall.SIGTERM)
	s.Expect("shutdown started")
	s.Expect("websocket closing")
	if f, err := ws.next(demotest.EventTimeout); err != nil {
		s.Client("read failed: " + err.Error())
	} else {
		s.Client(fmt.Sprintf("read %v, and does not answer", f))
	}
	if _, err := ws.next(demotest.EventTimeout); err != nil {
		s.Client("the connection ends: the server cut it")
	}
	s.WaitExit()
}
