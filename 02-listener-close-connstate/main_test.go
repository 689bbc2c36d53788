package main

import (
	"testing"

	"github.com/gracefulgo/walkthrough/internal/demotest"
)

func TestMain(m *testing.M) { demotest.Main(m, main) }

// The lessons of this step are scenarios of the shared suite: the in-flight
// request completes (in-flight-drain), new connections are refused
// (new-conns-refused), and a Connection: close request does not hang the
// exit (connection-close). Its flaws are known failures.
func TestScenarios(t *testing.T) {
	demotest.Suite{KnownToFail: map[string]string{
		demotest.IdleKeepAliveClosed: "nothing closes an idle keep-alive connection, so it holds the drain to the deadline",
		demotest.SecondSignal:        "the signal channel is read once; a second signal is swallowed",
	}}.Run(t)
}
