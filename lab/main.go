// Command lab puts every step under the same load and signals, side by
// side: for each step and scenario it counts the requests that completed,
// were dropped or were turned away, times the listener's closing and the
// exit, and draws one SVG timeline per step. A gRPC step (step 14) gets a
// scenario of its own instead, grpc-go clients through a drain (grpc.go).
//
// Usage, from the repository root:
//
//	make lab           # every step: prints the tables, draws bin/lab/svg/*.svg
//	make lab STEP=04   # one step: the same for step 04 only
//	make lab-docs      # every step: rewrites the committed docs/lab.md and docs/lab/*.svg (-write)
//	go run ./lab -v    # also prints each request that did not complete, and why
//
// Only -write touches docs/, so that exploring leaves a clean clone.
//
// Steps are the folders named NN-something. Each is built into bin/lab/; a
// step that does not build, or does not start, is reported and skipped.
// Steps and scenarios run one at a time, so that no run competes with
// another for the CPU while it is being timed.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// step is one step folder and what the lab learnt about it.
type step struct {
	Name               string       // the folder, such as "04-notifycontext"
	Bin                string       // the built program
	BuildErr           string       // why it did not build, or ""
	HasShutdownTimeout bool         // its -h lists -shutdown-timeout
	HasDrainDelay      bool         // its -h lists -drain-delay (step 10)
	UsesShutdown       bool         // its code calls a Shutdown method
	WebRole            bool         // one program with roles: its HTTP side is "web" (see crash.go)
	GRPC               bool         // a gRPC server (step 14): it gets the gRPC scenario (grpc.go), not the HTTP ones
	Runs               []Run        // one per scenario, in order
	Streams            []streamsRun // the streams scenario (streams.go)

	Untimed []untimedRun // the untimed scenario's runs (untimed.go)
}

func main() {
	only := flag.String("step", "", "run only the step with this number, such as 04")
	write := flag.Bool("write", false, "rewrite the committed docs/lab.md and docs/lab/*.svg (every step only); without it they are left alone")
	verbose := flag.Bool("v", false, "print every request that did not complete, and when the listener closed")
	flag.Parse()
	switch {
	case flag.NArg() > 0:
		usage("%q is not a flag", flag.Arg(0))
	case *write && *only != "":
		usage("-write rewrites the snapshot of every step: leave out -step")
	}
	if _, err := os.Stat("go.mod"); err != nil {
		fail("run the lab from the repository root (make lab): %v", err)
	}
	began := time.Now()
	load := loadAverage()

	steps, err := findSteps(*only)
	if err != nil {
		fail("%v", err)
	}
	if len(steps) == 0 {
		all, _ := findSteps("")
		var numbers []string
		for _, s := range all {
			numbers = append(numbers, s.Name[:2])
		}
		fail("no step %s (steps: %s)", *only, strings.Join(numbers, " "))
	}
	// A gRPC step answers no HTTP/1.1 request: it gets its own scenario,
	// and stays out of the HTTP steps' tables and timelines.
	var grpcRuns []grpcRun
	httpSteps := steps[:0:0]
	for _, s := range steps {
		build(s)
		if s.BuildErr != "" {
			fmt.Fprintf(os.Stderr, "%s: did not build, skipped\n", s.Name)
			httpSteps = append(httpSteps, s)
			continue
		}
		if s.GRPC {
			grpcRuns = append(grpcRuns, runGRPC(s, labGRPCLoad)...)
			continue
		}
		httpSteps = append(httpSteps, s)
		for _, sc := range scenarios {
			run := runScenario(s, sc)
			fmt.Fprintf(os.Stderr, "%s / %s: %s\n", s.Name, sc.Name, summary(run))
			s.Runs = append(s.Runs, run)
			if *verbose {
				printDetails(run)
			}
		}
		s.Untimed = runUntimed(s, *verbose)
		s.Streams = runStreams(s)
		for _, run := range s.Streams {
			fmt.Fprintf(os.Stderr, "%s / streams%s: events %s; websocket %s; exit %s\n", s.Name, run.Added, run.Events, run.Socket, run.ExitStatus)
		}
	}

	steps = httpSteps

	restarts := runRestarts(steps)
	for _, r := range restarts {
		fmt.Fprintf(os.Stderr, "%s / restart (%s): %+v\n", r.Step, r.How, r.figures())
	}

	postRaces := runPOSTRaces(steps)

	proxies := runProxies(steps)

	emails := runEmailLab(steps)
	orders := runOrdersLab(steps)
	var rolling []rollingRun
	for _, s := range rollingSteps(steps) {
		run := runRolling(s)
		fmt.Fprintf(os.Stderr, "%s / rolling update: %s\n", s.Name, rollingSummary(run))
		rolling = append(rolling, run)
	}

	rep := newReport(steps, time.Since(began))
	rep.Emails = emails
	rep.Load = load
	rep.Rolling = rolling
	rep.Restarts = restarts
	rep.POSTRaces = postRaces
	rep.Proxies = proxies
	rep.GRPC, rep.GRPCLoad = grpcRuns, labGRPCLoad
	fmt.Print(rep.tables())
	fmt.Print(rep.Emails)
	if orders != nil {
		fmt.Print(orders.tables())
	}
	svgDir := filepath.Join("bin", "lab", "svg")
	if *write {
		svgDir = filepath.Join("docs", "lab")
	}
	if err := rep.writeSVGs(svgDir, *write); err != nil {
		fail("%v", err)
	}
	if err := rep.writeRestartSVG(svgDir); err != nil {
		fail("%v", err)
	}
	if err := rep.writeRollingSVGs(svgDir); err != nil {
		fail("%v", err)
	}
	if err := rep.writePOSTSVG(svgDir); err != nil {
		fail("%v", err)
	}
	if err := rep.writeGRPCSVG(svgDir); err != nil {
		fail("%v", err)
	}
	if err := orders.write(svgDir); err != nil {
		fail("%v", err)
	}
	if *write {
		if err := rep.writeDoc(filepath.Join("docs", "lab.md")); err != nil {
			fail("%v", err)
		}
		if err := rep.writeProxiesDoc(proxiesDoc); err != nil {
			fail("%v", err)
		}
		fmt.Fprintf(os.Stderr, "wrote docs/lab.md and %s/ in %s\n", svgDir, rep.Elapsed.Round(time.Second))
	} else {
		fmt.Fprintf(os.Stderr, "drew %s/; docs/ untouched (make lab-docs rewrites docs/lab.md)\n", svgDir)
	}
}

// usage ends the program for a bad command line, as the flag package does.
func usage(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "lab: "+format+"\n", args...)
	flag.Usage()
	os.Exit(2)
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "lab: "+format+"\n", args...)
	os.Exit(1)
}

// findSteps lists the step folders, or the one whose number is only.
func findSteps(only string) ([]*step, error) {
	pattern := "[0-9][0-9]-*"
	switch {
	case strings.Contains(only, "-"):
		pattern = only // a whole folder name, such as 04-notifycontext
	case only != "":
		pattern = only + "-*"
	}
	dirs, err := filepath.Glob(pattern)
	if err != nil {
		return nil, err
	}
	var steps []*step
	for _, d := range dirs {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			steps = append(steps, &step{Name: d})
		}
	}
	return steps, nil
}

// build builds the step into bin/lab/ and finds out what it offers.
func build(s *step) {
	bin, err := filepath.Abs(filepath.Join("bin", "lab", s.Name))
	if err != nil {
		s.BuildErr = err.Error()
		return
	}
	out, err := exec.Command("go", "build", "-o", bin, "./"+s.Name).CombinedOutput()
	if err != nil {
		s.BuildErr = strings.TrimSpace(string(out) + "\n" + err.Error())
		return
	}
	s.Bin = bin
	// -h prints the flags and exits before the program does anything else.
	usage, _ := exec.Command(bin, "-h").CombinedOutput()
	s.HasShutdownTimeout = bytes.Contains(usage, []byte("-shutdown-timeout"))
	s.WebRole = hasWebRole(s, usage)
	s.HasDrainDelay = bytes.Contains(usage, []byte("-drain-delay"))
	sources, _ := filepath.Glob(filepath.Join(s.Name, "*.go"))
	for _, f := range sources {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if bytes.Contains(src, []byte(".Shutdown(")) {
			s.UsesShutdown = true
		}
		if bytes.Contains(src, []byte("grpc.NewServer(")) {
			s.GRPC = true
		}
	}
}

// summary is one progress line for the terminal.
func summary(r Run) string {
	if r.Signal.IsZero() {
		return r.Err.Error()
	}
	f := r.Figures()
	s := fmt.Sprintf("%d completed, %d dropped, %d turned away, exit %s", f.Completed, f.Dropped, f.TurnedAway, f.ExitStatus)
	if r.Err != nil {
		s += " (" + r.Err.Error() + ")"
	}
	return s
}

// printDetails prints what went wrong for each request that did not
// complete, and the window in which the listener closed.
func printDetails(r Run) {
	if r.Signal.IsZero() {
		return
	}
	at := func(t time.Time) string { return formatDuration(t.Sub(r.Signal)) }
	f := r.Figures()
	logged := "never"
	if !r.ShutdownLogged.IsZero() {
		logged = at(r.ShutdownLogged)
	}
	fmt.Fprintf(os.Stderr, "  shutdown started logged at %s; listener closed at %s, within %s; exit at %s\n", logged, at(r.ListenerClosed), formatDuration(f.Resolution), at(r.Exit))
	for _, req := range r.Requests {
		if req.Outcome != Completed {
			fmt.Fprintf(os.Stderr, "  lane %d: %s, %s to %s: %s\n", req.Lane, req.Outcome, at(req.Start), at(req.End), req.Err)
		}
	}
}

// loadAverage is the machine's load average over the last minute, as Linux
// reports it, or "" elsewhere: other work on the machine skews the timings.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	return strings.Fields(string(b))[0]
}
