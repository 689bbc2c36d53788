package main

// The lab's scenarios for the steps that take email jobs (06 and 09): a
// kill -9 of the process doing the work in the middle of a batch, and the
// throughput of POST /emails with sends that take no time.

import (
	"bufio"
	"bytes"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gracefulgo/walkthrough/internal/proc"
	_ "modernc.org/sqlite"
)

const (
	crashJobs      = 40 // jobs accepted before the kill -9
	crashSentFirst = 8  // emails sent when the kill -9 comes
	crashSendTime  = 100 * time.Millisecond
	rateJobs       = 1000 // jobs through POST /emails for the throughput
	ratePerRequest = 10   // recipients per POST
	rateClients    = 4    // POSTs at once
	rescueWaitLab  = 90 * time.Second
)

// hasWebRole reports whether a step is one program with roles, whose HTTP
// side is "web": its usage names "<step> web".
func hasWebRole(s *step, usage []byte) bool {
	return bytes.Contains(usage, []byte(s.Name+" web"))
}

// roleArgs are the words before a step's flags: its web role, if it has
// roles.
func (s *step) roleArgs() []string {
	if s.WebRole {
		return []string{"web"}
	}
	return nil
}

// emailRun is one step's figures in the email scenarios.
type emailRun struct {
	Step                        string
	Accepted, Sent, Lost, Twice int
	CutAndResent                int           // sends the kill cut short, begun again later
	Recovery                    time.Duration // kill -9 to the last job sent, if all were
	RateJobs                    int
	EnqueueTime, RateTime       time.Duration // first POST to the last 202; to the last send
	Err                         error
}

// runEmailLab runs both email scenarios on each step that has them, and
// returns the Markdown tables, or "" when no step has them.
func runEmailLab(steps []*step) string {
	var runs []emailRun
	for _, s := range steps {
		if s.BuildErr != "" || (s.Name[:2] != "06" && s.Name[:2] != "09") {
			continue
		}
		run := emailRun{Step: s.Name}
		var crashErr, rateErr error
		if s.WebRole {
			crashErr = crashWorkerProcess(s, &run)
			rateErr = rateWorkerProcess(s, &run)
		} else {
			crashErr = crashInProcess(s, &run)
			rateErr = rateInProcess(s, &run)
		}
		run.Err = errors.Join(crashErr, rateErr)
		fmt.Fprintf(os.Stderr, "%s / kill -9 mid-batch: %d accepted, %d sent, %d lost, %d sent twice; %d jobs/s\n",
			s.Name, run.Accepted, run.Sent, run.Lost, run.Twice, jobsPerSecond(run.RateJobs, run.RateTime))
		if run.Err != nil {
			fmt.Fprintf(os.Stderr, "  %v\n", run.Err)
		}
		runs = append(runs, run)
	}
	if len(runs) == 0 {
		return ""
	}
	return emailTables(runs)
}

func emailTables(runs []emailRun) string {
	var b, notes strings.Builder
	b.WriteString("| step | accepted (202) | sent | lost | sent twice | sends cut by the kill, begun again | kill -9 → all sent |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range runs {
		recovery := "never"
		if r.Recovery > 0 {
			recovery = formatDuration(r.Recovery)
		}
		fmt.Fprintf(&b, "| [%s](../%s/) | %d | %d | %d | %d | %d | %s |\n", r.Step, r.Step, r.Accepted, r.Sent, r.Lost, r.Twice, r.CutAndResent, recovery)
		if r.Err != nil {
			fmt.Fprintf(&notes, "- %s: %s\n", r.Step, oneLine(r.Err.Error()))
		}
	}
	b.WriteString("\n| step | jobs | POSTs → last 202 | accepted, jobs/s | POSTs → last sent | sent, jobs/s |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|\n")
	for _, r := range runs {
		fmt.Fprintf(&b, "| [%s](../%s/) | %d | %s | %d | %s | %d |\n", r.Step, r.Step, r.RateJobs,
			formatDuration(r.EnqueueTime), jobsPerSecond(r.RateJobs, r.EnqueueTime), formatDuration(r.RateTime), jobsPerSecond(r.RateJobs, r.RateTime))
	}
	if notes.Len() > 0 {
		b.WriteString("\n" + notes.String())
	}
	return b.String()
}

func jobsPerSecond(n int, d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int(float64(n) / d.Seconds())
}

// crashInProcess: step 06 sends in the web process. Its kill -9 loses what
// the queue held; the restart has no spool to read, since nothing wrote it.
func crashInProcess(s *step, run *emailRun) error {
	dir, err := os.MkdirTemp("", "lab-"+s.Name+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	flags := []string{"-workers", "4", "-send-time", crashSendTime.String()}
	p, err := start(s.Bin, dir, flags...)
	if err != nil {
		return err
	}
	defer p.Kill()
	ids, err := postJobs(p.Addr, crashJobs, ratePerRequest, 1)
	run.Accepted = len(ids)
	if err != nil {
		return err
	}
	if err := p.awaitLog("email sent", crashSentFirst); err != nil {
		return err
	}
	if _, err := p.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	if err := p.awaitExit(proc.EventTimeout); err != nil {
		return err
	}
	cut := cutShort(p.Process)
	// The restart finds no spool: it has nothing to send, and drains at once.
	again, err := start(s.Bin, dir, flags...)
	if err != nil {
		return err
	}
	defer again.Kill()
	if _, err := again.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	if err := again.awaitExit(proc.EventTimeout); err != nil {
		return err
	}
	sent, err := outboxIDs(filepath.Join(dir, "data", "outbox.jsonl"))
	if err != nil {
		return err
	}
	count(run, ids, sent)
	run.CutAndResent = len(intersect(cut, sendsBegun(again.Process)))
	return nil
}

// crashWorkerProcess: step 09's worker is killed mid-batch; a new worker
// takes what was left, and River's rescuer gives it the jobs the dead one
// was running.
func crashWorkerProcess(s *step, run *emailRun) error {
	dir, err := os.MkdirTemp("", "lab-"+s.Name+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	web, err := start(s.Bin, dir, "web")
	if err != nil {
		return err
	}
	defer web.Kill()
	ids, err := postJobs(web.Addr, crashJobs, ratePerRequest, 1)
	run.Accepted = len(ids)
	if err != nil {
		return err
	}
	flags := []string{"-workers", "4", "-send-time", crashSendTime.String(), "-rescue-after", "2s"}
	first, err := startWorker(s.Bin, dir, flags...)
	if err != nil {
		return err
	}
	defer first.Kill()
	if err := first.awaitLog("email sent", crashSentFirst); err != nil {
		return err
	}
	killedAt, err := first.Signal(syscall.SIGKILL)
	if err != nil {
		return err
	}
	if err := first.awaitExit(proc.EventTimeout); err != nil {
		return err
	}
	cut := cutShort(first.Process)
	second, err := startWorker(s.Bin, dir, flags...)
	if err != nil {
		return err
	}
	defer second.Kill()
	database := filepath.Join(dir, "data", "jobs.db")
	var sent []string
	for deadline := time.Now().Add(rescueWaitLab); ; {
		if sent, err = sentIDs(database); err != nil {
			return err
		}
		if len(sent) >= len(ids) {
			run.Recovery = time.Since(killedAt)
			break
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // a poll of the database
	}
	count(run, ids, sent)
	run.CutAndResent = len(intersect(cut, sendsBegun(second.Process)))
	return errors.Join(stop(second), stop(web))
}

// rateInProcess times rateJobs through step 06, which sends in memory.
func rateInProcess(s *step, run *emailRun) error {
	dir, err := os.MkdirTemp("", "lab-"+s.Name+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := start(s.Bin, dir, "-workers", "4", "-send-time", "0s", "-queue-size", fmt.Sprint(rateJobs))
	if err != nil {
		return err
	}
	defer p.Kill()
	return timeRate(p.Addr, p.Process, run)
}

// rateWorkerProcess times rateJobs through step 09's web and worker, on
// SQLite.
func rateWorkerProcess(s *step, run *emailRun) error {
	dir, err := os.MkdirTemp("", "lab-"+s.Name+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	web, err := start(s.Bin, dir, "web")
	if err != nil {
		return err
	}
	defer web.Kill()
	worker, err := startWorker(s.Bin, dir, "-workers", "4", "-send-time", "0s")
	if err != nil {
		return err
	}
	defer worker.Kill()
	return timeRate(web.Addr, worker.Process, run)
}

// timeRate posts rateJobs and waits for sender to log each one as sent.
func timeRate(addr string, sender *proc.Process, run *emailRun) error {
	began := time.Now()
	ids, err := postJobs(addr, rateJobs, ratePerRequest, rateClients)
	run.EnqueueTime = time.Since(began)
	if err != nil {
		return err
	}
	if _, ok := sender.AwaitLogN("email sent", len(ids), rescueWaitLab); !ok {
		return fmt.Errorf("%d of %d jobs sent within %s", sender.Count("email sent"), len(ids), rescueWaitLab)
	}
	run.RateJobs, run.RateTime = len(ids), time.Since(began)
	return nil
}

// stop sends SIGTERM and waits for the exit.
func stop(p *process) error {
	if _, err := p.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	return p.awaitExit(proc.EventTimeout)
}

// startWorker starts a step's worker role, which serves no HTTP, and
// returns once it takes jobs.
func startWorker(bin, dir string, args ...string) (*process, error) {
	cmd := exec.Command(bin, append([]string{"worker"}, args...)...)
	cmd.Dir = dir
	started, err := proc.Start("", cmd)
	if err != nil {
		return nil, err
	}
	p := &process{started}
	if err := p.awaitLog("worker started", 1); err != nil {
		p.Kill()
		return nil, err
	}
	return p, nil
}

// postJobs sends n jobs to POST /emails, perRequest recipients at a time,
// from clients at once, and returns the ids of the accepted ones, as text.
func postJobs(addr string, n, perRequest, clients int) ([]string, error) {
	var (
		mu   sync.Mutex
		ids  []string
		errs []error
		wg   sync.WaitGroup
	)
	requests := make(chan int)
	for range clients {
		wg.Go(func() {
			for first := range requests {
				var to []string
				for i := first; i < min(first+perRequest, n); i++ {
					to = append(to, fmt.Sprintf("lab-%d@example.com", i))
				}
				got, err := postEmails(addr, to)
				mu.Lock()
				ids, errs = append(ids, got...), append(errs, err)
				mu.Unlock()
			}
		})
	}
	for first := 0; first < n; first += perRequest {
		requests <- first
	}
	close(requests)
	wg.Wait()
	return ids, errors.Join(errs...)
}

func postEmails(addr string, to []string) ([]string, error) {
	body, _ := json.Marshal(map[string]any{"to": to, "subject": "lab", "body": "Hi."})
	resp, err := http.Post("http://"+addr+"/emails", "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var answer struct{ IDs []json.RawMessage }
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil || resp.StatusCode != http.StatusAccepted {
		return nil, fmt.Errorf("POST /emails: %s (%v)", resp.Status, err)
	}
	ids := make([]string, len(answer.IDs))
	for i, id := range answer.IDs {
		ids[i] = strings.Trim(string(id), `"`) // 06's ids are strings, 09's numbers
	}
	return ids, nil
}

// count fills in sent, lost and sent twice from the accepted ids and the
// ids of what was recorded as sent, one per send.
func count(run *emailRun, accepted, sent []string) {
	times := map[string]int{}
	for _, id := range sent {
		times[id]++
	}
	for _, id := range accepted {
		switch n := times[id]; {
		case n == 0:
			run.Lost++
		case n > 1:
			run.Twice++
		}
		if times[id] > 0 {
			run.Sent++
		}
	}
}

// sendsBegun is the ids of the sends a process began; cutShort, those it
// began and did not finish.
func sendsBegun(p *proc.Process) []string { return logged(p, "email sending") }

func cutShort(p *proc.Process) []string {
	sent := logged(p, "email sent")
	var cut []string
	for _, id := range sendsBegun(p) {
		if !slices.Contains(sent, id) {
			cut = append(cut, id)
		}
	}
	return cut
}

func logged(p *proc.Process, msg string) []string {
	var ids []string
	for _, l := range p.Lines() {
		if l.Msg() == msg {
			ids = append(ids, l.Attr("id"))
		}
	}
	return ids
}

func intersect(a, b []string) []string {
	var both []string
	for _, id := range a {
		if slices.Contains(b, id) {
			both = append(both, id)
		}
	}
	return both
}

// outboxIDs reads step 06's outbox: one JSON job per line.
func outboxIDs(path string) ([]string, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ids []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var job struct{ ID string }
		if err := json.Unmarshal(sc.Bytes(), &job); err != nil {
			return nil, err
		}
		ids = append(ids, job.ID)
	}
	return ids, sc.Err()
}

// sentIDs reads step 09's sent table.
func sentIDs(database string) ([]string, error) {
	db, err := sql.Open("sqlite", "file:"+database+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.Query(`SELECT job_id FROM sent`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}
