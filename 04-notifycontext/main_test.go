package main

import (
	"syscall"
	"testing"

	"github.com/gracefulgo/walkthrough/internal/demotest"
)

func TestMain(m *testing.M) { demotest.Main(m, main) }

// TestCauseNamesSignal: the "shutdown started" line carries
// context.Cause, which since Go 1.26 names the signal that was received.
func TestCauseNamesSignal(t *testing.T) {
	for sig, want := range map[syscall.Signal]string{
		syscall.SIGINT:  "interrupt signal received",
		syscall.SIGTERM: "terminated signal received",
	} {
		t.Run(want, func(t *testing.T) {
			t.Parallel()
			p := demotest.Start(t)
			p.Signal(sig)
			if got := p.WaitLog("shutdown started").Attr("cause"); got != want {
				t.Errorf("shutdown started cause=%q, want %q", got, want)
			}
			if exit := p.WaitExit(); exit.Code != 0 {
				t.Errorf("%s, want exit status 0", exit)
			}
		})
	}
}

// The second-signal scenario is this step's other lesson: stop() hands
// the next signal back to Go's default action.
func TestScenarios(t *testing.T) {
	demotest.Suite{KnownToFail: map[string]string{
		demotest.PortInUse: "ListenAndServe's error is only logged; main waits for a signal that never comes",
	}}.Run(t)
}
