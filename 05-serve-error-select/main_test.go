package main

import (
	"testing"

	"github.com/gracefulgo/walkthrough/internal/demotest"
)

func TestMain(m *testing.M) { demotest.Main(m, main) }

// The lessons of this step are scenarios of the shared suite: a port in
// use exits 1 at once, naming the address (port-in-use), and the drain
// still works (in-flight-drain). It has no known failure left.
func TestScenarios(t *testing.T) {
	demotest.Suite{}.Run(t)
}
