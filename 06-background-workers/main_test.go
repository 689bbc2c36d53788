package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gracefulgo/walkthrough/internal/demotest"
)

func TestMain(m *testing.M) { demotest.Main(m, main) }

// The step keeps every lesson of step 05: chi and the workers change
// nothing about how HTTP drains. Each run gets its own outbox and spool.
func TestScenarios(t *testing.T) {
	t.Parallel()
	demotest.Suite{Args: func(t *testing.T) []string { return files(t.TempDir()) }}.Run(t)
}

// TestDrainSendsEveryAcceptedJob: at SIGTERM the workers still have jobs
// queued; the program sends every one of them before it exits 0.
func TestDrainSendsEveryAcceptedJob(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// 8 jobs, 2 at a time, 250ms each: a second of work after the 202.
	p := demotest.Start(t, append(files(dir), "-workers", "2", "-send-time", "250ms")...)
	ids := accept(t, p, recipients("drain", 8)...)
	p.Signal(syscall.SIGTERM)
	if exit := p.WaitExit(); exit.Code != 0 {
		t.Fatalf("%s after SIGTERM, want exit status 0", exit)
	}
	checkOnce(t, ids, readJobs(t, filepath.Join(dir, "outbox.jsonl")))
	if _, err := os.Stat(filepath.Join(dir, "spool.jsonl")); !os.IsNotExist(err) {
		t.Errorf("a spool was written after a complete drain (%v)", err)
	}
	// The drain is the point: some of the emails went out after the signal,
	// while HTTP had already stopped.
	if after := sentAfter(p, "http stopped"); after == 0 {
		t.Errorf("no email was sent after HTTP stopped: the test did not exercise the drain")
	}
}

// TestPostInFlightAtSignalIsAccepted: HTTP stops before the queue closes.
// A POST whose handler is running when SIGTERM arrives still gets its 202,
// and its email is sent in the drain; closing the queue first would turn
// it away with a 503.
func TestPostInFlightAtSignalIsAccepted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := demotest.Start(t, append(files(dir), "-send-time", "10ms")...)
	conn, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"to":["late@example.com"],"subject":"in flight","body":"Hi."}`
	// With Expect: 100-continue, the server sends "100 Continue" when the
	// handler first reads the body. Once that arrives, the handler is
	// running, waiting for a body the client has not sent yet.
	fmt.Fprintf(conn, "POST /emails HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"+
		"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n", len(body))
	reader := bufio.NewReader(conn)
	if resp, err := http.ReadResponse(reader, nil); err != nil || resp.StatusCode != http.StatusContinue {
		t.Fatalf("want 100 Continue, got %v, %v", resp, err)
	}
	p.Signal(syscall.SIGTERM)
	p.WaitLog("shutdown started")
	fmt.Fprint(conn, body)
	resp, err := http.ReadResponse(reader, nil)
	if err != nil {
		t.Fatalf("the in-flight POST got no answer: %v", err)
	}
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("the POST in flight at the signal got %d %q, want 202", resp.StatusCode, answer)
	}
	if exit := p.WaitExit(); exit.Code != 0 {
		t.Errorf("%s, want exit status 0", exit)
	}
	var sent []string
	for _, job := range readJobs(t, filepath.Join(dir, "outbox.jsonl")) {
		sent = append(sent, job.To)
	}
	if !slices.Equal(sent, []string{"late@example.com"}) {
		t.Errorf("the outbox holds %q, want the in-flight POST's one email", sent)
	}
}

// TestBudgetExpirySpoolsAndRestartSendsTheRest: when -shutdown-timeout runs
// out mid-send, the program cancels the sends, spools every unsent job and
// exits 1; a restart sends exactly those, so each recipient gets one email.
func TestBudgetExpirySpoolsAndRestartSendsTheRest(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	outbox, spool := filepath.Join(dir, "outbox.jsonl"), filepath.Join(dir, "spool.jsonl")
	// 10 jobs, 2 at a time, 400ms each: two seconds of work, half a second of budget.
	p := demotest.Start(t, append(files(dir), "-workers", "2", "-send-time", "400ms", "-shutdown-timeout", "500ms")...)
	ids := accept(t, p, recipients("budget", 10)...)
	p.WaitLog("email sent")
	p.Signal(syscall.SIGTERM)
	if exit := p.WaitExit(); exit.Code != 1 {
		t.Errorf("%s when the budget ran out, want exit status 1", exit)
	}
	for _, msg := range []string{"email cancelled", "jobs spooled", "shutdown forced"} {
		if _, ok := p.Logged(msg); !ok {
			t.Errorf("msg=%q was not logged", msg)
		}
	}
	sent, spooled := readJobs(t, outbox), readJobs(t, spool)
	if len(spooled) == 0 {
		t.Fatal("the spool is empty")
	}
	// Each job is in the outbox or in the spool: never both, never neither.
	checkOnce(t, ids, append(slices.Clone(sent), spooled...))

	// A queue smaller than the spool still takes it whole.
	p = demotest.Start(t, append(files(dir), "-send-time", "10ms", "-queue-size", "1")...)
	if got, want := p.WaitLog("jobs restored").Attr("count"), fmt.Sprint(len(spooled)); got != want {
		t.Errorf("jobs restored count=%s, want %s", got, want)
	}
	if _, err := os.Stat(spool); !os.IsNotExist(err) {
		t.Errorf("the spool is still there once the program listens (%v)", err)
	}
	p.Signal(syscall.SIGTERM)
	if exit := p.WaitExit(); exit.Code != 0 {
		t.Errorf("%s after the restart's drain, want exit status 0", exit)
	}
	checkOnce(t, ids, readJobs(t, outbox))
}

// TestSecondSignalSpoolsAtOnce: a second signal does not wait out the
// budget (10s by default): it cancels the send in progress, spools every
// job and exits 1 within moments.
func TestSecondSignalSpoolsAtOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// The budget is a minute, so that a swallowed second signal is told
	// apart from a slow machine: patience is a hang bound well short of it.
	const patience = 20 * time.Second
	p := demotest.Start(t, append(files(dir), "-workers", "1", "-send-time", "1m", "-shutdown-timeout", "1m")...)
	ids := accept(t, p, recipients("second", 3)...)
	p.WaitLog("email sending")
	p.Signal(syscall.SIGTERM)
	p.WaitLog("shutdown started")
	p.Signal(syscall.SIGTERM)
	exit, ok := p.AwaitExit(patience)
	if !ok {
		t.Fatalf("still running %s after the second signal: it waits out the budget", patience)
	}
	if exit.Code != 1 {
		t.Errorf("%s after a second signal, want exit status 1", exit)
	}
	if _, ok := p.Logged("email cancelled"); !ok {
		t.Error("the send in progress was not cancelled")
	}
	checkOnce(t, ids, readJobs(t, filepath.Join(dir, "spool.jsonl")))
	if sent := readJobs(t, filepath.Join(dir, "outbox.jsonl")); len(sent) != 0 {
		t.Errorf("the outbox holds %d emails, want none", len(sent))
	}
}

// TestEmailsStatuses: bad input gets a 4xx with a one-line reason and
// queues nothing; a full queue gets 503 with Retry-After and takes a
// request whole or not at all.
func TestEmailsStatuses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// One worker busy for a minute and room for 3 queued jobs: the queue
	// fills up and stays full.
	p := demotest.Start(t, append(files(dir), "-workers", "1", "-queue-size", "3", "-send-time", "1m", "-shutdown-timeout", "300ms")...)
	for _, c := range []struct {
		name, body string
		status     int
	}{
		{"malformed JSON", `{"to": ["ann@example.com"`, http.StatusBadRequest},
		{"not an object", `["ann@example.com"]`, http.StatusBadRequest},
		{"two values", `{"to": ["ann@example.com"]} {}`, http.StatusBadRequest},
		{"no recipients", `{"subject": "hi"}`, http.StatusBadRequest},
		{"empty list", `{"to": []}`, http.StatusBadRequest},
		{"bad address", `{"to": ["ann@example.com", "bob at example.com"]}`, http.StatusBadRequest},
		{"unknown field", `{"to": ["ann@example.com"], "cc": ["bob@example.com"]}`, http.StatusBadRequest},
		{"data after the object", `{"to": ["ann@example.com"]}]`, http.StatusBadRequest},
		{"not UTF-8", "{\"to\": [\"ann@example.com\"], \"body\": \"\xff\"}", http.StatusBadRequest},
		{"body over 1 MiB", `{"to": ["ann@example.com"], "body": "` + strings.Repeat("x", 1<<20) + `"}`, http.StatusRequestEntityTooLarge},
		{"more than the queue holds", emailBody(recipients("many", 4)...), http.StatusRequestEntityTooLarge},
	} {
		r, _ := p.PostJSON("/emails", c.body)
		if r.Err != nil || r.Status != c.status || !oneLine(r.Body) {
			t.Errorf("%s: %v, want %d with a one-line reason", c.name, r, c.status)
		}
	}
	if r, _ := p.PostJSON("/emails", `{"to": ["ann@example.com"], "cc": ["bob@example.com"]}`); !strings.Contains(r.Body, `"cc"`) {
		t.Errorf("an unknown field got %v, want a reason that names it", r)
	}
	if r := p.Get("/emails"); r.Status != http.StatusMethodNotAllowed || strings.TrimSpace(r.Body) != "Method Not Allowed" || r.Header.Get("Allow") != "POST" {
		t.Errorf("GET /emails = %v, Allow: %q; want 405 Method Not Allowed, Allow: POST", r, r.Header.Get("Allow"))
	}
	if _, ok := p.Logged("email sending"); ok {
		t.Fatal("a refused request queued jobs")
	}

	// The worker takes a@ and the queue is empty again; b@ and c@ fill two
	// of its three places.
	accept(t, p, "a@example.com")
	p.WaitLog("email sending")
	accept(t, p, "b@example.com", "c@example.com")
	// Two more do not fit: the request is refused whole...
	r, header := p.PostJSON("/emails", emailBody("d@example.com", "e@example.com"))
	if r.Status != http.StatusServiceUnavailable || !oneLine(r.Body) {
		t.Errorf("2 jobs for 1 place: %v, want 503 with a one-line reason", r)
	}
	if got := header.Get("Retry-After"); got != "60" {
		t.Errorf("Retry-After: %q, want 60, the time a worker takes to free a place", got)
	}
	// ...so d@ alone still finds its place, and then the queue is full.
	accept(t, p, "d@example.com")
	if r, _ := p.PostJSON("/emails", emailBody("e@example.com")); r.Status != http.StatusServiceUnavailable {
		t.Errorf("a full queue answered %v, want 503", r)
	}

	// The budget runs out: everything accepted is spooled, and e@ never was.
	p.Signal(syscall.SIGTERM)
	if exit := p.WaitExit(); exit.Code != 1 {
		t.Errorf("%s, want exit status 1", exit)
	}
	var spooled []string
	for _, job := range readJobs(t, filepath.Join(dir, "spool.jsonl")) {
		spooled = append(spooled, job.To)
	}
	slices.Sort(spooled)
	if want := []string{"a@example.com", "b@example.com", "c@example.com", "d@example.com"}; !slices.Equal(spooled, want) {
		t.Errorf("spooled %v, want %v", spooled, want)
	}
}

// TestTakenPortKeepsTheSpool: the program binds its port before it reads
// the spool, so a start that cannot listen (exit 1) leaves the spool as it
// found it, for the next start to send.
func TestTakenPortKeepsTheSpool(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	spool := filepath.Join(dir, "spool.jsonl")
	jobs := []Job{{ID: "job-1", To: "ann@example.com", Subject: "Hello"}}
	if err := WriteSpool(spool, jobs); err != nil {
		t.Fatal(err)
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	p := demotest.StartAt(t, taken.Addr().String(), files(dir)...)
	if exit := p.WaitExit(); exit.Code != 1 {
		t.Errorf("%s on a taken port, want exit status 1", exit)
	}
	if got := readJobs(t, spool); !slices.Equal(got, jobs) {
		t.Errorf("the spool holds %v after a failed start, want %v", got, jobs)
	}
}

// TestUnwritableSpoolLogsEachJob: when the spool cannot be written at exit
// (here its path has become a folder), the unsent jobs are not dropped in
// silence: each is logged whole, as the last place left for it.
func TestUnwritableSpoolLogsEachJob(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := demotest.Start(t, append(files(dir), "-workers", "1", "-send-time", "20s", "-shutdown-timeout", "200ms")...)
	const secret = "https://example.com/reset?token=s3cr3t"
	r, _ := p.PostJSON("/emails", `{"to": ["ann@example.com", "bob@example.com", "cy@example.com"], "subject": "Reset", "body": "`+secret+`"}`)
	var answer struct{ IDs []string }
	if r.Status != http.StatusAccepted || json.Unmarshal([]byte(r.Body), &answer) != nil {
		t.Fatalf("POST /emails: %v, want 202", r)
	}
	ids := answer.IDs
	// The spool was read and cleared at start; a non-empty folder in its
	// place now makes the rename at exit fail.
	if err := os.MkdirAll(filepath.Join(dir, "spool.jsonl", "in-the-way"), 0o755); err != nil {
		t.Fatal(err)
	}
	p.WaitLog("email sending")
	p.Signal(syscall.SIGTERM)
	if exit := p.WaitExit(); exit.Code != 1 {
		t.Errorf("%s, want exit status 1", exit)
	}
	if _, ok := p.Logged("cannot write spool"); !ok {
		t.Fatal(`"cannot write spool" was not logged`)
	}
	var logged []string
	for _, line := range p.Lines() {
		if line.Msg() == "unsent job" {
			logged = append(logged, line.Attr("id"))
		}
	}
	slices.Sort(logged)
	slices.Sort(ids)
	if !slices.Equal(logged, ids) {
		t.Errorf("unsent job lines name %v, want every accepted job %v", logged, ids)
	}
	// The ids, not the emails: a body can hold what logs must not.
	if strings.Contains(p.Output(), secret) {
		t.Errorf("the log holds an email's body, %q", secret)
	}
}

// TestLargestBodiesSpoolAndComeBack: whatever POST /emails accepts, the
// spool can hold and the next start can read. The worst cases are the
// largest body (exactly the 1 MiB limit) made of the characters whose JSON
// grows most: "<", six bytes each as json.Encoder writes it by default, and
// U+2028, three bytes that become six even without that escaping. Both are
// accepted, spooled at a short budget, restored by a restart and sent.
func TestLargestBodiesSpoolAndComeBack(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	spool := filepath.Join(dir, "spool.jsonl")
	p := demotest.Start(t, append(files(dir), "-workers", "1", "-send-time", "1m", "-shutdown-timeout", "300ms")...)
	bodies := map[string]string{} // job id -> the body it was posted with
	for _, char := range []string{"<", "\u2028"} {
		head, tail := `{"to": ["worst@example.com"], "body": "`, `"}`
		room := maxBody - len(head) - len(tail)
		body := strings.Repeat(char, room/len(char)) + strings.Repeat(" ", room%len(char))
		request := head + body + tail
		if len(request) != maxBody {
			t.Fatalf("the request is %d bytes, want the limit, %d", len(request), maxBody)
		}
		r, _ := p.PostJSON("/emails", request)
		var answer struct{ IDs []string }
		if r.Status != http.StatusAccepted || json.Unmarshal([]byte(r.Body), &answer) != nil || len(answer.IDs) != 1 {
			t.Fatalf("POST /emails with %d bytes of %q: %d %.80q, want 202 and one id", len(request), char, r.Status, r.Body)
		}
		bodies[answer.IDs[0]] = body
	}
	p.WaitLog("email sending")
	p.Signal(syscall.SIGTERM)
	if exit := p.WaitExit(); exit.Code != 1 {
		t.Errorf("%s when the budget ran out, want exit status 1", exit)
	}
	// Keep a copy: the restart clears the spool once it has read it.
	kept := filepath.Join(t.TempDir(), "spool.jsonl")
	if err := os.Link(spool, kept); err != nil {
		t.Fatal(err)
	}

	p = demotest.Start(t, append(files(dir), "-send-time", "10ms")...)
	if got := p.WaitLog("jobs restored").Attr("count"); got != "2" {
		t.Errorf("jobs restored count=%s, want 2", got)
	}
	p.Signal(syscall.SIGTERM)
	if exit := p.WaitExit(); exit.Code != 0 {
		t.Errorf("%s after the restart's drain, want exit status 0", exit)
	}
	ids := slices.Collect(maps.Keys(bodies))
	checkOnce(t, ids, readJobs(t, filepath.Join(dir, "outbox.jsonl")))
	// And what was restored is what was posted, byte for byte.
	for _, job := range readJobs(t, kept) {
		if job.Body != bodies[job.ID] {
			t.Errorf("job %s came back from the spool with a body of %d bytes, not the %d posted", job.ID, len(job.Body), len(bodies[job.ID]))
		}
	}
}

// TestSlowBodyGets408: a client that sends its body slower than
// -read-timeout (as curl --limit-rate 20 does) gets 408 and a reason, and
// the program logs it. Without an answer of its own the handler would
// return, and net/http would send an implicit 200 for a job never taken.
func TestSlowBodyGets408(t *testing.T) {
	t.Parallel()
	const readTimeout = 300 * time.Millisecond
	p := demotest.Start(t, append(files(t.TempDir()), "-read-timeout", readTimeout.String())...)
	conn, err := p.Dial()
	if err != nil {
		t.Fatal(err)
	}
	body := emailBody("slow@example.com")
	fmt.Fprintf(conn, "POST /emails HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))
	// One byte every 50ms, and never the last one: the body cannot be
	// read whole, however slow the machine, so only the timeout answers.
	answered := make(chan struct{})
	go func() {
		for i := 0; i < len(body)-1; i++ {
			select {
			case <-answered:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := conn.Write([]byte{body[i]}); err != nil {
				return
			}
		}
	}()
	conn.SetReadDeadline(time.Now().Add(readTimeout + demotest.EventTimeout))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	close(answered)
	if err != nil {
		t.Fatalf("the slow POST got no answer: %v", err)
	}
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || !oneLine(string(answer)) {
		t.Errorf("the slow POST got %d %q, want 408 with a one-line reason", resp.StatusCode, answer)
	}
	if line := p.WaitLog("cannot read body"); line.Attr("status") != "408" {
		t.Errorf("logged %q, want status=408", line.Raw)
	}
}

// TestBadFlags: a value the program cannot work with stops it before it
// starts, with exit status 2 and one line naming the flag.
func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-workers", "0"},
		{"-queue-size", "-1"},
		{"-send-time", "-1s"},
		{"-read-timeout", "0s"},
		{"-shutdown-timeout", "0s"},
	} {
		t.Run(strings.Join(args, "="), func(t *testing.T) {
			t.Parallel()
			p := demotest.StartAt(t, demotest.FreeAddr(t), append(files(t.TempDir()), args...)...)
			exit := p.WaitExit()
			out := strings.TrimSpace(p.Output())
			if exit.Code != 2 || !oneLine(out) || !strings.Contains(out, args[0]) {
				t.Errorf("%s, output %q; want exit status 2 and one line naming %s", exit, out, args[0])
			}
		})
	}
}

// files returns the flags that put the outbox and the spool in dir.
func files(dir string) []string {
	return []string{"-outbox", filepath.Join(dir, "outbox.jsonl"), "-spool", filepath.Join(dir, "spool.jsonl")}
}

// recipients returns n addresses, unique to the test that names them.
func recipients(test string, n int) []string {
	to := make([]string, n)
	for i := range to {
		to[i] = fmt.Sprintf("%s-%d@example.com", test, i)
	}
	return to
}

func emailBody(to ...string) string {
	body, _ := json.Marshal(emailRequest{To: to, Subject: "Hello", Body: "Hi there."})
	return string(body)
}

// accept posts an email to the recipients, expects a 202, and returns the
// job ids it got.
func accept(t *testing.T, p *demotest.Process, to ...string) []string {
	t.Helper()
	r, _ := p.PostJSON("/emails", emailBody(to...))
	var answer struct{ IDs []string }
	if r.Err != nil || r.Status != http.StatusAccepted || json.Unmarshal([]byte(r.Body), &answer) != nil || len(answer.IDs) != len(to) {
		t.Fatalf("POST /emails to %d recipients: %v, want 202 with %d ids", len(to), r, len(to))
	}
	return answer.IDs
}

// readJobs reads an outbox or a spool; a missing file holds no job.
func readJobs(t *testing.T, path string) []Job {
	t.Helper()
	jobs, err := ReadSpool(path)
	if err != nil {
		t.Fatal(err)
	}
	return jobs
}

// checkOnce fails unless jobs holds each id exactly once, and nothing else.
func checkOnce(t *testing.T, ids []string, jobs []Job) {
	t.Helper()
	var got []string
	for _, job := range jobs {
		got = append(got, job.ID)
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(ids))
	if !slices.Equal(got, want) {
		t.Errorf("got jobs\n%v\nwant each of\n%v\nexactly once", got, want)
	}
}

// sentAfter counts the "email sent" lines logged after the first line with msg.
func sentAfter(p *demotest.Process, msg string) int {
	count, seen := 0, false
	for _, l := range p.Lines() {
		seen = seen || l.Msg() == msg
		if seen && l.Msg() == "email sent" {
			count++
		}
	}
	return count
}

func oneLine(s string) bool {
	s = strings.TrimSpace(s)
	return s != "" && !strings.Contains(s, "\n")
}

// TestBodyCutShortGets400: a body that ends before its Content-Length (the
// client stopped sending, here with a half-close that still lets it read)
// gets 400 and a log line, not an implicit 200.
func TestBodyCutShortGets400(t *testing.T) {
	t.Parallel()
	p := demotest.Start(t, files(t.TempDir())...)
	conn, err := p.Dial()
	if err != nil {
		t.Fatal(err)
	}
	body := emailBody("cut@example.com")
	fmt.Fprintf(conn, "POST /emails HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body[:len(body)/2])
	if err := conn.Conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(demotest.EventTimeout))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("the cut POST got no answer: %v", err)
	}
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest || !oneLine(string(answer)) {
		t.Errorf("the cut POST got %d %q, want 400 with a one-line reason", resp.StatusCode, answer)
	}
	if line := p.WaitLog("cannot read body"); line.Attr("status") != "400" {
		t.Errorf("logged %q, want status=400", line.Raw)
	}
}
