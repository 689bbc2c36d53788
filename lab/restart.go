package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gracefulgo/walkthrough/internal/proc"
	"github.com/gracefulgo/walkthrough/internal/proctree"
)

// The restart scenario: the same load across a restart, for step 05
// stopped and started again on its port (what a deploy does without a
// hand-over) and for step 12 sent SIGHUP (the new binary takes the
// socket). It runs when both steps are in the lab's run.

const (
	restartLanes  = 8                     // clients: the even ones keep their connection alive, the odd ones dial for each request
	restartPause  = 10 * time.Millisecond // each client's pause between two requests
	restartBefore = 100                   // requests completed before the restart
	restartAfter  = 100                   // requests completed by the new process after it
	restartSlow   = "300ms"               // one request in flight across the restart, on a lane of its own
)

// restartAbout describes the scenario, for the doc.
var restartAbout = fmt.Sprintf("%d clients send `GET /` with a %s pause between requests, half of them on one kept-alive connection (dialing again when the server answers `Connection: close`), half on a new connection each time; none retries a failed request. Once %d requests have completed, one more client starts `/slow?d=%s`, and when the step has logged it, the restart: for step 05 SIGTERM, then, once it has exited, a new process on the same port; for step 12 SIGHUP. The load goes on until the new process has answered %d requests.",
	restartLanes, restartPause, restartBefore, restartSlow, restartAfter)

// restartRun is what the lab saw across one restart.
type restartRun struct {
	Step, How    string
	Requests     []Request
	Restart      time.Time // the signal that began it
	NewListening time.Time // when the new process logged "listening"
	OldExit      time.Time // when the old process had exited
	OldPid       int
	Err          error
}

// runRestarts runs the scenario for steps 05 and 12, if both built.
func runRestarts(steps []*step) []restartRun {
	var s05, s12 *step
	for _, s := range steps {
		switch {
		case s.BuildErr != "":
		case strings.HasPrefix(s.Name, "05-"):
			s05 = s
		case strings.HasPrefix(s.Name, "12-"):
			s12 = s
		}
	}
	if s05 == nil || s12 == nil {
		return nil
	}
	return []restartRun{stopAndStart(s05), upgrade(s12)}
}

// stopAndStart restarts step 05 as a deploy without a hand-over does.
func stopAndStart(s *step) restartRun {
	run := restartRun{Step: s.Name, How: "SIGTERM, then a new process"}
	dir, err := os.MkdirTemp("", "lab-restart-")
	if err != nil {
		run.Err = err
		return run
	}
	defer os.RemoveAll(dir)
	old, err := start(s.Bin, dir)
	if err != nil {
		run.Err = err
		return run
	}
	defer old.Kill()
	run.OldPid = old.Pid()
	load := startRestartLoad(old.Addr)
	defer load.stop()
	slow, err := load.beforeRestart(old.Pid(), func() error { return old.awaitLog("slow request started", 1) })
	if err != nil {
		run.Err = err
		return run
	}
	run.Restart, _ = old.Signal(syscall.SIGTERM)
	exit, ok := old.AwaitExit(proc.EventTimeout)
	if !ok {
		run.Err = errors.New("the old process did not exit")
		return run
	}
	run.OldExit = exit.At
	cmd := exec.Command(s.Bin)
	cmd.Dir = dir
	started, err := proc.Start(old.Addr, cmd)
	if err != nil {
		run.Err = err
		return run
	}
	next := &process{started}
	defer next.Kill()
	if err := next.awaitListening(); err != nil {
		run.Err = err
		return run
	}
	l, _ := next.Logged("listening")
	run.NewListening = l.At
	run.Err = load.await(next.Pid(), restartAfter)
	run.Requests = append(load.stop(), <-slow)
	if _, err := next.Signal(syscall.SIGTERM); err != nil && run.Err == nil {
		run.Err = fmt.Errorf("stopping the new process: %w", err)
	}
	next.AwaitExit(proc.EventTimeout)
	return run
}

// upgrade restarts step 12 with SIGHUP. Its processes are a tree (the new
// one is the old one's child), watched with internal/proctree.
func upgrade(s *step) restartRun {
	run := restartRun{Step: s.Name, How: "SIGHUP"}
	dir, err := os.MkdirTemp("", "lab-restart-")
	if err != nil {
		run.Err = err
		return run
	}
	defer os.RemoveAll(dir)
	addr, err := proc.FreeAddr()
	if err != nil {
		run.Err = err
		return run
	}
	cmd := exec.Command(s.Bin)
	cmd.Dir = dir
	tree, err := proctree.Start(addr, cmd)
	if err != nil {
		run.Err = err
		return run
	}
	defer tree.Kill()
	if _, ok := tree.AwaitLogN("listening", 1, proc.EventTimeout); !ok {
		run.Err = errors.New("did not start")
		return run
	}
	oldPid := tree.Pid()
	run.OldPid = oldPid
	load := startRestartLoad(addr)
	defer load.stop()
	slow, err := load.beforeRestart(oldPid, func() error {
		if _, ok := tree.AwaitLog(oldPid, "slow request started", proc.EventTimeout); !ok {
			return errors.New(`no "slow request started"`)
		}
		return nil
	})
	if err != nil {
		run.Err = err
		return run
	}
	run.Restart, err = tree.Signal(oldPid, syscall.SIGHUP)
	if err != nil {
		run.Err = err
		return run
	}
	l, ok := tree.AwaitLogN("listening", 2, proc.EventTimeout)
	if !ok {
		run.Err = fmt.Errorf("no new process listening after SIGHUP: %s", oneLine(tree.Output()))
		return run
	}
	run.NewListening = l.At
	newPid, _ := strconv.Atoi(l.Attr("pid"))
	exit, ok := tree.AwaitExit(oldPid, proc.EventTimeout)
	if !ok {
		run.Err = errors.New("the old process did not exit")
		return run
	}
	run.OldExit = exit.At
	run.Err = load.await(newPid, restartAfter)
	run.Requests = append(load.stop(), <-slow)
	if _, err := tree.Signal(newPid, syscall.SIGTERM); err == nil {
		tree.AwaitExit(newPid, proc.EventTimeout)
	}
	return run
}

// restartLoad is the scenario's clients.
type restartLoad struct {
	addr string
	quit chan struct{}
	wg   sync.WaitGroup
	once sync.Once

	mu       sync.Mutex
	requests []Request
	grew     chan struct{}
}

func startRestartLoad(addr string) *restartLoad {
	l := &restartLoad{addr: addr, quit: make(chan struct{}), grew: make(chan struct{})}
	for lane := range restartLanes {
		l.wg.Go(func() {
			c := newClient(addr, lane)
			defer c.Close()
			for {
				r := c.get("/")
				if lane%2 == 1 {
					c.Close()
				}
				l.add(r)
				select {
				case <-l.quit:
					return
				case <-time.After(restartPause):
				}
			}
		})
	}
	return l
}

func (l *restartLoad) add(r Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.requests = append(l.requests, r)
	close(l.grew)
	l.grew = make(chan struct{})
}

// await waits until pid has answered n requests.
func (l *restartLoad) await(pid, n int) error {
	deadline := time.After(proc.EventTimeout)
	for {
		l.mu.Lock()
		got, grew := 0, l.grew
		for _, r := range l.requests {
			if r.Pid == pid {
				got++
			}
		}
		l.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-grew:
		case <-deadline:
			return fmt.Errorf("pid %d answered %d requests in %s, not %d", pid, got, proc.EventTimeout, n)
		}
	}
}

// beforeRestart waits for the first requests to complete on pid, then
// starts the slow request on a lane of its own and waits until started
// says it has begun. The slow request's result comes on the channel.
func (l *restartLoad) beforeRestart(pid int, started func() error) (<-chan Request, error) {
	if err := l.await(pid, restartBefore); err != nil {
		return nil, err
	}
	slow := make(chan Request, 1)
	go func() {
		c := newClient(l.addr, restartLanes)
		r := c.get("/slow?d=" + restartSlow)
		c.Close()
		if r.Outcome == Completed {
			r.Pid = pid // started before the restart: the old process's
		}
		slow <- r
	}()
	return slow, started()
}

// stop ends the load and returns every request.
func (l *restartLoad) stop() []Request {
	l.once.Do(func() { close(l.quit) })
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.requests)
}

// restartFigures are one row of the scenario's table.
type restartFigures struct {
	Completed, Dropped, TurnedAway int
	ByOld, ByNew                   int           // completed requests answered by each process
	LongestGap                     time.Duration // the longest stretch from the restart on with no request completed
	Overlap                        time.Duration // how long both processes answered requests
}

func (r restartRun) figures() restartFigures {
	var f restartFigures
	var ends []time.Time
	var lastOld, firstNew time.Time
	for _, req := range r.Requests {
		switch req.Outcome {
		case Completed:
			f.Completed++
			ends = append(ends, req.End)
			if req.Pid == r.OldPid {
				f.ByOld++
				if req.End.After(lastOld) {
					lastOld = req.End
				}
			} else {
				f.ByNew++
				if firstNew.IsZero() || req.End.Before(firstNew) {
					firstNew = req.End
				}
			}
		case Dropped:
			f.Dropped++
		case TurnedAway:
			f.TurnedAway++
		}
	}
	slices.SortFunc(ends, func(a, b time.Time) int { return a.Compare(b) })
	for i := 1; i < len(ends); i++ {
		if ends[i].After(r.Restart) {
			f.LongestGap = max(f.LongestGap, ends[i].Sub(ends[i-1]))
		}
	}
	if !firstNew.IsZero() && lastOld.After(firstNew) {
		f.Overlap = lastOld.Sub(firstNew)
	}
	return f
}

// RestartTable is the scenario's table, for the doc; empty if it did not
// run.
func (r *report) RestartTable() string {
	if len(r.Restarts) == 0 {
		return ""
	}
	var b, notes strings.Builder
	b.WriteString("| step | restart | completed | dropped | turned away | longest gap in service | answered by the old / new process | both answering for |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|\n")
	for _, run := range r.Restarts {
		if run.Err != nil {
			fmt.Fprintf(&notes, "- %s: %s\n", run.Step, oneLine(run.Err.Error()))
		}
		f := run.figures()
		fmt.Fprintf(&b, "| [%s](../%s/) | %s | %d | %d | %d | %s | %d / %d | %s |\n", run.Step, run.Step, run.How,
			f.Completed, f.Dropped, f.TurnedAway, formatDuration(f.LongestGap), f.ByOld, f.ByNew, formatDuration(f.Overlap))
	}
	if notes.Len() > 0 {
		b.WriteString("\n" + notes.String())
	}
	return b.String()
}

// RestartAbout describes the scenario, for the doc.
func (r *report) RestartAbout() string { return restartAbout }

// writeRestartSVG draws the restarts, one panel each, on one time axis, to
// dir/restart.svg.
func (r *report) writeRestartSVG(dir string) error {
	if len(r.Restarts) == 0 {
		return nil
	}
	// From a little before the restart to a little after the old process
	// exited: the requests around it, not the whole load.
	var to time.Duration
	for _, run := range r.Restarts {
		to = max(to, run.OldExit.Sub(run.Restart), run.NewListening.Sub(run.Restart))
	}
	a := axis{from: -50 * time.Millisecond, to: to + 50*time.Millisecond, left: plotLeft, width: svgWidth - plotLeft - plotRight}
	var body strings.Builder
	y := legendTop + 20
	for _, run := range r.Restarts {
		y = restartPanel(&body, run, a, y)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", svgWidth, y, svgWidth, y)
	b.WriteString("<title>A restart under load: step 05 stopped and started, step 12 upgraded</title>\n")
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", svgWidth, y)
	b.WriteString(`<text x="8" y="16" font-size="14" font-weight="bold">restart under load</text>` + "\n")
	fmt.Fprintf(&b, `<text x="%d" y="16" text-anchor="end" fill="#555555">time from the restart's signal; one row per client</text>`+"\n", svgWidth-plotRight)
	x := 8.0
	for _, k := range []struct{ name, colour string }{
		{"answered by the old process", restartOld}, {"by the new process", restartNew},
		{"dropped", outcomeColour[Dropped]}, {"turned away", outcomeColour[TurnedAway]},
	} {
		fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="14" height="%d" fill="%s"/><text x="%.1f" y="%d">%s</text>`+"\n", x, legendTop-barHeight, barHeight, k.colour, x+18, legendTop, k.name)
		x += 18 + 6.5*float64(len(k.name)) + 14
	}
	for _, m := range restartMarks {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="2" stroke-dasharray="%s"/><text x="%.1f" y="%d">%s</text>`+"\n", x, legendTop-10, x, legendTop+2, m.colour, m.dash, x+6, legendTop, m.name)
		x += 6 + 6.5*float64(len(m.name)) + 14
	}
	b.WriteString(body.String())
	b.WriteString("</svg>\n")
	return os.WriteFile(filepath.Join(dir, "restart.svg"), []byte(b.String()), 0o644)
}

const (
	restartOld = "#1565c0"
	restartNew = "#2e7d32"
)

var restartMarks = []struct{ name, colour, dash string }{
	{"signal", "#000000", ""},
	{"new process listening", restartNew, "6 3"},
	{"old process exited", "#8e24aa", "2 2"},
}

func restartPanel(b *strings.Builder, run restartRun, a axis, y int) int {
	fmt.Fprintf(b, `<text x="8" y="%d" font-weight="bold">%s: %s</text>`, y+12, esc(run.Step), esc(run.How))
	if run.Err != nil {
		fmt.Fprintf(b, `<text x="%d" y="%d" fill="%s">%s</text>`, plotLeft+300, y+12, outcomeColour[Dropped], esc(clip(run.Err.Error(), 80)))
	}
	b.WriteString("\n")
	top := y + panelTop
	if run.Restart.IsZero() {
		return top + panelBottom
	}
	bottom := top + (restartLanes+1)*rowHeight
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="#f5f5f5"/>`+"\n", plotLeft, top, a.width, bottom-top)
	for i, at := range []time.Time{run.Restart, run.NewListening, run.OldExit} {
		d := at.Sub(run.Restart)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="2" stroke-dasharray="%s"><title>%s at %s</title></line>`+"\n",
			a.x(d), top-4, a.x(d), bottom+4, restartMarks[i].colour, restartMarks[i].dash, restartMarks[i].name, formatDuration(d))
	}
	for _, req := range run.Requests {
		from, to := req.Start.Sub(run.Restart), req.End.Sub(run.Restart)
		if to < a.from || from > a.to {
			continue
		}
		colour := outcomeColour[req.Outcome]
		what := req.Outcome.String()
		if req.Outcome == Completed {
			colour, what = restartNew, fmt.Sprintf("answered by pid %d", req.Pid)
			if req.Pid == run.OldPid {
				colour = restartOld
			}
		}
		x1, x2 := a.x(max(from, a.from)), a.x(min(to, a.to))
		fmt.Fprintf(b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"><title>%s, %s</title></rect>`+"\n",
			x1, top+req.Lane*rowHeight+1, max(x2-x1, 2), barHeight, colour, what, formatDuration(to-from))
	}
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%.1f" y2="%d" stroke="#555555"/>`+"\n", plotLeft, bottom+6, float64(plotLeft)+a.width, bottom+6)
	for _, t := range ticks(a.from, a.to) {
		x := a.x(t)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#555555"/><text x="%.1f" y="%d" text-anchor="middle" fill="#555555">%s</text>`+"\n",
			x, bottom+6, x, bottom+10, x, bottom+21, tickLabel(t))
	}
	return bottom + panelBottom
}
