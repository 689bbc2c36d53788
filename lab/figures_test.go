package main

import (
	"context"
	"errors"
	"net"
	"slices"
	"syscall"
	"testing"
	"time"
)

// t0 is the signal in the synthetic runs; ms places events around it.
var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func ms(f float64) time.Time { return t0.Add(time.Duration(f * float64(time.Millisecond))) }

// drained is a run of a step that drained: some requests completed before
// the signal, some after, one was dropped, clients were turned away, and
// an idle connection was closed.
func drained() Run {
	return Run{
		Signal:       ms(0),
		ListenerOpen: ms(0.2), ListenerClosed: ms(0.5),
		Exit:       ms(900),
		ExitStatus: "0",
		Requests: []Request{
			{Lane: 0, Start: ms(-300), End: ms(-200), Outcome: Completed}, // before the signal
			{Lane: 0, Start: ms(-200), End: ms(400), Outcome: Completed},  // the last response
			{Lane: 1, Start: ms(-100), End: ms(300), Outcome: Completed},
			{Lane: 1, Start: ms(300), End: ms(300.1), Outcome: TurnedAway},
			{Lane: 2, Start: ms(-50), End: ms(600), Outcome: Dropped}, // later than the last response, but no response
			{Lane: 2, Start: ms(600), End: ms(600.1), Outcome: TurnedAway},
			{Lane: 3, Start: ms(-10), End: ms(5), Outcome: Idle},
		},
	}
}

func TestFigures(t *testing.T) {
	got := drained().Figures()
	want := Figures{
		Completed: 3, Dropped: 1, TurnedAway: 2,
		SignalToListenerClosed: 500 * time.Microsecond,
		Resolution:             300 * time.Microsecond,
		SignalToExit:           900 * time.Millisecond,
		LastResponseToExit:     500 * time.Millisecond, HasLastResponse: true,
		ExitStatus: "0",
	}
	if got != want {
		t.Errorf("Figures() =\n%+v, want\n%+v", got, want)
	}
}

func TestFiguresWithoutAResponseAfterTheSignal(t *testing.T) {
	// Step 01 under the in-flight scenario: killed, every request dropped,
	// and the port refused once the process was gone. No probe connected.
	r := Run{
		Signal:         ms(0),
		ListenerClosed: ms(2),
		Exit:           ms(1.5),
		ExitStatus:     "killed by SIGTERM",
		Requests: []Request{
			{Start: ms(-300), End: ms(-250), Outcome: Completed},
			{Start: ms(-1), End: ms(1.4), Outcome: Dropped},
		},
	}
	f := r.Figures()
	if f.HasLastResponse {
		t.Errorf("HasLastResponse = true (%v), want false: the only response came before the signal", f.LastResponseToExit)
	}
	if f.Resolution != 2*time.Millisecond {
		t.Errorf("Resolution = %v, want 2ms: with no probe connected, the window starts at the signal", f.Resolution)
	}
	if f.Completed != 1 || f.Dropped != 1 || f.TurnedAway != 0 {
		t.Errorf("counts = %d/%d/%d, want 1 completed, 1 dropped", f.Completed, f.Dropped, f.TurnedAway)
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		310 * time.Microsecond:    "0.31 ms",
		9994 * time.Microsecond:   "9.99 ms",
		10 * time.Millisecond:     "10 ms",
		487600 * time.Microsecond: "488 ms",
		1061 * time.Millisecond:   "1.06 s",
		2 * time.Second:           "2.00 s",
	} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestShutdownPolls(t *testing.T) {
	// net/http's Shutdown: check at once, then wait 1 ms, doubling to 500.
	want := []time.Duration{0, 1, 3, 7, 15, 31, 63, 127, 255, 511, 1011, 1511}
	for i := range want {
		want[i] *= time.Millisecond
	}
	if got := shutdownPolls(len(want)); !slices.Equal(got, want) {
		t.Errorf("shutdownPolls = %v, want %v", got, want)
	}
}

func TestProbeListener(t *testing.T) {
	// The listener answers three probes, then refuses: the window is from
	// the start of the third probe to the return of the fourth.
	var starts []time.Time
	dial := func() error {
		starts = append(starts, time.Now())
		if len(starts) > 3 {
			return syscall.ECONNREFUSED
		}
		return nil
	}
	hurry := make(chan struct{})
	close(hurry) // no pauses: the test waits for no clock
	lastOpen, firstRefused := probeListener(dial, hurry, nil)
	if len(starts) != 4 {
		t.Fatalf("%d dials, want 4: the probe must stop at the first refusal", len(starts))
	}
	if !lastOpen.After(starts[1]) || lastOpen.After(starts[2]) {
		t.Errorf("lastOpen is not when the third dial began")
	}
	if firstRefused.Before(starts[3]) {
		t.Errorf("firstRefused is before the refused dial began")
	}
}

func TestProbeListenerStops(t *testing.T) {
	stop := make(chan struct{})
	close(stop)
	dials := 0
	lastOpen, firstRefused := probeListener(func() error { dials++; return nil }, nil, stop)
	if dials != 1 || lastOpen.IsZero() || !firstRefused.IsZero() {
		t.Errorf("after stop: %d dials, lastOpen %v, firstRefused %v; want 1 dial, a lastOpen and no refusal", dials, lastOpen, firstRefused)
	}
}

func TestProbeListenerRefusedAtOnce(t *testing.T) {
	lastOpen, firstRefused := probeListener(func() error { return errors.New("refused") }, nil, nil)
	if !lastOpen.IsZero() || firstRefused.IsZero() {
		t.Errorf("lastOpen %v, firstRefused %v: want no open probe and a refusal", lastOpen, firstRefused)
	}
}

func TestProbeListenerTimeout(t *testing.T) {
	// A dial that times out proves neither an open nor a closed listener:
	// the probe dials again, and the refusal after it ends the probe.
	timeout := &net.OpError{Op: "dial", Net: "tcp", Err: context.DeadlineExceeded} // as net.DialTimeout's
	results := []error{nil, timeout, syscall.ECONNREFUSED}
	dials := 0
	hurry := make(chan struct{})
	close(hurry)
	lastOpen, firstRefused := probeListener(func() error { dials++; return results[dials-1] }, hurry, nil)
	if dials != 3 || lastOpen.IsZero() || firstRefused.IsZero() {
		t.Errorf("%d dials, lastOpen %v, firstRefused %v; want 3 dials, the first open, the third refused", dials, lastOpen, firstRefused)
	}
}

// TestRestartFigures: the restart scenario's row, on made-up requests.
func TestRestartFigures(t *testing.T) {
	at := func(ms int) time.Time { return time.Unix(0, 0).Add(time.Duration(ms) * time.Millisecond) }
	run := restartRun{OldPid: 1, Restart: at(100), Requests: []Request{
		{Start: at(0), End: at(90), Outcome: Completed, Pid: 1},
		{Start: at(95), End: at(400), Outcome: Completed, Pid: 1}, // the slow one, on the old process
		{Start: at(101), End: at(120), Outcome: Completed, Pid: 2},
		{Start: at(110), End: at(111), Outcome: TurnedAway},
		{Start: at(105), End: at(106), Outcome: Dropped},
		{Start: at(300), End: at(310), Outcome: Completed, Pid: 2},
	}}
	f := run.figures()
	want := restartFigures{Completed: 4, Dropped: 1, TurnedAway: 1, ByOld: 2, ByNew: 2,
		LongestGap: 190 * time.Millisecond, Overlap: 280 * time.Millisecond}
	if f != want {
		t.Errorf("figures = %+v, want %+v", f, want)
	}
}
