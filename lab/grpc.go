package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/gracefulgo/walkthrough/internal/proc"
)

// The gRPC drain: step 14 under a load of walkthrough.v1.Slow/Sleep calls
// from grpc-go clients through SIGTERM, with one backend and with two
// behind the client's round_robin balancer, of which one gets the signal.
// The clients call with cc.Invoke and the well-known types, as any gRPC
// client may: the lab needs none of the step's generated code.

// grpcLoad is how hard and how long the scenario pushes; the lab and its
// test use different ones.
type grpcLoad struct {
	Clients int
	Drains  int // runs per row, summed
	// Before is how many answers the load has had when the lab sends
	// SIGTERM; After, with two backends, how many more it waits for once
	// the signalled one has exited, before the clients stop.
	Before, After int
	MaxSleep      time.Duration // each call sleeps 0 to MaxSleep, at random
}

var labGRPCLoad = grpcLoad{Clients: 16, Drains: 3, Before: 400, After: 400, MaxSleep: 50 * time.Millisecond}

// grpcSleep is the method the load calls.
const grpcSleep = "/walkthrough.v1.Slow/Sleep"

// grpcCallTimeout bounds one call, so that a call that would wait for ever
// (WaitForReady with no backend left) ends, as DEADLINE_EXCEEDED.
const grpcCallTimeout = 5 * time.Second

// roundRobin is the service config of every client: grpc-go's round_robin
// over the addresses the resolver lists.
const roundRobin = `{"loadBalancingConfig":[{"round_robin":{}}]}`

// grpcCase is one row of the table.
type grpcCase struct {
	Name         string
	Backends     int  // 1, or 2 behind round_robin, of which the first gets SIGTERM
	PerClient    bool // a grpc.ClientConn per client, not one shared by all
	WaitForReady bool
	NoSleep      bool // every call sleeps 0: many more calls a second, so more of them meet the GOAWAY on the wire
}

var grpcCases = []grpcCase{
	{Name: "one backend, one shared `ClientConn`", Backends: 1},
	{Name: "one backend, a `ClientConn` per client", Backends: 1, PerClient: true},
	{Name: "two backends, one shared `ClientConn`", Backends: 2},
	{Name: "two backends, one shared `ClientConn`, `WaitForReady(true)`", Backends: 2, WaitForReady: true},
	{Name: "two backends, a `ClientConn` per client", Backends: 2, PerClient: true},
	{Name: "two backends, one shared `ClientConn`, every sleep 0", Backends: 2, NoSleep: true},
}

// grpcCall is one call as its client saw it.
type grpcCall struct {
	Lane       int
	Start, End time.Time
	Code       codes.Code
	Backend    int  // the index of the backend that answered (its pid is in the answer), or -1
	Retried    bool // grpc-go sent it again transparently (stats.Begin.IsTransparentRetryAttempt)
	Err        string
}

// grpcRun is one row's figures, summed over its drains, and the calls of
// its first drain, for the picture.
type grpcRun struct {
	Case grpcCase
	Sent int // calls the clients made
	OK   int
	// Retried is how many calls grpc-go sent again transparently, and
	// RetriedOK how many of those were answered.
	Retried, RetriedOK int
	Codes              map[codes.Code]int // the failures, by code
	Messages           map[string]int     // the failures, by code and message (ports left out)
	// OKBy and Sleeps are, per backend, the answers that named its pid and
	// the sleeps= of its "shutdown finished" line.
	OKBy, Sleeps []int

	Calls  []grpcCall // the first drain's
	Signal time.Time  // its SIGTERM, to the first backend
	Exit   time.Time  // when that backend had exited
	Status string     // its exit status
	Err    error
}

// Unavailable and Other split the failures for the table.
func (r grpcRun) Unavailable() int { return r.Codes[codes.Unavailable] }
func (r grpcRun) Other() int {
	n := 0
	for c, k := range r.Codes {
		if c != codes.Unavailable {
			n += k
		}
	}
	return n
}

// Processed is the sum of the backends' sleeps=.
func (r grpcRun) Processed() int {
	n := 0
	for _, s := range r.Sleeps {
		n += s
	}
	return n
}

// runGRPC runs every case on the gRPC step s, which has built.
func runGRPC(s *step, load grpcLoad) []grpcRun {
	var runs []grpcRun
	for _, c := range grpcCases {
		run := grpcRun{Case: c, Codes: map[codes.Code]int{}, Messages: map[string]int{}, OKBy: make([]int, c.Backends), Sleeps: make([]int, c.Backends)}
		for i := range load.Drains {
			if err := grpcDrain(s, load, &run, i == 0); err != nil {
				run.Err = err
				break
			}
		}
		fmt.Fprintf(os.Stderr, "%s / gRPC (%s): %s\n", s.Name, strings.ReplaceAll(c.Name, "`", ""), run.summary())
		runs = append(runs, run)
	}
	return runs
}

func (r grpcRun) summary() string {
	s := fmt.Sprintf("sent %d, OK %d, retried transparently %d (%d of them OK), UNAVAILABLE %d, other %d, OK by backend %v, sleeps= %v",
		r.Sent, r.OK, r.Retried, r.RetriedOK, r.Unavailable(), r.Other(), r.OKBy, r.Sleeps)
	if r.Err != nil {
		s += " (" + r.Err.Error() + ")"
	}
	for _, m := range slices.Sorted(maps.Keys(r.Messages)) {
		s += fmt.Sprintf("\n  %d× %s", r.Messages[m], m)
	}
	return s
}

// callKey carries a call's retry flag to the stats handler.
type callKey struct{}

// retrySeen is a stats.Handler that marks a call retried when grpc-go
// begins a transparent retry attempt of it.
type retrySeen struct{}

func (retrySeen) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (retrySeen) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if b, ok := s.(*stats.Begin); ok && b.IsTransparentRetryAttempt {
		if f, ok := ctx.Value(callKey{}).(*atomic.Bool); ok {
			f.Store(true)
		}
	}
}
func (retrySeen) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (retrySeen) HandleConn(context.Context, stats.ConnStats)                       {}

// dialBackends is a ClientConn to the addresses, with a manual resolver
// that lists them all and round_robin over them.
func dialBackends(addrs []string) (*grpc.ClientConn, error) {
	r := manual.NewBuilderWithScheme("lab")
	var as []resolver.Address
	for _, a := range addrs {
		as = append(as, resolver.Address{Addr: a})
	}
	r.InitialState(resolver.State{Addresses: as})
	return grpc.NewClient(r.Scheme()+":///step-14",
		grpc.WithResolvers(r),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(roundRobin),
		grpc.WithStatsHandler(retrySeen{}),
	)
}

// anyPort is a port in an error message.
var anyPort = regexp.MustCompile(`:\d{2,5}\b`)

// answeredBy finds the pid in an answer: "slept 12ms (14-grpc, pid 4242)".
var answeredBy = regexp.MustCompile(`pid (\d+)\)`)

// grpcDrain is one run: the backends, the load, SIGTERM to the first, its
// exit; with two, more load on the second, then the clients stop and the
// second gets SIGTERM too, for its sleeps=.
func grpcDrain(s *step, load grpcLoad, run *grpcRun, keep bool) error {
	c := run.Case
	var backends []*process
	defer func() {
		for _, p := range backends {
			p.Kill()
		}
	}()
	var addrs []string
	pids := map[int]int{}
	for i := range c.Backends {
		dir, err := os.MkdirTemp("", "lab-grpc-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		p, err := start(s.Bin, dir)
		if err != nil {
			return err
		}
		backends = append(backends, p)
		addrs = append(addrs, p.Addr)
		pids[p.Pid()] = i
	}
	first := backends[0]

	conns := make([]*grpc.ClientConn, load.Clients)
	for i := range conns {
		if i == 0 || c.PerClient {
			cc, err := dialBackends(addrs)
			if err != nil {
				return err
			}
			defer cc.Close()
			conns[i] = cc
		} else {
			conns[i] = conns[0]
		}
	}
	var opts []grpc.CallOption
	if c.WaitForReady {
		opts = append(opts, grpc.WaitForReady(true))
	}

	var (
		mu        sync.Mutex
		calls     []grpcCall
		ok        int
		okAtExit  = -1 // ok when the first backend had exited, with two
		enough    = make(chan struct{})
		enoughOne sync.Once
		stop      = make(chan struct{})
		stopOnce  sync.Once
		finished  sync.WaitGroup
	)
	firstExited := false
	for lane := range load.Clients {
		finished.Add(1)
		go func() {
			defer finished.Done()
			rng := rand.New(rand.NewPCG(uint64(lane), 14))
			for {
				select {
				case <-stop:
					return
				default:
				}
				d := time.Duration(rng.Int64N(int64(load.MaxSleep) + 1))
				if c.NoSleep {
					d = 0
				}
				retried := new(atomic.Bool)
				ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), callKey{}, retried), grpcCallTimeout)
				var out wrapperspb.StringValue
				call := grpcCall{Lane: lane, Start: time.Now(), Backend: -1}
				err := conns[lane].Invoke(ctx, grpcSleep, durationpb.New(d), &out, opts...)
				call.End = time.Now()
				cancel()
				call.Code = status.Code(err)
				call.Retried = retried.Load()
				if err != nil {
					call.Err = err.Error()
				} else if m := answeredBy.FindStringSubmatch(out.GetValue()); m != nil {
					pid, _ := strconv.Atoi(m[1])
					if i, found := pids[pid]; found {
						call.Backend = i
					}
				}
				mu.Lock()
				calls = append(calls, call)
				if err == nil {
					ok++
				}
				if ok >= load.Before {
					enoughOne.Do(func() { close(enough) })
				}
				if c.Backends > 1 && firstExited && okAtExit < 0 {
					okAtExit = ok
				}
				if okAtExit >= 0 && ok-okAtExit >= load.After {
					stopOnce.Do(func() { close(stop) })
				}
				mu.Unlock()
				// With one backend there is nowhere left to go: each client
				// stops at its first failure, as one that does not retry
				// by itself would.
				if err != nil && c.Backends == 1 {
					return
				}
			}
		}()
	}
	// However the run ends, the clients stop before it returns.
	defer func() {
		stopOnce.Do(func() { close(stop) })
		finished.Wait()
	}()
	select {
	case <-enough:
	case <-first.Done():
		return errors.New("the step exited under the load")
	}
	signal, err := first.Signal(syscall.SIGTERM)
	if err != nil {
		return err
	}
	if err := first.awaitExit(proc.EventTimeout); err != nil {
		return err
	}
	e, _ := first.Exited()
	if c.Backends > 1 {
		mu.Lock()
		firstExited = true
		mu.Unlock()
		select {
		case <-stop:
		case <-time.After(proc.EventTimeout):
			return fmt.Errorf("fewer than %d answers in %s after the first backend exited", load.After, proc.EventTimeout)
		}
	}
	// With one backend, each client ends at its first failure, which comes
	// at its first call after the exit if not before: wait for them all.
	if c.Backends > 1 {
		stopOnce.Do(func() { close(stop) })
	}
	finished.Wait()
	for _, p := range backends[1:] {
		if _, err := p.Signal(syscall.SIGTERM); err != nil {
			return err
		}
		if err := p.awaitExit(proc.EventTimeout); err != nil {
			return err
		}
	}
	sleeps := make([]int, len(backends))
	for i, p := range backends {
		l, found := p.Logged("shutdown finished")
		if !found {
			return fmt.Errorf("backend %d: no shutdown finished line: %s", i+1, p.lastLines())
		}
		n, err := strconv.Atoi(l.Attr("sleeps"))
		if err != nil {
			return fmt.Errorf("backend %d: shutdown finished sleeps=%q: %v", i+1, l.Attr("sleeps"), err)
		}
		sleeps[i] = n
	}

	mu.Lock()
	defer mu.Unlock()
	for _, call := range calls {
		run.Sent++
		if call.Retried {
			run.Retried++
		}
		if call.Code == codes.OK {
			run.OK++
			if call.Retried {
				run.RetriedOK++
			}
			if call.Backend >= 0 {
				run.OKBy[call.Backend]++
			}
		} else {
			run.Codes[call.Code]++
			run.Messages[call.Code.String()+": "+anyPort.ReplaceAllString(call.Err, ":PORT")]++
		}
	}
	for i, n := range sleeps {
		run.Sleeps[i] += n
	}
	if keep {
		run.Calls, run.Signal, run.Exit, run.Status = calls, signal, e.At, exitStatus(e)
	}
	return nil
}

// GRPCAbout describes the scenario, for the doc.
func (r *report) GRPCAbout() string {
	l := r.GRPCLoad
	return fmt.Sprintf("%d clients call `walkthrough.v1.Slow/Sleep` in a loop, each sleep 0 to %s at random, with `cc.Invoke` on grpc-go's `ClientConn` and no retry of their own (no retry policy either: the only retries are grpc-go's transparent ones), round_robin over the addresses a manual resolver lists. Once %d calls have been answered, SIGTERM to the first backend. With one backend, each client stops at its first failure: there is nowhere else to go. With two, the clients go on until %d more have been answered after the first backend exited; then they stop, and the second backend gets SIGTERM too, so that its `shutdown finished` line gives its `sleeps=`. %d %s per row, summed.",
		l.Clients, l.MaxSleep, l.Before, l.After, l.Drains, plural(l.Drains, "run (drain)", "runs (drains)"))
}

// GRPCTable is the scenario's table, for the doc; empty if it did not run.
func (r *report) GRPCTable() string {
	if len(r.GRPC) == 0 {
		return ""
	}
	var b, notes strings.Builder
	b.WriteString("| clients | calls | OK | retried transparently (of them OK) | UNAVAILABLE | other | OK from the backend signalled / its `sleeps=` | OK from the other / its `sleeps=` | lost answers (`sleeps=` − OK) |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, run := range r.GRPC {
		if run.Err != nil {
			fmt.Fprintf(&notes, "- %s: %s\n", run.Case.Name, oneLine(run.Err.Error()))
		}
		other := "–"
		if len(run.OKBy) > 1 {
			other = fmt.Sprintf("%d / %d", run.OKBy[1], run.Sleeps[1])
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d (%d) | %d | %d | %d / %d | %s | %d |\n", run.Case.Name, run.Sent, run.OK, run.Retried, run.RetriedOK,
			run.Unavailable(), run.Other(), run.OKBy[0], run.Sleeps[0], other, run.Processed()-run.OK)
	}
	if notes.Len() > 0 {
		b.WriteString("\n" + notes.String())
	}
	return b.String()
}

// GRPCText is the same table as plain text, aligned, for docs/lab/grpc.txt,
// which a README can include with gen:file.
func (r *report) GRPCText() string {
	if len(r.GRPC) == 0 {
		return ""
	}
	rows := [][]string{{"clients", "calls", "OK", "retried (OK)", "UNAVAILABLE", "other", "signalled: OK/sleeps=", "other: OK/sleeps=", "lost"}}
	for _, run := range r.GRPC {
		other := "-"
		if len(run.OKBy) > 1 {
			other = fmt.Sprintf("%d/%d", run.OKBy[1], run.Sleeps[1])
		}
		name := strings.ReplaceAll(run.Case.Name, "`", "")
		if run.Err != nil {
			name += " (did not finish)"
		}
		rows = append(rows, []string{name, fmt.Sprint(run.Sent), fmt.Sprint(run.OK), fmt.Sprintf("%d (%d)", run.Retried, run.RetriedOK),
			fmt.Sprint(run.Unavailable()), fmt.Sprint(run.Other()), fmt.Sprintf("%d/%d", run.OKBy[0], run.Sleeps[0]), other,
			fmt.Sprint(run.Processed() - run.OK)})
	}
	widths := make([]int, len(rows[0]))
	for _, row := range rows {
		for i, cell := range row {
			widths[i] = max(widths[i], len(cell))
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "make lab-docs, %s, %d cores, %s, %s; %d drains per row, summed\n\n", r.Date, r.Cores, r.Platform, r.GoVersion, r.GRPCLoad.Drains)
	for _, row := range rows {
		var cells []string
		for i, cell := range row {
			if i == 0 {
				cells = append(cells, fmt.Sprintf("%-*s", widths[i], cell))
			} else {
				cells = append(cells, fmt.Sprintf("%*s", widths[i], cell))
			}
		}
		b.WriteString(strings.TrimRight(strings.Join(cells, "  "), " ") + "\n")
	}
	return b.String()
}

// GRPCFig is the row of the case named so, or nil.
func (r *report) GRPCFig(name string) *grpcRun {
	for i := range r.GRPC {
		if r.GRPC[i].Case.Name == name {
			return &r.GRPC[i]
		}
	}
	return nil
}

// GRPCFailedWithTwo is how many calls failed, over every row with two
// backends.
func (r *report) GRPCFailedWithTwo() int {
	n := 0
	for _, run := range r.GRPC {
		if run.Case.Backends > 1 {
			n += run.Sent - run.OK
		}
	}
	return n
}

// GRPCLostWithOne is how many answers were lost with one backend.
func (r *report) GRPCLostWithOne() int {
	n := 0
	for _, run := range r.GRPC {
		if run.Case.Backends == 1 {
			n += run.Processed() - run.OK
		}
	}
	return n
}

// GRPCLost is how many answers were lost (sleeps= − OK), over every row.
func (r *report) GRPCLost() int {
	n := 0
	for _, run := range r.GRPC {
		n += run.Processed() - run.OK
	}
	return n
}

// The colours of the gRPC picture.
var grpcColours = struct{ first, second, retried, unavailable, other string }{
	"#1565c0", "#2e7d32", "#f9a825", "#ef6c00", "#c62828",
}

func (c grpcCall) colour() (string, string) {
	switch {
	case c.Code != codes.OK && c.Code != codes.Unavailable:
		return grpcColours.other, c.Code.String()
	case c.Code == codes.Unavailable:
		return grpcColours.unavailable, "UNAVAILABLE"
	case c.Retried:
		return grpcColours.retried, fmt.Sprintf("OK after a transparent retry, from backend %d", c.Backend+1)
	case c.Backend == 0:
		return grpcColours.first, "OK from backend 1 (signalled)"
	}
	return grpcColours.second, fmt.Sprintf("OK from backend %d", c.Backend+1)
}

// grpcWindow is the picture's time axis, from SIGTERM.
const grpcWindowFrom, grpcWindowTo = -120 * time.Millisecond, 240 * time.Millisecond

// writeGRPCSVG draws the first drain of each row, a panel per row, one
// lane per client, to dir/grpc.svg, and writes the table as text to
// dir/grpc.txt.
func (r *report) writeGRPCSVG(dir string) error {
	if len(r.GRPC) == 0 {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	a := axis{from: grpcWindowFrom, to: grpcWindowTo, left: plotLeft, width: svgWidth - plotLeft - plotRight}
	var body strings.Builder
	y := legendTop + 20
	for _, run := range r.GRPC {
		fmt.Fprintf(&body, `<text x="8" y="%d" font-weight="bold">%s</text>`+"\n", y+12, esc(strings.ReplaceAll(run.Case.Name, "`", "")))
		top := y + 22
		if run.Signal.IsZero() {
			if run.Err != nil {
				fmt.Fprintf(&body, `<text x="%d" y="%d" fill="%s">%s</text>`+"\n", plotLeft, top+12, grpcColours.other, esc(clip(run.Err.Error(), 110)))
			}
			y = top + panelBottom
			continue
		}
		lanes := 1
		for _, c := range run.Calls {
			lanes = max(lanes, c.Lane+1)
		}
		bottom := top + lanes*rowHeight
		fmt.Fprintf(&body, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="#f5f5f5"/>`+"\n", plotLeft, top, a.width, bottom-top)
		for i, at := range []time.Duration{0, run.Exit.Sub(run.Signal)} {
			m := marks[2*i] // SIGTERM sent, process exited
			x := a.x(min(at, a.to))
			fmt.Fprintf(&body, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="2" stroke-dasharray="%s"><title>%s at %s</title></line>`+"\n",
				x, top-4, x, bottom+4, m.colour, m.dash, m.name, tickLabel(at.Round(10*time.Microsecond)))
		}
		for _, c := range run.Calls {
			from, to := max(c.Start.Sub(run.Signal), a.from), min(c.End.Sub(run.Signal), a.to)
			if to < a.from || from > a.to {
				continue
			}
			x1, x2 := a.x(from), a.x(to)
			colour, what := c.colour()
			fmt.Fprintf(&body, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s" stroke="#ffffff" stroke-width="0.5"><title>%s, %s</title></rect>`+"\n",
				x1, top+c.Lane*rowHeight+1, max(x2-x1, 2), barHeight, colour, esc(what), formatDuration(c.End.Sub(c.Start)))
		}
		how := run.Status
		if _, err := strconv.Atoi(how); err == nil {
			how = "exit " + how
		}
		fmt.Fprintf(&body, `<text x="%.1f" y="%d" fill="%s">backend 1: %s at %s</text>`+"\n",
			min(a.x(run.Exit.Sub(run.Signal))+5, a.left+a.width-170), top-5, marks[2].colour, esc(how), formatDuration(run.Exit.Sub(run.Signal)))
		fmt.Fprintf(&body, `<line x1="%d" y1="%d" x2="%.1f" y2="%d" stroke="#555555"/>`+"\n", plotLeft, bottom+6, float64(plotLeft)+a.width, bottom+6)
		for _, t := range ticks(a.from, a.to) {
			x := a.x(t)
			fmt.Fprintf(&body, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#555555"/><text x="%.1f" y="%d" text-anchor="middle" fill="#555555">%s</text>`+"\n",
				x, bottom+6, x, bottom+10, x, bottom+21, tickLabel(t))
		}
		y = bottom + panelBottom
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", svgWidth, y, svgWidth, y)
	b.WriteString("<title>14-grpc: Slow/Sleep calls through SIGTERM, first drain of each row</title>\n")
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", svgWidth, y)
	b.WriteString(`<text x="8" y="16" font-size="14" font-weight="bold">14-grpc: Sleep calls through SIGTERM to backend 1</text>` + "\n")
	fmt.Fprintf(&b, `<text x="%d" y="16" text-anchor="end" fill="#555555">time from SIGTERM; one row per client; first drain of each row</text>`+"\n", svgWidth-plotRight)
	x := 8.0
	for _, l := range []struct{ colour, name string }{
		{grpcColours.first, "OK, backend 1"}, {grpcColours.second, "OK, backend 2"}, {grpcColours.retried, "OK after a transparent retry"},
		{grpcColours.unavailable, "UNAVAILABLE"}, {grpcColours.other, "other code"},
	} {
		fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="14" height="%d" fill="%s"/><text x="%.1f" y="%d">%s</text>`+"\n", x, legendTop-barHeight, barHeight, l.colour, x+18, legendTop, l.name)
		x += 18 + 6.5*float64(len(l.name)) + 14
	}
	for _, m := range []int{0, 2} {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="2" stroke-dasharray="%s"/><text x="%.1f" y="%d">%s</text>`+"\n",
			x, legendTop-10, x, legendTop+2, marks[m].colour, marks[m].dash, x+6, legendTop, marks[m].name)
		x += 6 + 6.5*float64(len(marks[m].name)) + 14
	}
	b.WriteString(body.String())
	b.WriteString("</svg>\n")
	if err := os.WriteFile(filepath.Join(dir, "grpc.svg"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "grpc.txt"), []byte(r.GRPCText()), 0o644)
}

// GRPCRetriedWithTwo is how many calls grpc-go sent again transparently,
// over every row with two backends.
func (r *report) GRPCRetriedWithTwo() int {
	n := 0
	for _, run := range r.GRPC {
		if run.Case.Backends > 1 {
			n += run.Retried
		}
	}
	return n
}

// GRPCFailedWithOne is how many calls failed with one backend, and
// GRPCRefusedWithOne how many of those failed on a refused dial, the
// client's first call after the listener had closed.
func (r *report) GRPCFailedWithOne() int {
	n := 0
	for _, run := range r.GRPC {
		if run.Case.Backends == 1 {
			n += run.Sent - run.OK
		}
	}
	return n
}

func (r *report) GRPCRefusedWithOne() int {
	n := 0
	for _, run := range r.GRPC {
		if run.Case.Backends == 1 {
			for m, k := range run.Messages {
				if strings.Contains(m, "connection refused") {
					n += k
				}
			}
		}
	}
	return n
}

// GRPCAnswersMatch reports whether, in every row, each backend's sleeps=
// equals the answers that named it.
func (r *report) GRPCAnswersMatch() bool {
	for _, run := range r.GRPC {
		for i := range run.Sleeps {
			if run.OKBy[i] != run.Sleeps[i] {
				return false
			}
		}
	}
	return true
}
