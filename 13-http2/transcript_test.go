package main

import (
	"testing"

	"github.com/gracefulgo/walkthrough/internal/demotest"
)

// TestTranscripts runs the sessions this step's README shows and checks
// that a real run still goes that way, line for line. To rewrite
// testdata/*.transcript after a change: DEMOTEST_UPDATE=1 go test -run
// TestTranscripts ./13-http2, then make docs. make demo-13 narrates them live.
func TestTranscripts(t *testing.T) {
	demotest.Transcripts{Scripts: []demotest.Script{demotest.DrainScript}}.Run(t)
}
