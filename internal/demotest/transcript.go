package demotest

import (
	"errors"
	"fmt"
	"io"
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

	"github.com/gracefulgo/walkthrough/internal/proc"
)

// Transcripts: what a user would see in two terminals, recorded from a real
// run, so that a README can show it (make docs includes the file) and a
// test can prove it still happens.
//
// Sessions are recorded in an order that timing cannot change: the
// program's log lines keep their own order, and are placed among what the
// client and the user did only at the points where the script waits for a
// given line. Whatever varies between runs (times, pids, ports, durations
// such as took=1.002s) is replaced by a fixed stand-in.

const (
	// UpdateEnv set to 1 makes [Transcripts.Run] rewrite the transcripts
	// from this run instead of comparing with them:
	//	DEMOTEST_UPDATE=1 go test -run TestTranscripts ./04-notifycontext
	UpdateEnv = "DEMOTEST_UPDATE"
	// LiveEnv set to 1 makes [Transcripts.Run] narrate each session on
	// stdout as it happens, with real pids, ports and times, one session
	// after the other, and compare nothing. make demo-NN sets it.
	LiveEnv = "DEMOTEST_LIVE"
)

// Stand-ins for what varies between runs.
const (
	TranscriptPid  = 4242
	TranscriptPort = 8080
)

// Transcripts runs scripted sessions against a step and checks each
// against testdata/<script name>.transcript.
type Transcripts struct {
	Scripts []Script
	// Args, when set, gives extra flags for every run, as [Suite.Args].
	Args func(t *testing.T) []string
	// Normalize, when set, replaces more of what varies between runs (a
	// temporary directory, an id) in each transcript line, after the
	// built-in replacements.
	Normalize func(line string) string
}

// A Script drives one session. It starts the program with [Session.Start]
// or [Session.StartAt] and ends with [Session.WaitExit].
type Script struct {
	Name  string // the transcript is testdata/<Name>.transcript
	Title string // one line, printed above the session in live mode
	Run   func(s *Session)
}

// Run runs every script as a subtest named after it and compares what it
// recorded with its file (see [UpdateEnv], [LiveEnv]). The scripts run one
// after the other: a script that holds a port (port-in-use) must not run
// while another has picked a free port but not yet bound it.
func (tr Transcripts) Run(t *testing.T) {
	live := os.Getenv(LiveEnv) == "1"
	for _, script := range tr.Scripts {
		t.Run(script.Name, func(t *testing.T) {
			s := &Session{t: t, args: tr.Args, normalize: tr.Normalize, began: time.Now()}
			if live {
				s.live = os.Stdout
				fmt.Fprintf(s.live, "\n== %s: %s ==\n", Step(t), script.Title)
			}
			script.Run(s)
			if live {
				return
			}
			checkTranscript(t, script.Name, s.Transcript())
		})
	}
}

// checkTranscript compares got with testdata/<name>.transcript, or rewrites
// the file when [UpdateEnv] is set.
func checkTranscript(t *testing.T, name, got string) {
	t.Helper()
	file := filepath.Join("testdata", name+".transcript")
	if os.Getenv(UpdateEnv) == "1" {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (%s=1 writes it)", err, UpdateEnv)
	}
	if got != string(want) {
		t.Errorf("the session differs from %s (%s=1 rewrites it, then make docs):\n--- %s\n%s--- this run\n%s",
			file, UpdateEnv, file, want, got)
	}
}

// Session records what the client, the user and the server did and saw.
type Session struct {
	t         *testing.T
	args      func(t *testing.T) []string
	normalize func(string) string
	live      io.Writer // set in live mode
	began     time.Time

	// P is the program, once started.
	P      *Process
	lines  []string // the transcript so far, not yet normalised
	logged int      // how many of P's lines are in the transcript
}

func (s *Session) record(who, text string) {
	line := text
	if who != "" {
		line = fmt.Sprintf("%6s | %s", who, text)
	}
	s.lines = append(s.lines, line)
	if s.live != nil {
		fmt.Fprintf(s.live, "%7.3fs  %s\n", time.Since(s.began).Seconds(), line)
	}
}

// Note adds a line of narration, shown as "# text".
func (s *Session) Note(text string) { s.record("", "# "+text) }

// Start runs the program on a free loopback port and waits until it
// listens, recording the command and its first lines.
func (s *Session) Start(args ...string) {
	s.t.Helper()
	s.StartAt(FreeAddr(s.t), args...)
	s.P.WaitListening()
	s.Expect("listening")
}

// StartAt runs the program listening on addr and returns at once.
func (s *Session) StartAt(addr string, args ...string) {
	s.t.Helper()
	if s.args != nil {
		args = append(s.args(s.t), args...)
	}
	s.record("", "$ "+strings.Join(append([]string{Step(s.t), "-addr", addr}, args...), " "))
	s.P = StartAt(s.t, addr, args...)
}

// Expect waits for the next log line with msg, one not yet in the
// transcript (up to EventTimeout, or until the program exits), and adds the
// program's lines up to and including it. It reports whether the line came;
// a missing line is not fatal, because the transcript then shows what
// happened instead.
func (s *Session) Expect(msg string) bool {
	deadline := time.NewTimer(EventTimeout)
	defer deadline.Stop()
	for exited := false; ; {
		lines, grew := s.P.Watch()
		for i := s.logged; i < len(lines); i++ {
			if lines[i].Msg() == msg {
				s.addLogged(lines[:i+1])
				return true
			}
		}
		if exited {
			return false
		}
		select {
		case <-grew:
		case <-s.P.Done():
			exited = true // every line is in now: look once more
		case <-deadline.C:
			return false
		}
	}
}

func (s *Session) addLogged(lines []Line) {
	for _, l := range lines[s.logged:] {
		s.record("server", l.Raw)
	}
	s.logged = len(lines)
}

// Get sends GET path in the background, as curl in a second terminal.
func (s *Session) Get(path string) <-chan Response {
	s.record("client", "GET "+path)
	return s.P.GetAsync(path)
}

// Answer waits for the answer to a Get and records what the client saw.
func (s *Session) Answer(ch <-chan Response) Response {
	r := AwaitResponse(ch, EventTimeout)
	s.record("client", describeResponse(r))
	return r
}

// describeResponse says what the client saw, in words that do not depend on
// how the connection happened to end (a FIN or a reset).
func describeResponse(r Response) string {
	switch {
	case r.Err == nil:
		return fmt.Sprintf("%d %s: %s", r.Status, http.StatusText(r.Status), strings.TrimSpace(r.Body))
	case errors.Is(r.Err, io.EOF), errors.Is(r.Err, io.ErrUnexpectedEOF), errors.Is(r.Err, syscall.ECONNRESET):
		return "no response: the server closed the connection"
	case errors.Is(r.Err, syscall.ECONNREFUSED):
		return "connection refused"
	}
	return "error: " + r.Err.Error()
}

// Signal sends sig to the program, as kill -TERM or Ctrl+C would.
func (s *Session) Signal(sig syscall.Signal) {
	s.t.Helper()
	name := strings.TrimPrefix(proc.SignalName(sig), "SIG")
	s.record("you", fmt.Sprintf("kill -%s %d", name, s.P.Pid()))
	s.P.Signal(sig)
}

// WaitExit waits for the program to exit, adds the rest of its lines and
// how it ended, and fails the test if it does not exit within EventTimeout.
func (s *Session) WaitExit() Exit {
	s.t.Helper()
	deadline := time.NewTimer(EventTimeout)
	defer deadline.Stop()
	// Take in each line as it comes, so that live mode shows it when the
	// program wrote it; the transcript is the same either way.
	for !s.P.HasExited() {
		lines, grew := s.P.Watch()
		s.addLogged(lines)
		select {
		case <-grew:
		case <-s.P.Done():
		case <-deadline.C:
			s.t.Fatalf("%s still running %s after the session ended; transcript so far:\n%s", Step(s.t), EventTimeout, s.Transcript())
		}
	}
	e, _ := s.P.Exited()
	s.addLogged(s.P.Lines())
	s.record("exit", e.String())
	return e
}

var (
	slogTimeRE = regexp.MustCompile(`^time=\S+ `)
	tookRE     = regexp.MustCompile(`\btook=\S+`)
)

// Transcript is the session so far, normalised: no times, pid 4242,
// port 8080, took=<duration>.
func (s *Session) Transcript() string {
	var pid, port string
	if s.P != nil {
		pid = strconv.Itoa(s.P.Pid())
		_, port, _ = net.SplitHostPort(s.P.Addr)
	}
	var pidRE *regexp.Regexp
	if pid != "" {
		pidRE = regexp.MustCompile(`\b` + pid + `\b`)
	}
	var b strings.Builder
	for _, line := range s.lines {
		if who, text, ok := strings.Cut(line, " | "); ok && strings.TrimSpace(who) == "server" {
			line = who + " | " + slogTimeRE.ReplaceAllString(text, "")
		}
		if port != "" {
			line = strings.ReplaceAll(line, ":"+port, ":"+strconv.Itoa(TranscriptPort))
		}
		if pidRE != nil {
			line = pidRE.ReplaceAllString(line, strconv.Itoa(TranscriptPid))
		}
		line = tookRE.ReplaceAllString(line, "took=<duration>")
		if s.normalize != nil {
			line = s.normalize(line)
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}

// slowFor is how long the scripts' slow request takes: short in tests,
// long enough to watch in live mode.
func (s *Session) slowFor() time.Duration {
	if s.live != nil {
		return 3 * time.Second
	}
	return time.Second
}

// The scripts every step can run.
var (
	// DrainScript: curl /slow, then SIGTERM while it is in flight.
	DrainScript = Script{Name: "drain", Title: "a slow request, then SIGTERM", Run: drain}
	// SecondSignalScript: SIGTERM during a long request, then another.
	SecondSignalScript = Script{Name: "second-signal", Title: "a long request, SIGTERM, then a second SIGTERM", Run: secondSignal}
	// PortInUseScript: start on a port another program holds.
	PortInUseScript = Script{Name: "port-in-use", Title: "start on a port that is taken", Run: portInUse}
)

func drain(s *Session) {
	s.Start()
	d := s.slowFor()
	s.Note(fmt.Sprintf("A client asks for a request that takes %s.", d))
	resp := s.Get("/slow?d=" + d.String())
	s.Expect("slow request started")
	s.Note("While it is in flight, a deploy sends SIGTERM (Ctrl+C would send SIGINT).")
	s.Signal(syscall.SIGTERM)
	s.Expect("shutdown started")
	s.Expect("slow request finished")
	r := s.Answer(resp)
	e := s.WaitExit()
	switch {
	case r.OK() && e.Code == 0:
		s.Note("The request finished, then the server exited 0: a graceful shutdown.")
	case !r.OK():
		s.Note("The request died unfinished: the client never got its answer.")
	default:
		s.Note("The request finished, but the server did not exit 0.")
	}
}

func secondSignal(s *Session) {
	s.Start()
	s.Note("A client asks for a request that takes 20s, longer than you want to wait.")
	resp := s.Get("/slow?d=20s")
	s.Expect("slow request started")
	s.Signal(syscall.SIGTERM)
	s.Expect("shutdown started")
	s.Note("The drain has begun. Impatient, you send a second signal.")
	s.Signal(syscall.SIGTERM)
	s.Answer(resp)
	if e := s.WaitExit(); e.Signal != 0 {
		s.Note("The second signal ended the program at once; the request was cut.")
	} else {
		s.Note("The second signal did not end the program.")
	}
}

func portInUse(s *Session) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.t.Fatal(err)
	}
	defer taken.Close()
	s.Note("Another program already listens on the port.")
	s.StartAt(taken.Addr().String())
	s.WaitExit()
}
