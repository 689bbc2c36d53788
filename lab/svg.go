package main

import (
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"
	"time"
)

// The colours of the outcomes and of the marks, shared by bars and legend.
var (
	outcomeColour = map[Outcome]string{
		Completed:  "#2e7d32",
		Dropped:    "#c62828",
		TurnedAway: "#ef6c00",
		Idle:       "#b0bec5",
	}
	marks = []struct{ name, colour, dash string }{
		{"SIGTERM sent", "#000000", ""},
		{"listener closed", "#1565c0", "6 3"},
		{"process exited", "#8e24aa", "2 2"},
	}
)

// Layout of a timeline, in SVG units (pixels).
const (
	svgWidth    = 960
	plotLeft    = 70 // room for the lane labels
	plotRight   = 20
	rowHeight   = 8
	barHeight   = 6
	panelTop    = 34 // the panel's title, then the exit's label
	panelBottom = 34 // the time axis and a gap
	legendTop   = 30
)

// axis maps times relative to the signal to x positions.
type axis struct {
	from, to time.Duration
	left     float64
	width    float64
}

func (a axis) x(d time.Duration) float64 {
	return a.left + float64(d-a.from)/float64(a.to-a.from)*a.width
}

// span is the time range, relative to the signal, that a run covers: its
// first request's start to its exit.
func span(r Run) (from, to time.Duration) {
	from, to = 0, r.Exit.Sub(r.Signal)
	for _, req := range r.Requests {
		from = min(from, req.Start.Sub(r.Signal))
		to = max(to, req.End.Sub(r.Signal))
	}
	return from, to
}

// ticks returns round times from..to, about six of them: multiples of 1, 2
// or 5 times a power of ten milliseconds (or microseconds).
func ticks(from, to time.Duration) []time.Duration {
	if to <= from {
		return []time.Duration{from}
	}
	raw := float64(to-from) / 6
	step := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*step >= raw {
			step *= m
			break
		}
	}
	s := time.Duration(step)
	first := from / s * s // rounded toward zero
	if first < from {
		first += s
	}
	var out []time.Duration
	for t := first; t <= to; t += s {
		out = append(out, t)
	}
	return out
}

// tickLabel writes a tick: "0", "-200 ms", "1.5 s".
func tickLabel(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d.Abs() < time.Millisecond:
		return fmt.Sprintf("%g µs", float64(d)/float64(time.Microsecond))
	case d.Abs() < time.Second:
		return fmt.Sprintf("%g ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%g s", d.Seconds())
}

// timeline draws one step's runs, one panel per scenario, each on the time
// axis given for that scenario (so that the steps' pictures compare).
func timeline(s *step, axes []axis) string {
	var body strings.Builder
	y := legendTop + 20
	for i, run := range s.Runs {
		y = panel(&body, run, scenarios[i], axes[i], y)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", svgWidth, y, svgWidth, y)
	fmt.Fprintf(&b, "<title>%s: every request under the lab's scenarios</title>\n", esc(s.Name))
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", svgWidth, y)
	fmt.Fprintf(&b, `<text x="8" y="16" font-size="14" font-weight="bold">%s</text>`+"\n", esc(s.Name))
	fmt.Fprintf(&b, `<text x="%d" y="16" text-anchor="end" fill="#555555">time from SIGTERM; one row per client connection</text>`+"\n", svgWidth-plotRight)
	legend(&b)
	b.WriteString(body.String())
	b.WriteString("</svg>\n")
	return b.String()
}

func legend(b *strings.Builder) {
	x := 8.0
	for _, o := range []Outcome{Completed, Dropped, TurnedAway, Idle} {
		fmt.Fprintf(b, `<rect x="%.1f" y="%d" width="14" height="%d" fill="%s"/>`, x, legendTop-barHeight, barHeight, outcomeColour[o])
		fmt.Fprintf(b, `<text x="%.1f" y="%d">%s</text>`+"\n", x+18, legendTop, o)
		x += 18 + 7*float64(len(o.String())) + 14
	}
	for _, m := range marks {
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="2" stroke-dasharray="%s"/>`, x, legendTop-10, x, legendTop+2, m.colour, m.dash)
		fmt.Fprintf(b, `<text x="%.1f" y="%d">%s</text>`+"\n", x+6, legendTop, m.name)
		x += 6 + 7*float64(len(m.name)) + 14
	}
}

// panel draws one run from y down and returns where the next one starts.
func panel(b *strings.Builder, run Run, sc scenario, a axis, y int) int {
	fmt.Fprintf(b, `<text x="8" y="%d" font-weight="bold">%s</text>`, y+12, esc(sc.Name))
	if run.Err != nil {
		fmt.Fprintf(b, `<text x="%d" y="%d" fill="%s">%s</text>`, plotLeft+60, y+12, outcomeColour[Dropped], esc(clip(run.Err.Error(), 110)))
	}
	b.WriteString("\n")
	top := y + panelTop
	if run.Signal.IsZero() {
		return top + panelBottom
	}
	lanes := 1
	for _, req := range run.Requests {
		lanes = max(lanes, req.Lane+1)
	}
	bottom := top + lanes*rowHeight
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="#f5f5f5"/>`+"\n", plotLeft, top, a.width, bottom-top)
	// The marks first: a bar of a few pixels at one of them stays visible.
	for i, at := range []time.Time{run.Signal, run.ListenerClosed, run.Exit} {
		x := a.x(at.Sub(run.Signal))
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="2" stroke-dasharray="%s"><title>%s at %s</title></line>`+"\n",
			x, top-4, x, bottom+4, marks[i].colour, marks[i].dash, marks[i].name, tickLabel(at.Sub(run.Signal).Round(10*time.Microsecond)))
	}
	for _, req := range run.Requests {
		x1, x2 := a.x(req.Start.Sub(run.Signal)), a.x(req.End.Sub(run.Signal))
		fmt.Fprintf(b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s" stroke="#ffffff" stroke-width="0.5"><title>%s, %s</title></rect>`+"\n",
			x1, top+req.Lane*rowHeight+1, max(x2-x1, 3), barHeight, outcomeColour[req.Outcome], req.Outcome, formatDuration(req.End.Sub(req.Start)))
	}
	fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="end" fill="#555555">%d %s</text>`+"\n", plotLeft-6, top+9, lanes, plural(lanes, "lane", "lanes"))
	// Say when and how it exited, next to the exit mark.
	x, anchor := a.x(run.Exit.Sub(run.Signal))+5, "start"
	if x > a.left+a.width-160 {
		x, anchor = x-10, "end"
	}
	how := run.ExitStatus
	if _, err := strconv.Atoi(how); err == nil {
		how = "exit " + how
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="%s" fill="%s">%s at %s</text>`+"\n",
		x, top-5, anchor, marks[2].colour, esc(how), formatDuration(run.Exit.Sub(run.Signal)))
	// The time axis, relative to the signal.
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%.1f" y2="%d" stroke="#555555"/>`+"\n", plotLeft, bottom+6, float64(plotLeft)+a.width, bottom+6)
	for _, t := range ticks(a.from, a.to) {
		x := a.x(t)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#555555"/><text x="%.1f" y="%d" text-anchor="middle" fill="#555555">%s</text>`+"\n",
			x, bottom+6, x, bottom+10, x, bottom+21, tickLabel(t))
	}
	return bottom + panelBottom
}

// axes chooses, for each scenario, one time axis for all the steps: from
// the earliest request start to the latest exit among them, with a margin.
func axes(steps []*step) []axis {
	out := make([]axis, len(scenarios))
	for i := range scenarios {
		var from, to time.Duration
		for _, s := range steps {
			if i >= len(s.Runs) || s.Runs[i].Signal.IsZero() {
				continue
			}
			f, t := span(s.Runs[i])
			from, to = min(from, f), max(to, t)
		}
		if to <= from {
			to = from + time.Millisecond
		}
		margin := (to - from) / 40
		out[i] = axis{from: from - margin, to: to + margin, left: plotLeft, width: svgWidth - plotLeft - plotRight}
	}
	return out
}

func esc(s string) string { return html.EscapeString(s) }

func clip(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
