package main

import (
	"testing"

	"github.com/gracefulgo/walkthrough/internal/demotest"
)

func TestMain(m *testing.M) { demotest.Main(m, main) }

// Step 05's guarantees hold with HTTP/2 beside HTTP/1.1 on the port: the
// scenarios speak HTTP/1.1, and the connection that opens without HTTP/2's
// preface is served as before. What HTTP/2 adds is in h2_test.go.
func TestScenarios(t *testing.T) {
	demotest.Suite{}.Run(t)
}
