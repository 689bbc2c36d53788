package main

import (
	"fmt"
	"os"
	"testing"

	"github.com/gracefulgo/walkthrough/internal/demotest"
	"github.com/gracefulgo/walkthrough/internal/grpcsuite"
)

// pitfallEnv names the program a re-executed test binary runs instead of
// the step: one of pitfallPrograms, each the smallest server that shows one
// of the pitfalls in pitfalls_test.go.
const pitfallEnv = "STEP14_PITFALL"

// pitfallPrograms is filled by pitfalls_test.go.
var pitfallPrograms = map[string]func(){}

func TestMain(m *testing.M) {
	demotest.Main(m, func() {
		name := os.Getenv(pitfallEnv)
		if name == "" {
			main()
			return
		}
		program, ok := pitfallPrograms[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "no pitfall program %q\n", name)
			os.Exit(2)
		}
		program()
	})
}

func TestScenarios(t *testing.T) {
	grpcsuite.Suite{NotApplicable: map[string]string{
		demotest.ConnectionClose: "Connection: close is an HTTP/1.1 header; gRPC runs on HTTP/2, where the server ends a connection with GOAWAY, which in-flight-drain and idle-keepalive-closed check",
	}}.Run(t)
}
