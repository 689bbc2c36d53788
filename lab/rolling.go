package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gracefulgo/walkthrough/internal/kubesim"
)

// The rolling update: the steps that catch SIGTERM and call Shutdown (03
// to 10) go, one after the other, through the same simulated rolling
// update of internal/kubesim, under the same load, and the lab counts the
// requests that failed, by kind. Step 10 gets its drain delay; the others
// close their listener at the signal.
const (
	rollingFirst, rollingLast = 3, 10
	rollingReplicas           = 3
	rollingPropagation        = time.Second // kubesim's default, a fast cluster's
	rollingDrainDelay         = 2 * time.Second
	rollingShutdownTimeout    = 2 * time.Second
	rollingGracePeriod        = 10 * time.Second
	rollingClients            = 8
	rollingPause              = 5 * time.Millisecond
	rollingPerConn            = 10
)

// rollingAbout says what the scenario does, for the terminal and the doc.
var rollingAbout = fmt.Sprintf("%d replicas behind a simulated kube-proxy, replaced one at a time (maxSurge 1, maxUnavailable 0): "+
	"a new one starts and is added to the endpoints once `/readyz` answers 200 (`/` for the steps that have no `/readyz`), "+
	"then an old one gets SIGTERM and leaves the endpoints %s later; SIGKILL at %s. "+
	"%d keep-alive clients that never retry send `GET /` with %s between requests and a new connection every %d requests. "+
	"Every step gets `-shutdown-timeout=%s`; step 10 gets `-drain-delay=%s`.",
	rollingReplicas, formatDuration(rollingPropagation), formatDuration(rollingGracePeriod),
	rollingClients, formatDuration(rollingPause), rollingPerConn, formatDuration(rollingShutdownTimeout), formatDuration(rollingDrainDelay))

// rollingRun is one step's rolling update.
type rollingRun struct {
	Step     string
	Result   kubesim.Result
	Began    time.Time // when the update began (the first new replica started)
	Ended    time.Time // when the last old replica exited
	Events   []kubesim.Event
	Replicas []rollingReplica
	Err      error
}

// rollingReplica is what the timeline shows of one replica.
type rollingReplica struct {
	Name                     string
	DelayStarted, DelayEnded time.Time // its drain delay, if it logged one
	Exit                     string    // its exit status, if it exited
}

// rollingSteps are the steps the scenario runs: built, and in range.
func rollingSteps(steps []*step) []*step {
	var out []*step
	for _, s := range steps {
		if n, err := strconv.Atoi(s.Name[:2]); err == nil && n >= rollingFirst && n <= rollingLast && s.BuildErr == "" {
			out = append(out, s)
		}
	}
	return out
}

// readinessPath is what the readiness probe asks: /readyz where the step
// has one (step 10, the one with a drain delay), / elsewhere.
func readinessPath(s *step) string {
	if s.HasDrainDelay {
		return "/readyz"
	}
	return "/"
}

// runRolling runs the rolling update against one step. Each replica runs
// in a temporary directory of its own, as a pod has its own filesystem.
func runRolling(s *step) rollingRun {
	run := rollingRun{Step: s.Name}
	args := append(s.roleArgs(), "-shutdown-timeout="+rollingShutdownTimeout.String())
	if s.HasDrainDelay {
		args = append(args, "-drain-delay="+rollingDrainDelay.String())
	}
	var dirs []string
	defer func() {
		for _, d := range dirs {
			os.RemoveAll(d)
		}
	}()
	cluster, err := kubesim.NewCluster(kubesim.Config{
		Command: func() *exec.Cmd {
			cmd := exec.Command(s.Bin, args...)
			if dir, err := os.MkdirTemp("", "lab-rolling-"+s.Name+"-"); err == nil {
				dirs = append(dirs, dir)
				cmd.Dir = dir
			}
			return cmd
		},
		Propagation:   rollingPropagation,
		GracePeriod:   rollingGracePeriod,
		ReadinessPath: readinessPath(s),
	}, rollingReplicas)
	if err != nil {
		run.Err = fmt.Errorf("did not start: %w", err)
		return run
	}
	defer cluster.Close()
	load := kubesim.StartLoad(cluster.Proxy, kubesim.LoadConfig{Clients: rollingClients, Path: "/", Pause: rollingPause, PerConn: rollingPerConn})
	if !load.AwaitOK(50, 5*time.Second) {
		run.Result = load.Stop()
		run.Err = fmt.Errorf("the load got no answers before the update: %v", run.Result)
		return run
	}
	run.Began = time.Now()
	run.Err = cluster.RollingUpdate()
	run.Ended = time.Now()
	run.Result = load.Stop()
	run.Events = cluster.Events()
	for _, r := range cluster.Replicas() {
		rep := rollingReplica{Name: r.Name}
		if l, ok := r.Logged("drain delay started"); ok {
			rep.DelayStarted = l.At
		}
		if l, ok := r.Logged("drain delay finished"); ok {
			rep.DelayEnded = l.At
		}
		if e, ok := r.Exited(); ok {
			rep.Exit = exitStatus(e)
		}
		run.Replicas = append(run.Replicas, rep)
	}
	return run
}

// rollingSummary is one progress line for the terminal.
func rollingSummary(r rollingRun) string {
	s := r.Result.String()
	if r.Err != nil {
		s += " (" + oneLine(r.Err.Error()) + ")"
	}
	return s
}

// rollingTable is the scenario's figures, a row per step.
func rollingTable(runs []rollingRun) string {
	var b, notes strings.Builder
	b.WriteString("| step | completed | failed |")
	for _, k := range kubesim.Kinds {
		fmt.Fprintf(&b, " %s |", k)
	}
	b.WriteString(" old replicas' exits |\n|---|--:|--:|")
	b.WriteString(strings.Repeat("--:|", len(kubesim.Kinds)))
	b.WriteString("---|\n")
	for _, r := range runs {
		fmt.Fprintf(&b, "| [%s](../%s/) | %d | %d |", r.Step, r.Step, r.Result.OK, len(r.Result.Failures))
		for _, k := range kubesim.Kinds {
			fmt.Fprintf(&b, " %d |", r.Result.Count(k))
		}
		var exits []string
		for _, rep := range r.Replicas[:min(rollingReplicas, len(r.Replicas))] {
			exits = append(exits, rep.Exit)
		}
		fmt.Fprintf(&b, " %s |\n", strings.Join(exits, ", "))
		if r.Err != nil {
			fmt.Fprintf(&notes, "- %s: %s\n", r.Step, oneLine(r.Err.Error()))
		}
	}
	if notes.Len() > 0 {
		b.WriteString("\n" + notes.String())
	}
	return b.String()
}

// Colours of the rolling timeline's phases.
var rollingPhase = map[string]string{
	"starting":    "#b0bec5",
	"serving":     "#2e7d32",
	"drain delay": "#f9a825",
	"drain":       "#1565c0",
}

// rollingSVG draws one step's rolling update: a row per replica, from its
// start to its exit, coloured by phase, with the moments its endpoint was
// added and removed; below, a tick for each failed request. 0 is the
// moment the update began.
func rollingSVG(r rollingRun) string {
	const rowGap = 22
	end := r.Ended
	for _, e := range r.Events {
		if e.At.After(end) {
			end = e.At
		}
	}
	begin := r.Began
	for _, e := range r.Events {
		if e.At.Before(begin) && e.What == kubesim.EventSIGTERM {
			begin = e.At
		}
	}
	from := -300 * time.Millisecond
	a := axis{from: from, to: end.Sub(begin) + 200*time.Millisecond, left: plotLeft, width: svgWidth - plotLeft - plotRight}
	at := func(t time.Time) float64 { return a.x(max(t.Sub(begin), from)) }
	events := map[string]map[string]time.Time{}
	for _, e := range r.Events {
		if events[e.Replica] == nil {
			events[e.Replica] = map[string]time.Time{}
		}
		events[e.Replica][e.What] = e.At
	}

	var body strings.Builder
	top := legendTop + 24
	y := top
	for _, rep := range r.Replicas {
		ev := events[rep.Name]
		started, ready, sigterm, exited := ev[kubesim.EventStarted], ev[kubesim.EventReady], ev[kubesim.EventSIGTERM], ev[kubesim.EventExited]
		if exited.IsZero() {
			exited = end
		}
		type phase struct {
			name     string
			from, to time.Time
		}
		phases := []phase{{"starting", started, ready}}
		switch {
		case sigterm.IsZero():
			phases = append(phases, phase{"serving", ready, end})
		case !rep.DelayEnded.IsZero():
			phases = append(phases, phase{"serving", ready, sigterm}, phase{"drain delay", sigterm, rep.DelayEnded}, phase{"drain", rep.DelayEnded, exited})
		default:
			phases = append(phases, phase{"serving", ready, sigterm}, phase{"drain", sigterm, exited})
		}
		fmt.Fprintf(&body, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", plotLeft-6, y+10, esc(rep.Name))
		for _, p := range phases {
			if p.from.IsZero() || p.to.Before(p.from) {
				continue
			}
			x1, x2 := at(p.from), at(p.to)
			fmt.Fprintf(&body, `<rect x="%.1f" y="%d" width="%.1f" height="12" fill="%s"><title>%s: %s, %s</title></rect>`+"\n",
				x1, y, max(x2-x1, 1), rollingPhase[p.name], esc(rep.Name), p.name, formatDuration(p.to.Sub(p.from)))
		}
		if removed := ev[kubesim.EventRemoved]; !removed.IsZero() {
			x := at(removed)
			fmt.Fprintf(&body, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#c62828" stroke-width="2"><title>%s: endpoint removed at %s</title></line>`+"\n",
				x, y-3, x, y+15, esc(rep.Name), formatDuration(removed.Sub(begin)))
		}
		if !sigterm.IsZero() {
			x := at(sigterm)
			fmt.Fprintf(&body, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#000000" stroke-width="2"><title>%s: SIGTERM at %s</title></line>`+"\n",
				x, y-3, x, y+15, esc(rep.Name), formatDuration(sigterm.Sub(begin)))
		}
		if rep.Exit != "" && !sigterm.IsZero() {
			fmt.Fprintf(&body, `<text x="%.1f" y="%d" fill="#555555">exit %s</text>`+"\n", at(exited)+4, y+10, esc(rep.Exit))
		}
		y += rowGap
	}
	// The failed requests, one tick each.
	fmt.Fprintf(&body, `<text x="%d" y="%d" text-anchor="end">failed</text>`+"\n", plotLeft-6, y+10)
	fmt.Fprintf(&body, `<rect x="%d" y="%d" width="%.1f" height="12" fill="#f5f5f5"/>`+"\n", plotLeft, y, a.width)
	for _, f := range r.Result.Failures {
		x := at(f.At)
		fmt.Fprintf(&body, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#c62828" stroke-width="1.5"><title>%s at %s</title></line>`+"\n",
			x, y, x, y+12, esc(string(f.Kind)), formatDuration(f.At.Sub(begin)))
	}
	fmt.Fprintf(&body, `<text x="%.1f" y="%d" fill="#555555">%s</text>`+"\n", a.left+a.width, y+26, "")
	y += rowGap
	// The time axis.
	fmt.Fprintf(&body, `<line x1="%d" y1="%d" x2="%.1f" y2="%d" stroke="#555555"/>`+"\n", plotLeft, y, a.left+a.width, y)
	for _, t := range ticks(a.from, a.to) {
		x := a.x(t)
		fmt.Fprintf(&body, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#555555"/><text x="%.1f" y="%d" text-anchor="middle" fill="#555555">%s</text>`+"\n",
			x, y, x, y+4, x, y+15, tickLabel(t))
	}
	height := y + 28

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", svgWidth, height, svgWidth, height)
	fmt.Fprintf(&b, "<title>%s: a rolling update of %d replicas, %s</title>\n", esc(r.Step), rollingReplicas, esc(r.Result.String()))
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", svgWidth, height)
	fmt.Fprintf(&b, `<text x="8" y="16" font-size="14" font-weight="bold">%s: rolling update, %s</text>`+"\n", esc(r.Step), esc(r.Result.String()))
	fmt.Fprintf(&b, `<text x="%d" y="16" text-anchor="end" fill="#555555">time from the update's start; one row per replica</text>`+"\n", svgWidth-plotRight)
	x := 8.0
	for _, name := range []string{"starting", "serving", "drain delay", "drain"} {
		fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="14" height="8" fill="%s"/><text x="%.1f" y="%d">%s</text>`+"\n", x, legendTop-7, rollingPhase[name], x+18, legendTop, name)
		x += 18 + 7*float64(len(name)) + 14
	}
	for _, m := range []struct{ name, colour string }{{"SIGTERM", "#000000"}, {"endpoint removed", "#c62828"}} {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="2"/><text x="%.1f" y="%d">%s</text>`+"\n", x, legendTop-10, x, legendTop+2, m.colour, x+6, legendTop, m.name)
		x += 6 + 7*float64(len(m.name)) + 14
	}
	b.WriteString(body.String())
	b.WriteString("</svg>\n")
	return b.String()
}

// writeRollingSVG draws the step's rolling update into dir.
func writeRollingSVG(dir string, r rollingRun) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	name := filepath.Join(dir, "rolling-"+r.Step+".svg")
	return name, os.WriteFile(name, []byte(rollingSVG(r)), 0o644)
}

// rollingTimelines are the steps whose rolling update the lab draws.
var rollingTimelines = []string{"10-kubernetes"}

// writeRollingSVGs draws the rolling updates of rollingTimelines into dir.
func (r *report) writeRollingSVGs(dir string) error {
	for _, run := range r.Rolling {
		if slices.Contains(rollingTimelines, run.Step) && run.Err == nil {
			if _, err := writeRollingSVG(dir, run); err != nil {
				return err
			}
		}
	}
	return nil
}

// For the template.

// RollingAbout says what the rolling update does.
func (r *report) RollingAbout() string { return rollingAbout }

// RollingTable is the rolling update's table.
func (r *report) RollingTable() string { return rollingTable(r.Rolling) }

// RollingFig is one step's rolling update, by number, if it ran.
func (r *report) RollingFig(number string) *rollingRun {
	for i := range r.Rolling {
		if strings.HasPrefix(r.Rolling[i].Step, number+"-") {
			return &r.Rolling[i]
		}
	}
	return nil
}
