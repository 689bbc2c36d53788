package main

import (
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"text/template"
	"time"
)

// report is what one lab run found, ready to print and draw.
type report struct {
	Steps    []*step
	Restarts []restartRun // lab/restart.go, when steps 05 and 12 both ran
	Elapsed  time.Duration

	GoVersion, Platform string
	Cores               int
	Date                string
	Load                string // the load average when the lab began, if known
	Emails              string // the email steps' tables, from crash.go, or ""

	Rolling []rollingRun // the rolling update, one per step that ran it

	POSTRaces []postRun // lab/http2.go, when step 13 ran

	Proxies []proxyRun // lab/proxies.go, when step 15 ran

	GRPC     []grpcRun // lab/grpc.go, when step 14 ran
	GRPCLoad grpcLoad
}

func newReport(steps []*step, elapsed time.Duration) *report {
	return &report{
		Steps:     steps,
		Elapsed:   elapsed,
		GoVersion: runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
		Cores:     runtime.NumCPU(),
		Date:      time.Now().UTC().Format("2006-01-02"),
	}
}

// tables is every scenario's table, as Markdown, for the terminal.
func (r *report) tables() string {
	var b strings.Builder
	for i, sc := range scenarios {
		fmt.Fprintf(&b, "### %s\n\n%s\n\n%s\n", sc.Name, sc.About, r.table(i))
	}
	if len(r.Rolling) > 0 {
		fmt.Fprintf(&b, "### rolling update\n\n%s\n\n%s\n", rollingAbout, r.RollingTable())
	}
	fmt.Fprintf(&b, "### streams\n\n%s\n\n%s\n", r.StreamsAbout(), r.StreamsTable())
	b.WriteString(r.untimedSection())
	if len(r.POSTRaces) > 0 {
		fmt.Fprintf(&b, "### POST race\n\n%s\n\n%s\n", postAbout, r.POSTTable())
	}
	if len(r.Proxies) > 0 {
		fmt.Fprintf(&b, "### behind a real proxy\n\n%s\n\n%s\n", proxiesAbout, r.ProxiesTable())
	}
	if len(r.GRPC) > 0 {
		fmt.Fprintf(&b, "### gRPC drain\n\n%s\n\n%s\n", r.GRPCAbout(), r.GRPCTable())
	}
	return b.String()
}

// table is one scenario's figures, a row per step, with the steps that
// could not be measured said so, and errors as notes below.
func (r *report) table(scenario int) string {
	var b, notes strings.Builder
	b.WriteString("| step | completed | dropped | turned away | signal → listener closed | last response → exit | signal → exit | exit status |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|---|\n")
	for _, s := range r.Steps {
		fmt.Fprintf(&b, "| [%s](../%s/) ", s.Name, s.Name)
		if s.BuildErr != "" {
			b.WriteString("| did not build | | | | | | |\n")
			continue
		}
		run := s.Runs[scenario]
		if run.Err != nil {
			fmt.Fprintf(&notes, "- %s: %s\n", s.Name, oneLine(run.Err.Error()))
		}
		if run.Signal.IsZero() {
			b.WriteString("| did not run | | | | | | |\n")
			continue
		}
		f := run.Figures()
		last := "–"
		if f.HasLastResponse {
			last = formatDuration(f.LastResponseToExit)
		}
		fmt.Fprintf(&b, "| %d | %d | %d | %s | %s | %s | %s |\n", f.Completed, f.Dropped, f.TurnedAway,
			formatDuration(f.SignalToListenerClosed), last, formatDuration(f.SignalToExit), f.ExitStatus)
	}
	if notes.Len() > 0 {
		b.WriteString("\n" + notes.String())
	}
	return b.String()
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// writeSVGs draws one timeline per step that ran into dir. With prune, it
// also removes the timelines of steps that are gone.
func (r *report) writeSVGs(dir string, prune bool) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	keep := map[string]bool{}
	ax := axes(r.Steps)
	for _, s := range r.Steps {
		if len(s.Runs) == 0 {
			continue
		}
		name := filepath.Join(dir, s.Name+".svg")
		keep[name] = true
		if err := os.WriteFile(name, []byte(timeline(s, ax)), 0o644); err != nil {
			return err
		}
	}
	if prune {
		old, _ := filepath.Glob(filepath.Join(dir, "*.svg"))
		for _, f := range old {
			if !keep[f] {
				os.Remove(f)
			}
		}
	}
	return nil
}

//go:embed lab.md.tmpl
var docTemplate string

// writeDoc writes the whole of docs/lab.md from the template.
func (r *report) writeDoc(path string) error {
	tmpl, err := template.New("lab.md").Funcs(template.FuncMap{
		"duration":          formatDuration,
		"drainTimeout":      func() time.Duration { return drainTimeout },
		"deadline":          func() time.Duration { return deadline },
		"idleAtOnce":        func() time.Duration { return idleAtOnce },
		"propagation":       func() time.Duration { return rollingPropagation },
		"drainDelay":        func() time.Duration { return rollingDrainDelay },
		"untimedDrainDelay": func() time.Duration { return untimedDrainDelay },
	}).Parse(docTemplate)
	if err != nil {
		return err
	}
	var b strings.Builder
	if err := tmpl.Execute(&b, r); err != nil {
		return err
	}
	old, _ := os.ReadFile(path)
	doc, missing := keepGenerated(b.String(), string(old))
	if missing {
		fmt.Fprintf(os.Stderr, "%s has a new generated part: run make docs\n", path)
	}
	return os.WriteFile(path, []byte(doc), 0o644)
}

const genEnd = "<!-- gen:end -->"

// keepGenerated fills the parts of doc that docgen (make docs) generates,
// such as an excerpt of net/http's source, with their content in old, the
// page doc replaces. The template has only each part's directive and end
// line; docgen writes what goes between, and the lab keeps it rather than
// run docgen over every page of the repository. It reports whether a part
// had no content to keep.
func keepGenerated(doc, old string) (string, bool) {
	parts := map[string][]string{}
	lines := strings.Split(old, "\n")
	for i := 0; i < len(lines); i++ {
		if !strings.HasPrefix(lines[i], "<!-- gen:") || lines[i] == genEnd {
			continue
		}
		for j := i + 1; j < len(lines); j++ {
			if lines[j] == genEnd {
				parts[lines[i]] = lines[i+1 : j]
				i = j
				break
			}
		}
	}
	missing := false
	var out []string
	lines = strings.Split(doc, "\n")
	for i, line := range lines {
		out = append(out, line)
		if strings.HasPrefix(line, "<!-- gen:") && line != genEnd && i+1 < len(lines) && lines[i+1] == genEnd {
			content, ok := parts[line]
			missing = missing || !ok
			out = append(out, content...)
		}
	}
	return strings.Join(out, "\n"), missing
}

// Scenarios pairs each scenario with its table, for the template.
func (r *report) Scenarios() []struct {
	Name, About, Table string
} {
	var out []struct{ Name, About, Table string }
	for i, sc := range scenarios {
		out = append(out, struct{ Name, About, Table string }{sc.Name, sc.About, r.table(i)})
	}
	return out
}

// Resolution is the widest window in which a listener's closing was
// placed, over every run.
func (r *report) Resolution() time.Duration {
	var worst time.Duration
	for _, s := range r.Steps {
		for _, run := range s.Runs {
			if !run.Signal.IsZero() {
				worst = max(worst, run.Figures().Resolution)
			}
		}
	}
	return worst
}

// Tail is the range of "last response → exit" in a scenario among the
// steps that call Shutdown (shutdown true) or the others, as "a–b", or "–"
// when none of them has the figure.
func (r *report) Tail(scenario string, shutdown bool) string {
	var lo, hi time.Duration
	n := 0
	for _, s := range r.Steps {
		if s.UsesShutdown != shutdown {
			continue
		}
		for _, run := range s.Runs {
			if run.Scenario != scenario || run.Signal.IsZero() {
				continue
			}
			if f := run.Figures(); f.HasLastResponse {
				if n == 0 || f.LastResponseToExit < lo {
					lo = f.LastResponseToExit
				}
				hi = max(hi, f.LastResponseToExit)
				n++
			}
		}
	}
	switch n {
	case 0:
		return "–"
	case 1:
		return formatDuration(lo)
	}
	return formatDuration(lo) + " to " + formatDuration(hi)
}

// ShutdownSteps and OtherSteps name the steps that call a Shutdown method
// and those that do not.
func (r *report) ShutdownSteps() string { return r.names(true) }
func (r *report) OtherSteps() string    { return r.names(false) }

func (r *report) names(shutdown bool) string {
	var names []string
	for _, s := range r.Steps {
		if s.BuildErr == "" && s.UsesShutdown == shutdown {
			names = append(names, s.Name[:2])
		}
	}
	return strings.Join(names, ", ")
}

// Polls is when Shutdown checks for quiescence, for the doc.
func (r *report) Polls() string {
	var ms []string
	for _, p := range shutdownPolls(12) {
		ms = append(ms, fmt.Sprint(p.Milliseconds()))
	}
	return strings.Join(ms, ", ") + " ms"
}

// Fig is the figures of the step numbered number (such as "02") under the
// named scenario, or nil when that step did not run it.
func (r *report) Fig(number, scenario string) *Figures {
	for _, s := range r.Steps {
		if !strings.HasPrefix(s.Name, number+"-") {
			continue
		}
		for _, run := range s.Runs {
			if run.Scenario == scenario && !run.Signal.IsZero() {
				f := run.Figures()
				return &f
			}
		}
	}
	return nil
}

// The doc's claims about all the steps are checked against the run: each
// of these names the steps (by number) for which the claim does not hold,
// or is "" when it holds for all. The doc says which steps deviate.

// deviants lists the steps among those chosen whose run of the scenario
// does not satisfy ok.
func (r *report) deviants(scenario string, chosen func(*step) bool, ok func(Figures) bool) string {
	var names []string
	for _, s := range r.Steps {
		if !chosen(s) {
			continue
		}
		for _, run := range s.Runs {
			if run.Scenario == scenario && (run.Signal.IsZero() || !ok(run.Figures())) {
				names = append(names, s.Name[:2])
			}
		}
	}
	return strings.Join(names, ", ")
}

func usesShutdown(s *step) bool { return s.UsesShutdown }

// NotCutAtDeadline: the steps with -shutdown-timeout that did not complete
// the short request, drop the long one and exit 1.
func (r *report) NotCutAtDeadline() string {
	return r.deviants(scenarios[2].Name, func(s *step) bool { return s.HasShutdownTimeout }, func(f Figures) bool {
		return f.Completed == 1 && f.Dropped == 1 && f.ExitStatus == "1"
	})
}

// NotLossless: the steps built on Shutdown that dropped a request in the
// in-flight or keep-alive scenarios, or did not exit 0.
func (r *report) NotLossless() string {
	var out []string
	for _, sc := range scenarios[:2] {
		if d := r.deviants(sc.Name, usesShutdown, func(f Figures) bool { return f.Dropped == 0 && f.ExitStatus == "0" }); d != "" {
			out = append(out, d+" ("+sc.Name+")")
		}
	}
	return strings.Join(out, "; ")
}

// idleAtOnce is how soon after the signal a step that closes an idle
// connection at once is expected to exit.
const idleAtOnce = 20 * time.Millisecond

// IdleNotClosedAtOnce: the steps built on Shutdown that did not exit 0
// within idleAtOnce of the signal with an idle connection open.
func (r *report) IdleNotClosedAtOnce() string {
	return r.deviants(scenarios[3].Name, usesShutdown, func(f Figures) bool {
		return f.ExitStatus == "0" && f.SignalToExit < idleAtOnce
	})
}

// ListenerClose is the median and the longest time from the signal to the
// first refused probe, over every run.
func (r *report) ListenerClose() (median, slowest time.Duration) {
	var all []time.Duration
	for _, s := range r.Steps {
		for _, run := range s.Runs {
			if !run.Signal.IsZero() {
				all = append(all, run.Figures().SignalToListenerClosed)
			}
		}
	}
	if len(all) == 0 {
		return 0, 0
	}
	slices.Sort(all)
	return all[len(all)/2], all[len(all)-1]
}

func (r *report) MedianListenerClose() time.Duration  { m, _ := r.ListenerClose(); return m }
func (r *report) SlowestListenerClose() time.Duration { _, s := r.ListenerClose(); return s }
