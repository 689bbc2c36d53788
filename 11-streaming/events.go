package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"time"
)

// reconnectAfter is the retry: hint of a stream's last event: how long a
// client waits before it connects again, to the next server after a deploy.
const reconnectAfter = time.Second

// events serves /events, a Server-Sent Events stream: a tick event at once
// and then every tick, each with the pid and a counter, until the client
// goes away or goingAway is cancelled. Then it sends a last "shutdown" event
// and returns, so that the response ends and Shutdown can finish.
//
// Each event has an id: a client that reconnects (EventSource does so by
// itself) sends the last one it saw in Last-Event-ID, and the count goes on
// from there, on this server or the next.
func events(goingAway context.Context, tick, writeTimeout time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// The server's WriteTimeout is a deadline for the whole response,
		// counted from the request: it would cut every stream that lasts
		// longer. The controller moves the deadline on at each event, so a
		// stream lives as long as each event is written in time.
		rc := http.NewResponseController(w)
		next := int64(1)
		if last, err := strconv.ParseInt(r.Header.Get("Last-Event-ID"), 10, 32); err == nil && last >= 0 {
			next = last + 1
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-store")
		if r.Method == http.MethodHead {
			return // the headers are the whole answer: no stream to hold open
		}
		slog.Info("event stream opened", "from", next)

		ticker := time.NewTicker(tick)
		defer ticker.Stop()
		for n := next; ; n++ {
			err := send(w, rc, writeTimeout, fmt.Sprintf("id: %d\nevent: tick\ndata: {\"pid\":%d,\"tick\":%d}\n\n", n, os.Getpid(), n))
			if err != nil {
				slog.Info("event stream ended", "sent", n-next, "err", err)
				return
			}
			select {
			case <-ticker.C:
			case <-r.Context().Done():
				slog.Info("event stream ended", "sent", n-next+1, "cause", context.Cause(r.Context()))
				return
			case <-goingAway.Done():
				// The last event says why the stream ends and when to come
				// back. It has no id, so a client resumes after the last tick.
				last := fmt.Sprintf("event: shutdown\nretry: %d\ndata: {\"pid\":%d}\n\n", reconnectAfter.Milliseconds(), os.Getpid())
				if err := send(w, rc, writeTimeout, last); err != nil {
					slog.Info("event stream ended", "sent", n-next+1, "err", err)
					return
				}
				slog.Info("event stream ended", "sent", n-next+1, "cause", "shutdown")
				return
			}
		}
	}
}

// send writes one event with a write deadline of its own, and flushes it so
// that the client has it now rather than when a buffer fills.
func send(w io.Writer, rc *http.ResponseController, timeout time.Duration, event string) error {
	if err := rc.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	if _, err := io.WriteString(w, event); err != nil {
		return err
	}
	return rc.Flush()
}
