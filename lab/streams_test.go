package main

import (
	"errors"
	"io"
	"os"
	"syscall"
	"testing"
)

// TestStreamsOnAStepWithoutThem: the fake step has neither /events nor
// /ws; the streams scenario reports their 404s and the plain drain.
func TestStreamsOnAStepWithoutThem(t *testing.T) {
	t.Setenv(fakeStepEnv, "1")
	runs := runStreams(&step{Name: "00-fake", Bin: os.Args[0], HasShutdownTimeout: true})
	if len(runs) != 1 {
		t.Fatalf("%d runs, want 1 (only step 05 gets a second)", len(runs))
	}
	r := runs[0]
	if r.Note != "" || r.Events != "404 Not Found" || r.Socket != "404 Not Found" || r.Slow != "" || r.ExitStatus != "0" {
		t.Errorf("got %+v, want both routes 404, no /slow, exit 0", r)
	}
}

func TestDescribeStreamEnd(t *testing.T) {
	for _, c := range []struct {
		before, after int
		shutdown      bool
		err           error
		want          string
	}{
		{1, 0, true, io.EOF, "1 tick, the shutdown event, then a clean end"},
		{3, 2, false, io.ErrUnexpectedEOF, "5 ticks, then cut mid-stream"},
		{2, 0, false, syscall.ECONNRESET, "2 ticks, then cut mid-stream"},
		{0, 0, false, errors.New("boom"), "0 ticks, then error: boom"},
	} {
		if got := describeStreamEnd(c.before, c.after, c.shutdown, c.err); got != c.want {
			t.Errorf("describeStreamEnd(%d, %d, %v, %v) = %q, want %q", c.before, c.after, c.shutdown, c.err, got, c.want)
		}
	}
}
