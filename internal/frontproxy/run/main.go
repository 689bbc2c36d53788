// Command run is make run-15 and make roll-15: step 15's program, two
// replicas of it on loopback, behind HAProxy (the default) or nginx,
// started with the step's deploy/haproxy.cfg or deploy/nginx.conf in a
// folder of its own. It says which port to curl. Enter in its terminal,
// or SIGUSR1 (make roll-15 sends it, from the pid in bin/run-15.pid),
// replaces the replicas one at a time as a deploy would; Ctrl+C stops all.
//
// With -measure N it does not wait for you: it runs a no-retry load of
// GET / and POST /count through the proxy, rolls the replicas N times,
// and prints what the clients saw beside the replicas' count, the figures
// of the step's README.
//
// Usage:
//
//	go run ./internal/frontproxy/run -bin bin/15-behind-a-proxy [-proxy nginx] [-listen 127.0.0.1:8080] [-- replica flags]
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"

	"github.com/gracefulgo/walkthrough/internal/frontproxy"
	"github.com/gracefulgo/walkthrough/internal/noretry"
)

func main() {
	proxy := flag.String("proxy", "haproxy", "the proxy in front: haproxy or nginx")
	listen := flag.String("listen", "127.0.0.1:8080", "the address the proxy listens on")
	bin := flag.String("bin", "bin/15-behind-a-proxy", "the step's program, built")
	deploy := flag.String("deploy", "15-behind-a-proxy/deploy", "the folder with nginx.conf and haproxy.cfg")
	pidFile := flag.String("pidfile", "bin/run-15.pid", "where to write this process's pid, for make roll-15")
	measure := flag.Int("measure", 0, "roll this many times under load, print the counts, and exit")
	matrix := flag.String("matrix", "", "run every configuration of the step's README table (-measure rolls each, twice) and write the lines to this file")
	lanes := flag.Int("lanes", 8, "with -measure: lanes of GET and as many of POST")
	keepAlive := flag.Bool("keepalive", false, "with -measure: the load's clients keep their connections to the proxy alive")
	serverParams := flag.String("server-params", "max_fails=0", "behind nginx: the parameters of each upstream server line")
	h2 := flag.Bool("h2", false, "HAProxy speaks HTTP/2 to the replicas (proto h2 on its server line)")
	stopFirst := flag.Bool("stop-first", false, "roll as a newcomer's deploy does: SIGTERM the old replica, then tell the proxy")
	var replace replaceFlag
	flag.Var(&replace, "replace", `"LINE=>NEW" replaces a line of the proxy's configuration (may be repeated)`)
	flag.Parse()
	replicaArgs := flag.Args()
	if *matrix != "" {
		os.Exit(runMatrix(*matrix, max(*measure, 3), *lanes, []string{"-listen", *listen, "-bin", *bin, "-deploy", *deploy}))
	}
	if *proxy != "haproxy" && *proxy != "nginx" {
		fmt.Fprintf(os.Stderr, "-proxy %q: want haproxy or nginx\n", *proxy)
		os.Exit(2)
	}
	if _, err := frontproxy.Lookup(*proxy); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	dir, err := os.MkdirTemp("", "run-15-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(dir)

	setup := frontproxy.Setup{Proxy: *proxy, Deploy: *deploy, Dir: dir, Listen: *listen, Bin: *bin, Args: replicaArgs,
		ServerParams: *serverParams, H2: *h2, StopFirst: *stopFirst, Replace: replace}
	if *measure == 0 {
		setup.Log = func(format string, args ...any) { fmt.Printf("run-15: "+format+"\n", args...) }
	}
	f, err := setup.Start()
	if err != nil {
		fail(err)
	}
	if *measure > 0 {
		os.Exit(measureRolls(f, *measure, *lanes, *keepAlive))
	}

	if err := os.WriteFile(*pidFile, []byte(fmt.Sprintln(os.Getpid())), 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "run-15: %v: make roll-15 will not find this process; Enter here still rolls\n", err)
	}
	defer os.Remove(*pidFile)
	for _, r := range f.Replicas {
		fmt.Printf("run-15: replica %s (pid %d)%s\n", r.Addr, r.Pid(), slotOf(r))
	}
	fmt.Printf("run-15: %s listens on %s: curl http://%s/ and curl -X POST http://%s/count\n", *proxy, *listen, *listen, *listen)
	fmt.Println("run-15: Enter here (or make roll-15 in another terminal) rolls the replicas; Ctrl+C stops everything")

	rolls := make(chan struct{}, 1)
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			select {
			case rolls <- struct{}{}:
			default:
			}
		}
	}()
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	for {
		select {
		case <-rolls:
		case <-usr1:
		case <-stop:
			fmt.Println("run-15: stopping the replicas and the proxy")
			if err := f.Stop(); err != nil {
				fmt.Fprintln(os.Stderr, "run-15:", err)
			}
			fmt.Printf("run-15: the replicas counted %d POST /count in all\n", f.Count)
			return
		}
		fmt.Println("run-15: rolling update")
		if err := f.Roll(); err != nil {
			fmt.Fprintln(os.Stderr, "run-15: the roll failed:", err)
			continue
		}
		fmt.Println("run-15: rolled; the replicas counted", f.Count, "POST /count so far")
	}
}

// The configurations of the step's README table: a name, then the flags
// of this command that make it.
var configurations = []struct{ name, flags string }{
	{"nginx, default max_fails (1), SIGTERM then reload, -drain-delay 0s", "-proxy nginx -stop-first -server-params= -- -drain-delay 0s"},
	{"nginx, SIGTERM then reload, -drain-delay 0s (a newcomer's deploy)", "-proxy nginx -stop-first -- -drain-delay 0s"},
	{"nginx, SIGTERM then reload, -drain-delay 1s (step 10's delay alone)", "-proxy nginx -stop-first -- -drain-delay 1s"},
	{"nginx, reload then SIGTERM, -drain-delay 1s (recommended)", "-proxy nginx -- -drain-delay 1s"},
	{"nginx, reload then SIGTERM, -drain-delay 1s, clients keep-alive", "-proxy nginx -keepalive -- -drain-delay 1s"},
	{"haproxy, httpchk, -drain-delay 1s, clients keep-alive (recommended)", "-proxy haproxy -keepalive -- -drain-delay 1s"},
	{"haproxy, TCP check (no httpchk), retry-on conn-failure (HAProxy's default), -drain-delay 0s", "-proxy haproxy -keepalive -stop-first " + noHTTPCheck + connFailureOnly + " -- -drain-delay 0s"},
	{"haproxy, TCP check, retry-on conn-failure empty-response (deploy/haproxy.cfg's), -drain-delay 0s", "-proxy haproxy -keepalive -stop-first " + noHTTPCheck + " -- -drain-delay 0s"},
	{"haproxy, httpchk, retry-on conn-failure, -drain-delay 0s (shorter than inter x fall)", "-proxy haproxy -keepalive -stop-first" + connFailureOnly + " -- -drain-delay 0s"},
	{"haproxy, httpchk, retry-on conn-failure, -drain-delay 100ms (shorter than inter x fall)", "-proxy haproxy -keepalive -stop-first" + connFailureOnly + " -- -drain-delay 100ms"},
	{"haproxy, proto h2, TCP check, retry-on conn-failure, -drain-delay 0s", "-proxy haproxy -keepalive -stop-first -h2 " + noHTTPCheck + connFailureOnly + " -- -drain-delay 0s"},
	{"haproxy, proto h2, TCP check, retry-on conn-failure empty-response, -drain-delay 0s", "-proxy haproxy -keepalive -stop-first -h2 " + noHTTPCheck + " -- -drain-delay 0s"},
	{"haproxy, proto h2, httpchk, -drain-delay 1s", "-proxy haproxy -keepalive -h2 -- -drain-delay 1s"},
}

// The -replace flags of the configurations above: a TCP check instead of
// deploy/haproxy.cfg's HTTP one, and HAProxy's default retry-on instead of
// the deploy's.
const (
	noHTTPCheck     = "-replace option httpchk GET /readyz=>#none -replace http-check expect status 200=>#none"
	connFailureOnly = " -replace retry-on conn-failure empty-response=>retry-on conn-failure"
)

// runMatrix runs this command once per configuration and run, each a
// process of its own, and writes what each printed to file.
func runMatrix(file string, rolls, lanes int, common []string) int {
	self, err := os.Executable()
	if err != nil {
		fail(err)
	}
	var out strings.Builder
	fmt.Fprintf(&out, "# make measure-15: %d rolls of two replicas per run, %d GET and %d POST lanes, two runs each\n", rolls, lanes, lanes)
	code := 0
	for _, c := range configurations {
		for run := 1; run <= 2; run++ {
			args := append([]string{"-measure", fmt.Sprint(rolls), "-lanes", fmt.Sprint(lanes)}, common...)
			args = append(args, splitFlags(c.flags)...)
			cmd := exec.Command(self, args...)
			cmd.Stderr = os.Stderr
			b, err := cmd.Output()
			first, _, _ := strings.Cut(string(b), "\n")
			line := fmt.Sprintf("%s (run %d): %s", c.name, run, first)
			if err != nil {
				line += fmt.Sprintf(" [%v]", err)
				code = 1
			}
			fmt.Println(line)
			out.WriteString(line + "\n")
		}
	}
	if err := os.WriteFile(file, []byte(out.String()), 0o644); err != nil {
		fail(err)
	}
	return code
}

// splitFlags splits a configuration's flags on spaces, except inside a
// -replace value, which runs to the next flag.
func splitFlags(s string) []string {
	var args []string
	for _, f := range strings.Fields(s) {
		if n := len(args); n > 0 && !strings.HasPrefix(f, "-") && args[n-1] != "-replace" && n >= 2 && args[n-2] == "-replace" {
			args[n-1] += " " + f
			continue
		}
		args = append(args, f)
	}
	return args
}

// measureRolls rolls the replicas n times under load and prints one line:
// what the clients saw, and the replicas' count.
func measureRolls(f *frontproxy.Fleet, n, lanes int, keepAlive bool) int {
	m, err := frontproxy.MeasureRolls(f, n, lanes, keepAlive)
	code := 0
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	fmt.Printf("%s, %d rolls: %s; failed POSTs %d, of which processed %d (count=%d against %d answered)\n",
		f.Proxy.Name, n, m.LoadResult, m.POSTs.Failed(), m.ProcessedUnanswered(), m.Count, m.POSTs[noretry.OK])
	for _, e := range m.FailedExamples {
		fmt.Println("  e.g.", e)
	}
	return code
}

func slotOf(r *frontproxy.Replica) string {
	if r.Slot == "" {
		return ""
	}
	return ", HAProxy slot " + r.Slot
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "run-15:", err)
	os.Exit(1)
}

// replaceFlag collects -replace "OLD=>NEW".
type replaceFlag map[string]string

func (r *replaceFlag) String() string { return fmt.Sprint(map[string]string(*r)) }

func (r *replaceFlag) Set(s string) error {
	old, repl, ok := strings.Cut(s, "=>")
	if !ok {
		return fmt.Errorf("want OLD=>NEW, got %q", s)
	}
	if *r == nil {
		*r = map[string]string{}
	}
	(*r)[strings.TrimSpace(old)] = strings.TrimSpace(repl)
	return nil
}
