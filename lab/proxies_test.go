package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gracefulgo/walkthrough/internal/frontproxy"
	"github.com/gracefulgo/walkthrough/internal/noretry"
)

// The proxies' table has a row per setup: answers of both methods, refused
// dials, the proxy's own 502 and 503, the rest as ambiguous, and the count
// against the POSTs answered; a setup that could not run is a row and a
// note. The step's README gets the same table.
func TestProxiesTable(t *testing.T) {
	m := frontproxy.Measurement{LoadResult: frontproxy.LoadResult{
		GETs:     noretry.Counts{noretry.OK: 10, noretry.EOF: 1},
		POSTs:    noretry.Counts{noretry.OK: 20, noretry.Status: 3, noretry.Refused: 2},
		Statuses: map[int]int{502: 2, 504: 1},
	}, Count: 21}
	r := &report{Proxies: []proxyRun{
		{Setup: proxySetups[0], Measurement: m},
		{Setup: proxySetups[2], Err: errors.New("haproxy not found:\napt-get install")},
	}}
	got := r.ProxiesTable()
	for _, want := range []string{
		"| " + proxySetups[0].Name + " | 30 | 2 | 2 | 2 | 21: 1 processed, unanswered |",
		"| " + proxySetups[2].Name + " | | | | | not run |",
		"- " + proxySetups[2].Name + ": haproxy not found: apt-get install",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
	if (&report{}).ProxiesTable() != "" {
		t.Error("a report without the scenario has a table")
	}
	path := filepath.Join(t.TempDir(), "lab-proxies.md")
	if err := r.writeProxiesDoc(path); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path); err != nil || !strings.Contains(string(b), got) {
		t.Errorf("the README's table (%v):\n%s", err, b)
	}
}
