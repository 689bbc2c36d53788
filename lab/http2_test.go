package main

import (
	"encoding/xml"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The POST race's table has a row per client with its figures, and an
// error as a note below; its picture is well-formed SVG with a bar per
// figure.
func TestPOSTTable(t *testing.T) {
	r := &report{POSTRaces: []postRun{
		{Client: postClientsTried[0], Answered: 100, Refused: 16, Ambiguous: 3, Processed: 100},
		{Client: postClientsTried[2], Answered: 90, Refused: 16, Processed: 90, Err: errors.New("the step exited\nunder the load")},
	}}
	got := r.POSTTable()
	for _, want := range []string{
		"| HTTP/1.1, `POST` | 100 | 16 | 3 | 100 |",
		"| h2c, `POST` | 90 | 16 | 0 | 90 |",
		"- h2c, `POST`: the step exited under the load",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
	if (&report{}).POSTTable() != "" {
		t.Error("a report without the scenario has a table")
	}
	dir := t.TempDir()
	if err := r.writePOSTSVG(dir); err != nil {
		t.Fatal(err)
	}
	svg, err := os.ReadFile(filepath.Join(dir, "post-race.svg"))
	if err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(svg, new(struct{})); err != nil {
		t.Errorf("post-race.svg is not XML: %v", err)
	}
	if n := strings.Count(string(svg), "<rect"); n != 4 {
		t.Errorf("%d bars, want 4 (refused and ambiguous per client)", n)
	}
}
