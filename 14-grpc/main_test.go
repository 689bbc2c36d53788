package main

import (
	"fmt"
	"os"
	"testing"

	"github.com/gracefulgo/walkthrough/internal/demotest"
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
