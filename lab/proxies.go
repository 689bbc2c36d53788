package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/gracefulgo/walkthrough/internal/frontproxy"
	"github.com/gracefulgo/walkthrough/internal/noretry"
	"github.com/gracefulgo/walkthrough/internal/proc"
)

// Behind a real proxy: step 15's two replicas rolled under a no-retry
// load of GET / and POST /count, behind nginx and HAProxy as the step's
// deploy/ files configure them (internal/frontproxy starts both, as make
// run-15 and make measure-15 do), once per way of running them.
const (
	proxyRolls = 3
	proxyLanes = 8
	// proxiesDoc is the table as the step's README shows it (gen:include),
	// rewritten by make lab-docs.
	proxiesDoc = "15-behind-a-proxy/testdata/lab-proxies.md"
)

var proxiesAbout = fmt.Sprintf("Two replicas of step 15 behind the proxy, replaced one at a time %d times (start the new one, tell the proxy, SIGTERM the old one, as `make roll-15` does), under %d lanes of `GET /` and %d of `POST /count` that never retry; behind HAProxy the lanes keep their connections alive (HAProxy reuses a server connection only for a session's later requests), behind nginx each request has a connection of its own. The replicas' `count=` adds up the POSTs they processed.", proxyRolls, proxyLanes, proxyLanes)

// proxySetup is one row: the proxy and how it and the replicas are run.
type proxySetup struct {
	Name      string
	KeepAlive bool // the load's clients keep their connections to the proxy
	frontproxy.Setup
}

var proxySetups = []proxySetup{
	{Name: "nginx as a newcomer writes it: upstream keep-alive, default `max_fails`, SIGTERM then reload, no drain delay",
		Setup: frontproxy.Setup{Proxy: "nginx", StopFirst: true, Args: []string{"-drain-delay=0s"}}},
	{Name: "nginx as recommended: `max_fails=0`, reload then SIGTERM, `-drain-delay=1s`",
		Setup: frontproxy.Setup{Proxy: "nginx", ServerParams: "max_fails=0", Args: []string{"-drain-delay=1s"}}},
	{Name: "HAProxy, HTTP/1.1 to the replicas, health check `GET /readyz`, `-drain-delay=1s` (deploy/haproxy.cfg)", KeepAlive: true,
		Setup: frontproxy.Setup{Proxy: "haproxy", Args: []string{"-drain-delay=1s"}}},
	{Name: "HAProxy, `proto h2` to the replicas, the same check and `retry-on`, `-drain-delay=1s`", KeepAlive: true,
		Setup: frontproxy.Setup{Proxy: "haproxy", H2: true, Args: []string{"-drain-delay=1s"}}},
	{Name: "HAProxy, `proto h2` alone: a TCP check, not `GET /readyz`; HAProxy's default `retry-on conn-failure`; SIGTERM then maintenance, no drain delay", KeepAlive: true,
		Setup: frontproxy.Setup{Proxy: "haproxy", H2: true, StopFirst: true, Args: []string{"-drain-delay=0s"}, Replace: map[string]string{
			"option httpchk GET /readyz": "# no option httpchk", "http-check expect status 200": "# no http-check",
			"retry-on conn-failure empty-response": "retry-on conn-failure"}}},
}

type proxyRun struct {
	Setup proxySetup
	frontproxy.Measurement
	Err error
}

// ProxyErrors are the answers the proxy made itself: 502 and 503.
func (r proxyRun) ProxyErrors() int {
	return r.Statuses[502] + r.Statuses[503]
}

// Ambiguous are the requests the client cannot tell from a lost answer:
// an EOF, a reset, a timeout, any status but a 200, 502 or 503.
func (r proxyRun) Ambiguous() int {
	return r.Kind(noretry.EOF) + r.Kind(noretry.Reset) + r.Kind(noretry.Other) + r.Kind(noretry.Status) - r.ProxyErrors()
}

// runProxies runs every row on step 15, if it built and the proxies are
// installed; a row whose proxy is missing is a note, not a failure.
func runProxies(steps []*step) []proxyRun {
	var s15 *step
	for _, s := range steps {
		if s.BuildErr == "" && strings.HasPrefix(s.Name, "15-") {
			s15 = s
		}
	}
	if s15 == nil {
		return nil
	}
	var runs []proxyRun
	for _, ps := range proxySetups {
		run := proxyRun{Setup: ps}
		run.Err = runProxy(s15, &run)
		if run.Err != nil {
			fmt.Fprintf(os.Stderr, "%s / behind a proxy (%s): %v\n", s15.Name, ps.Name, run.Err)
		} else {
			fmt.Fprintf(os.Stderr, "%s / behind a proxy (%s): %s; count=%d\n", s15.Name, ps.Name, run.LoadResult, run.Count)
		}
		runs = append(runs, run)
	}
	return runs
}

func runProxy(s *step, run *proxyRun) error {
	if _, err := frontproxy.Lookup(run.Setup.Proxy); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "lab-proxy-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	listen, err := proc.FreeAddr()
	if err != nil {
		return err
	}
	setup := run.Setup.Setup
	setup.Deploy, setup.Dir, setup.Listen, setup.Bin = filepath.Join(s.Name, "deploy"), dir, listen, s.Bin
	f, err := setup.Start()
	if err != nil {
		return err
	}
	run.Measurement, err = frontproxy.MeasureRolls(f, proxyRolls, proxyLanes, run.Setup.KeepAlive)
	return err
}

// ProxiesTable is the rows, as Markdown, or "" when step 15 did not run.
func (r *report) ProxiesTable() string {
	if len(r.Proxies) == 0 {
		return ""
	}
	var b, notes strings.Builder
	b.WriteString("| in front | answered | refused | `502`/`503` from the proxy | ambiguous (EOF, reset) | the replicas' count against the POSTs answered |\n")
	b.WriteString("|---|--:|--:|--:|--:|---|\n")
	for _, run := range r.Proxies {
		if run.Err != nil {
			fmt.Fprintf(&notes, "- %s: %s\n", run.Setup.Name, oneLine(run.Err.Error()))
			if run.GETs == nil {
				fmt.Fprintf(&b, "| %s | | | | | not run |\n", run.Setup.Name)
				continue
			}
		}
		count := fmt.Sprintf("%d = %d", run.Count, run.POSTs[noretry.OK])
		if n := run.ProcessedUnanswered(); n > 0 {
			count = fmt.Sprintf("%d: %d processed, unanswered", run.Count, n)
		} else if n < 0 {
			count = fmt.Sprintf("%d: %d answered, counted by nobody", run.Count, -n)
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %s |\n", run.Setup.Name, run.Answered(), run.Kind(noretry.Refused),
			run.ProxyErrors(), run.Ambiguous(), count)
	}
	if notes.Len() > 0 {
		b.WriteString("\n" + notes.String())
	}
	return b.String()
}

// ProxiesAbout describes the scenario, for the doc.
func (r *report) ProxiesAbout() string { return proxiesAbout }

// writeProxiesDoc writes the table and what it ran for the step's README.
func (r *report) writeProxiesDoc(path string) error {
	if len(r.Proxies) == 0 {
		return nil
	}
	doc := fmt.Sprintf("%s\n\n%s\nMeasured by `make lab-docs` (%d cores, %s, %s, %s).\n", proxiesAbout, r.ProxiesTable(), r.Cores, r.Platform, r.GoVersion, r.Date)
	return os.WriteFile(path, []byte(doc), 0o644)
}
