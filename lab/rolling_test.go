package main

import (
	"encoding/xml"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gracefulgo/walkthrough/internal/kubesim"
)

// aRollingRun is a made-up rolling update of one replica that drained
// with a delay, and two failures.
func aRollingRun() rollingRun {
	at := func(ms int) time.Time { return time.Unix(1000, 0).Add(time.Duration(ms) * time.Millisecond) }
	return rollingRun{
		Step:  "10-kubernetes",
		Began: at(0),
		Ended: at(3000),
		Result: kubesim.Result{OK: 90, Failures: []kubesim.Failure{
			{At: at(1200), Kind: kubesim.Refused}, {At: at(2500), Kind: kubesim.EOF, Reused: true},
		}},
		Events: []kubesim.Event{
			{At: at(-500), Replica: "pod-1", What: kubesim.EventStarted},
			{At: at(-400), Replica: "pod-1", What: kubesim.EventReady},
			{At: at(0), Replica: "pod-2", What: kubesim.EventStarted},
			{At: at(100), Replica: "pod-2", What: kubesim.EventReady},
			{At: at(100), Replica: "pod-1", What: kubesim.EventSIGTERM},
			{At: at(1100), Replica: "pod-1", What: kubesim.EventRemoved},
			{At: at(2900), Replica: "pod-1", What: kubesim.EventExited},
		},
		Replicas: []rollingReplica{
			{Name: "pod-1", DelayStarted: at(100), DelayEnded: at(2100), Exit: "0"},
			{Name: "pod-2"},
		},
	}
}

func TestRollingTable(t *testing.T) {
	run := aRollingRun()
	broken := rollingRun{Step: "09-broken", Err: errors.New("did not start:\nno")}
	got := rollingTable([]rollingRun{run, broken})
	for _, line := range []string{
		"| step | completed | failed | refused | reset | EOF | status | other | old replicas' exits |",
		"| [10-kubernetes](../10-kubernetes/) | 90 | 2 | 1 | 0 | 1 | 0 | 0 | 0,  |",
		"| [09-broken](../09-broken/) | 0 | 0 | 0 | 0 | 0 | 0 | 0 |  |",
		"- 09-broken: did not start: no",
	} {
		if !strings.Contains(got, line+"\n") {
			t.Errorf("the table lacks %q:\n%s", line, got)
		}
	}
}

// TestRollingSVG: the timeline is well-formed XML with, for the drained
// replica, its four phases in order, its SIGTERM and endpoint removal, and
// a tick for each failure.
func TestRollingSVG(t *testing.T) {
	svg := rollingSVG(aRollingRun())
	if err := xml.Unmarshal([]byte(svg), new(any)); err != nil {
		t.Fatalf("not well-formed: %v", err)
	}
	var phases []string
	for _, part := range strings.Split(svg, "<title>pod-1: ")[1:] {
		phases = append(phases, part[:strings.Index(part, "<")])
	}
	want := []string{"starting, 100 ms", "serving, 500 ms", "drain delay, 2.00 s", "drain, 800 ms", "endpoint removed at 1.10 s", "SIGTERM at 100 ms"}
	if strings.Join(phases, "; ") != strings.Join(want, "; ") {
		t.Errorf("pod-1's marks: %q, want %q", phases, want)
	}
	for _, tick := range []string{"<title>refused at 1.20 s</title>", "<title>EOF at 2.50 s</title>"} {
		if !strings.Contains(svg, tick) {
			t.Errorf("no tick %s", tick)
		}
	}
}
