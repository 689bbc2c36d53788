package main

import (
	"fmt"
	"time"

	"github.com/gracefulgo/walkthrough/internal/noretry"
)

// Outcome is how a request ended, as its client saw it.
type Outcome int

const (
	// Completed: a 200 and the whole body.
	Completed Outcome = iota
	// Dropped: the connection was open, so the server had accepted it,
	// but the request failed: reset, closed early, or a status other than
	// 200.
	Dropped
	// TurnedAway: the client could not connect (refused).
	TurnedAway
	// Idle is no request: a kept-alive connection, from its last response
	// until it was closed under the client. It is drawn, not counted.
	Idle
)

func (o Outcome) String() string {
	switch o {
	case Completed:
		return "completed"
	case Dropped:
		return "dropped"
	case TurnedAway:
		return "turned away"
	case Idle:
		return "idle connection"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// outcome is what the lab's figures call a request of the given kind: only
// a refused dial is turned away (the server never saw it); every other
// failure happened on an open connection, so the server had accepted it.
func outcome(k noretry.Kind) Outcome {
	switch k {
	case noretry.OK:
		return Completed
	case noretry.Refused:
		return TurnedAway
	}
	return Dropped
}

// Request is one request (or idle connection) on a timeline. Lane is the
// row it is drawn on: a client that sends several requests keeps one lane.
type Request struct {
	Lane       int
	Start, End time.Time
	Outcome    Outcome
	Err        string // what went wrong, for the curious; not reported
	Pid        int    // the process that answered, when its answer names it (GET /)
}

// Run is everything the lab saw while one step went through one scenario.
type Run struct {
	Step, Scenario string
	Requests       []Request

	Signal time.Time // when SIGTERM was sent
	// The listener closed between ListenerOpen (when the last probe dial
	// that connected began, or Signal when none did) and ListenerClosed
	// (when the first refused probe dial returned).
	ListenerOpen, ListenerClosed time.Time
	Exit                         time.Time // when the process had exited
	ShutdownLogged               time.Time // when the lab read "shutdown started", or zero
	ExitStatus                   string    // "0", "1", "killed by SIGTERM", ...

	Err error // the run went wrong: the step did not start, did not exit...
}

// Figures are the numbers the table reports for one run.
type Figures struct {
	Completed, Dropped, TurnedAway int

	// SignalToListenerClosed is when the first probe was refused, counted
	// from the signal; Resolution bounds how much earlier the listener may
	// really have closed.
	SignalToListenerClosed, Resolution time.Duration
	SignalToExit                       time.Duration
	// LastResponseToExit is from the last completed response after the
	// signal to the exit. HasLastResponse is false when no response
	// completed after the signal: nothing was left to drain.
	LastResponseToExit time.Duration
	HasLastResponse    bool

	ExitStatus string
}

// Figures computes the run's figures. Requests are counted whether they
// ended before or after the signal; idle connections are not requests.
func (r Run) Figures() Figures {
	f := Figures{ExitStatus: r.ExitStatus}
	var lastResponse time.Time
	for _, req := range r.Requests {
		switch req.Outcome {
		case Completed:
			f.Completed++
			if req.End.After(r.Signal) && req.End.After(lastResponse) {
				lastResponse = req.End
			}
		case Dropped:
			f.Dropped++
		case TurnedAway:
			f.TurnedAway++
		}
	}
	f.SignalToListenerClosed = r.ListenerClosed.Sub(r.Signal)
	open := r.ListenerOpen
	if open.Before(r.Signal) {
		open = r.Signal
	}
	f.Resolution = r.ListenerClosed.Sub(open)
	f.SignalToExit = r.Exit.Sub(r.Signal)
	if !lastResponse.IsZero() {
		f.HasLastResponse = true
		f.LastResponseToExit = r.Exit.Sub(lastResponse)
	}
	return f
}

// formatDuration writes a duration for the table: two decimals below 10 ms,
// whole milliseconds below a second, then seconds with two decimals.
func formatDuration(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", ms)
	case d < time.Second:
		return fmt.Sprintf("%.0f ms", ms)
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

// shutdownPolls is when http.Server.Shutdown checks for quiescence, counted
// from its start, without the 10% jitter it adds to each wait: at once,
// then after waits of 1 ms, doubling to at most 500 ms (the constant
// shutdownPollIntervalMax in net/http/server.go). A connection that falls
// idle between two checks waits for the next one.
func shutdownPolls(n int) []time.Duration {
	const pollIntervalMax = 500 * time.Millisecond
	polls := make([]time.Duration, 0, n)
	var at time.Duration
	interval := time.Millisecond
	for range n {
		polls = append(polls, at)
		at += interval
		interval = min(2*interval, pollIntervalMax)
	}
	return polls
}
