package main

import (
	"testing"

	"github.com/gracefulgo/walkthrough/internal/demotest"
)

func TestMain(m *testing.M) { demotest.Main(m, main) }

// Without a SIGHUP the step is step 05: every scenario of the shared suite
// holds. new-conns-refused holds only because SIGTERM stops the upgrader,
// which closes its own copy of the listening socket (see the README).
func TestScenarios(t *testing.T) {
	t.Parallel()
	demotest.Suite{}.Run(t)
}
