package main

import (
	"testing"

	"github.com/gracefulgo/walkthrough/internal/demotest"
)

func TestMain(m *testing.M) { demotest.Main(m, main) }

// The lessons of this step are scenarios of the shared suite: the in-flight
// request completes (in-flight-drain), an idle keep-alive connection is
// closed (idle-keepalive-closed), and an expired deadline exits 1
// (deadline-expiry). Its flaws are known failures.
func TestScenarios(t *testing.T) {
	demotest.Suite{KnownToFail: map[string]string{
		demotest.SecondSignal: "the signal channel is read once; a second signal is swallowed",
		demotest.PortInUse:    "ListenAndServe's error is only logged; main waits for a signal that never comes",
	}}.Run(t)
}
