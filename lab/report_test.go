package main

import (
	"encoding/xml"
	"errors"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// twoSteps is a report on a step that ran every scenario (the same drained
// run each time) and one that did not build.
func twoSteps() *report {
	ran := &step{Name: "04-notifycontext", UsesShutdown: true}
	for _, sc := range scenarios {
		r := drained()
		r.Scenario = sc.Name
		ran.Runs = append(ran.Runs, r)
	}
	ran.Runs[3].Requests = nil
	ran.Runs[3].Err = errors.New("did not exit\nin time")
	broken := &step{Name: "09-broken", BuildErr: "syntax error"}
	return &report{Steps: []*step{ran, broken}}
}

func TestTable(t *testing.T) {
	r := twoSteps()
	want := `| step | completed | dropped | turned away | signal → listener closed | last response → exit | signal → exit | exit status |
|---|--:|--:|--:|--:|--:|--:|---|
| [04-notifycontext](../04-notifycontext/) | 3 | 1 | 2 | 0.50 ms | 500 ms | 900 ms | 0 |
| [09-broken](../09-broken/) | did not build | | | | | | |
`
	if got := r.table(0); got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
	last := r.table(3)
	for _, line := range []string{
		"| [04-notifycontext](../04-notifycontext/) | 0 | 0 | 0 | 0.50 ms | – | 900 ms | 0 |",
		"- 04-notifycontext: did not exit in time",
	} {
		if !strings.Contains(last, line+"\n") {
			t.Errorf("table of a run with no requests and an error lacks %q:\n%s", line, last)
		}
	}
}

func TestTail(t *testing.T) {
	r := twoSteps()
	other := &step{Name: "02-listener", Runs: []Run{drained()}}
	other.Runs[0].Scenario = scenarios[0].Name
	other.Runs[0].Exit = ms(401)
	r.Steps = append(r.Steps, other)
	if got := r.Tail(scenarios[0].Name, true); got != "500 ms" {
		t.Errorf("Tail(Shutdown steps) = %q, want 500 ms", got)
	}
	if got := r.Tail(scenarios[0].Name, false); got != "1.00 ms" {
		t.Errorf("Tail(other steps) = %q, want 1.00 ms", got)
	}
	if got := r.ShutdownSteps(); got != "04" {
		t.Errorf("ShutdownSteps = %q, want 04 (09 did not build)", got)
	}
}

func TestTicks(t *testing.T) {
	for _, tc := range []struct{ from, to time.Duration }{
		{-640 * time.Millisecond, 2 * time.Second},
		{-3 * time.Millisecond, 1100 * time.Millisecond},
		{-20 * time.Microsecond, 2500 * time.Microsecond},
	} {
		got := ticks(tc.from, tc.to)
		if len(got) < 4 || len(got) > 12 {
			t.Errorf("ticks(%v, %v) = %v: want 4 to 12", tc.from, tc.to, got)
		}
		if !slices.Contains(got, 0) {
			t.Errorf("ticks(%v, %v) = %v: want one at the signal, 0", tc.from, tc.to, got)
		}
		for i, tick := range got {
			if tick < tc.from || tick > tc.to {
				t.Errorf("ticks(%v, %v): %v is outside", tc.from, tc.to, tick)
			}
			if i > 0 && tick-got[i-1] != got[1]-got[0] {
				t.Errorf("ticks(%v, %v) = %v: uneven", tc.from, tc.to, got)
			}
		}
	}
	if got := ticks(-640*time.Millisecond, 2*time.Second)[0]; got != -500*time.Millisecond {
		t.Errorf("first tick before the signal = %v, want -500ms", got)
	}
}

// svgElement is the little of an SVG element the test looks at.
type svgElement struct {
	name  string
	attrs map[string]string
}

func parseSVG(t *testing.T, doc string) []svgElement {
	t.Helper()
	dec := xml.NewDecoder(strings.NewReader(doc))
	var out []svgElement
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("the SVG is not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			e := svgElement{name: se.Name.Local, attrs: map[string]string{}}
			for _, a := range se.Attr {
				e.attrs[a.Name.Local] = a.Value
			}
			out = append(out, e)
		}
	}
}

func TestTimeline(t *testing.T) {
	r := twoSteps()
	s := r.Steps[0]
	ax := axes(r.Steps)
	elements := parseSVG(t, timeline(s, ax))

	// One bar per request, coloured by outcome; the legend adds one more
	// of each colour.
	bars := map[string]int{}
	lines := map[string][]float64{}
	for _, e := range elements {
		switch e.name {
		case "rect":
			bars[e.attrs["fill"]]++
		case "line":
			x, _ := strconv.ParseFloat(e.attrs["x1"], 64)
			lines[e.attrs["stroke"]] = append(lines[e.attrs["stroke"]], x)
		}
	}
	want := map[Outcome]int{}
	for _, run := range s.Runs {
		for _, req := range run.Requests {
			want[req.Outcome]++
		}
	}
	for o, n := range want {
		if got := bars[outcomeColour[o]] - 1; got != n {
			t.Errorf("%d bars coloured %s, want %d", got, o, n)
		}
	}
	// Each panel marks the signal, the listener's closing and the exit
	// where the axis puts them; the legend draws each mark once more.
	a := ax[0]
	for i, at := range []time.Duration{0, 500 * time.Microsecond, 900 * time.Millisecond} {
		xs := lines[marks[i].colour]
		if len(xs) != len(s.Runs)+1 {
			t.Fatalf("%d %s lines, want %d", len(xs), marks[i].name, len(s.Runs)+1)
		}
		if x := xs[1]; math.Abs(x-a.x(at)) > 0.1 {
			t.Errorf("%s drawn at x=%.1f, want %.1f", marks[i].name, x, a.x(at))
		}
	}
}

func TestAxis(t *testing.T) {
	a := axis{from: -100 * time.Millisecond, to: 300 * time.Millisecond, left: 70, width: 800}
	for at, want := range map[time.Duration]float64{-100 * time.Millisecond: 70, 0: 270, 300 * time.Millisecond: 870} {
		if got := a.x(at); math.Abs(got-want) > 1e-9 {
			t.Errorf("x(%v) = %v, want %v", at, got, want)
		}
	}
	// The axes cover every step's runs: the earliest start to the latest end.
	ax := axes(twoSteps().Steps)
	if a := ax[0]; a.from > -300*time.Millisecond || a.to < 900*time.Millisecond {
		t.Errorf("axis %v to %v does not cover -300ms to 900ms", a.from, a.to)
	}
}

func TestKeepGenerated(t *testing.T) {
	old := "# Old\n<!-- gen:gosrc a#/x/ -->\nexcerpt 1\nexcerpt 2\n<!-- gen:end -->\nold prose\n<!-- gen:gosrc gone#/y/ -->\ny\n<!-- gen:end -->\n"
	doc := "# New\n<!-- gen:gosrc a#/x/ -->\n<!-- gen:end -->\nnew prose\n"
	got, missing := keepGenerated(doc, old)
	want := "# New\n<!-- gen:gosrc a#/x/ -->\nexcerpt 1\nexcerpt 2\n<!-- gen:end -->\nnew prose\n"
	if got != want || missing {
		t.Errorf("keepGenerated = %q, missing %t; want %q, nothing missing", got, missing, want)
	}
	if _, missing := keepGenerated(doc+"<!-- gen:gosrc b#/z/ -->\n<!-- gen:end -->\n", old); !missing {
		t.Error("a part the old page lacks is not reported missing")
	}
}
