package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gracefulgo/walkthrough/internal/demotest"
	"github.com/gracefulgo/walkthrough/internal/proc"
)

// TestTranscripts runs the sessions this step's README shows, with the
// three terminals of the workshop (web, worker, curl), and checks that a
// real run still goes that way, line for line. To rewrite
// testdata/*.transcript after a change: DEMOTEST_UPDATE=1 go test -run
// TestTranscripts ./09-worker-process, then make docs.
//
// demotest.Session records one program; these sessions have two, so they
// have a recorder of their own, in the same format. One worker at a time
// keeps each program's lines in one order on every run; River logs only
// warnings and errors, and none comes in these sessions.
func TestTranscripts(t *testing.T) {
	t.Parallel()                               // the sessions wait on timers, not on the CPU
	live := os.Getenv(demotest.LiveEnv) == "1" // make demo-09: one after the other, each line as it comes
	for _, session := range []struct {
		name, title string
		script      func(*recorder)
	}{
		{"three-terminals", "web, worker and curl: the jobs wait for a worker", threeTerminals},
		{"kill-worker", "kill -9 of the worker mid-send, and the rescue", killWorker},
		{"budget", "a send longer than the worker's budget", workerBudget},
	} {
		name := session.name
		t.Run(name, func(t *testing.T) {
			r := &recorder{t: t, database: sqliteDB(t), pids: map[int]string{}}
			if live {
				r.began = time.Now()
				fmt.Printf("\n== 09-worker-process: %s ==\n", session.title)
			} else {
				t.Parallel()
			}
			session.script(r)
			if live {
				return
			}
			got := r.transcript()
			file := filepath.Join("testdata", name+".transcript")
			if os.Getenv(demotest.UpdateEnv) == "1" {
				if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (%s=1 writes it)", err, demotest.UpdateEnv)
			}
			if got != string(want) {
				t.Errorf("the session differs from %s (%s=1 rewrites it, then make docs):\n--- %s\n%s--- this run\n%s",
					file, demotest.UpdateEnv, file, want, got)
			}
		})
	}
}

func threeTerminals(r *recorder) {
	r.note("Terminal 1: the web process. It creates the schema in data/jobs.db if it is not there.")
	web := r.start("web", "web")
	r.note("Terminal 3: two emails. The 202 comes once both jobs are committed, before any is sent.")
	r.post(web, emailBody("ann@example.com", "bob@example.com"))
	r.note("No worker runs yet: the jobs wait in the database.")
	r.get(web, "/emails/1")
	r.note("Terminal 2: the worker.")
	worker := r.start("worker", "worker", "-workers", "1", "-send-time", "200ms")
	r.expect(worker, "email sent")
	r.expect(worker, "email sent")
	r.get(web, "/emails/1")
	r.note("Ctrl+C in terminal 2: nothing is running, so the worker stops at once.")
	r.signal(worker, syscall.SIGINT)
	r.exit(worker)
}

func killWorker(r *recorder) {
	r.note("River elects one leader per database, which runs the rescuer. Here a River client of the test's own, which takes no email, leads, so that the worker killed below is not: a dead leader would add the rest of its term, about 15s.")
	handOver := holdLeadership(r.t, r.database)
	web := r.start("web", "web")
	r.post(web, emailBody("cy@example.com"))
	worker := r.start("worker", "worker", "-send-time", "20s", "-rescue-after", "1m")
	r.expect(worker, "email sending")
	r.note("The worker dies in the middle of the send: an OOM kill, a node lost, a kill -9.")
	r.signal(worker, syscall.SIGKILL)
	r.exit(worker)
	r.note("The job is still running, as far as the database knows, and nothing was sent.")
	r.get(web, "/emails/1")
	r.note("The leader stops and resigns; a new worker wins the lead as it starts, and its rescuer gives the job back, running for longer than -rescue-after.")
	awaitStuck(r.t, r.database, 1, time.Second)
	handOver()
	worker = r.start("worker", "worker", "-send-time", "200ms", "-rescue-after", "1s")
	r.expectWithin(worker, "email sent", rescueWait)
	r.get(web, "/emails/1")
	r.signal(worker, syscall.SIGTERM)
	r.exit(worker)
}

func workerBudget(r *recorder) {
	web := r.start("web", "web")
	r.post(web, emailBody("dee@example.com", "eve@example.com"))
	r.note("One email takes 2s, and the worker's shutdown may take 300ms.")
	worker := r.start("worker", "worker", "-workers", "1", "-send-time", "2s", "-shutdown-timeout", "300ms")
	r.expect(worker, "email sending")
	r.signal(worker, syscall.SIGTERM)
	r.exit(worker)
	r.note("Both jobs are in the database, available: the one cancelled mid-send with its attempt not counted.")
	r.get(web, "/emails/1")
	r.get(web, "/emails/2")
}

// recorder records a session with several programs, as demotest.Session
// does for one.
type recorder struct {
	t        *testing.T
	database string
	lines    []string
	logged   map[*demotest.Process]int // how many of a program's lines are in
	names    map[*demotest.Process]string
	pids     map[int]string // a pid, as the transcript names it
	began    time.Time      // set in live mode
}

func (r *recorder) record(who, text string) {
	if who != "" {
		text = fmt.Sprintf("%6s | %s", who, text)
	}
	r.lines = append(r.lines, text)
	if !r.began.IsZero() {
		fmt.Printf("%7.3fs  %s\n", time.Since(r.began).Seconds(), text)
	}
}

func (r *recorder) note(text string) { r.record("", "# "+text) }

// start runs a role of the program, waits until it listens (web) or takes
// jobs (worker), and records its lines so far.
func (r *recorder) start(name string, args ...string) *demotest.Process {
	r.t.Helper()
	args = append(args, "-database", r.database)
	addr, ready := "", "worker started"
	if args[0] == "web" {
		addr, ready = demotest.FreeAddr(r.t), "listening"
	}
	r.record("", "$ "+strings.Join(append([]string{"09-worker-process"}, args...), " "))
	p := demotest.StartAt(r.t, addr, args...)
	if r.names == nil {
		r.names, r.logged = map[*demotest.Process]string{}, map[*demotest.Process]int{}
	}
	r.names[p] = name
	r.pids[p.Pid()] = strconv.Itoa(demotest.TranscriptPid + len(r.pids))
	r.expect(p, ready)
	if addr != "" {
		if err := p.AwaitAnswer(demotest.EventTimeout); err != nil {
			r.t.Fatal(err)
		}
	}
	return p
}

func (r *recorder) expect(p *demotest.Process, msg string) {
	r.t.Helper()
	r.expectWithin(p, msg, demotest.EventTimeout)
}

// expectWithin waits for p's next line with msg, and adds p's lines up to
// it.
func (r *recorder) expectWithin(p *demotest.Process, msg string, timeout time.Duration) {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		lines, grew := p.Watch()
		for i := r.logged[p]; i < len(lines); i++ {
			if lines[i].Msg() == msg {
				r.add(p, lines[:i+1])
				return
			}
		}
		select {
		case <-grew:
		case <-p.Done():
			r.add(p, p.Lines())
			r.t.Fatalf("%s exited before it logged msg=%q; transcript so far:\n%s", r.names[p], msg, r.transcript())
		case <-time.After(time.Until(deadline)):
			r.t.Fatalf("%s did not log msg=%q within %s; transcript so far:\n%s", r.names[p], msg, timeout, r.transcript())
		}
	}
}

func (r *recorder) add(p *demotest.Process, lines []demotest.Line) {
	for _, l := range lines[r.logged[p]:] {
		r.record(r.names[p], l.Raw)
	}
	r.logged[p] = len(lines)
}

func (r *recorder) post(web *demotest.Process, body string) {
	r.record("client", "POST /emails "+body)
	resp, _ := web.PostJSON("/emails", body)
	r.answer(resp)
}

func (r *recorder) get(web *demotest.Process, path string) {
	r.record("client", "GET "+path)
	r.answer(web.Get(path))
}

func (r *recorder) answer(resp demotest.Response) {
	if resp.Err != nil {
		r.record("client", "error: "+resp.Err.Error())
		return
	}
	r.record("client", fmt.Sprintf("%d %s: %s", resp.Status, http.StatusText(resp.Status), strings.TrimSpace(resp.Body)))
}

func (r *recorder) signal(p *demotest.Process, sig syscall.Signal) {
	r.t.Helper()
	r.record("you", fmt.Sprintf("kill -%s %d", strings.TrimPrefix(proc.SignalName(sig), "SIG"), p.Pid()))
	p.Signal(sig)
}

func (r *recorder) exit(p *demotest.Process) {
	r.t.Helper()
	e := p.WaitExit()
	r.add(p, p.Lines())
	r.record(r.names[p], e.String())
}

var (
	timeRE     = regexp.MustCompile(`time=\S+ `)
	tookRE     = regexp.MustCompile(`\btook=\S+`)
	clientIDRE = regexp.MustCompile(`\bclient_id=\S+`)
	addrRE     = regexp.MustCompile(`127\.0\.0\.1:\d+`)
	pidRE      = regexp.MustCompile(`\b\d{2,}\b`)
)

// transcript is the session, normalised: no times, pids from 4242 on, port
// 8080, took=<duration>, data/jobs.db.
func (r *recorder) transcript() string {
	var b strings.Builder
	for _, line := range r.lines {
		line = timeRE.ReplaceAllString(line, "")
		line = tookRE.ReplaceAllString(line, "took=<duration>")
		line = clientIDRE.ReplaceAllString(line, "client_id=<client id>")
		line = strings.ReplaceAll(line, r.database, "data/jobs.db")
		// The port only: the program listens on 127.0.0.1, as it does
		// with its default -addr localhost:8080.
		line = addrRE.ReplaceAllString(line, net.JoinHostPort("127.0.0.1", strconv.Itoa(demotest.TranscriptPort)))
		line = pidRE.ReplaceAllStringFunc(line, func(n string) string {
			if name, ok := r.pids[atoi(n)]; ok {
				return name
			}
			return n
		})
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
