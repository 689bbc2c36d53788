package demotest

import (
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gracefulgo/walkthrough/internal/proc"
)

// TreeSession records a session with a step that hands over to new copies
// of itself (step 12), in the format of [Session]: every process writes to
// the same terminal, and each pid is replaced in order of appearance by
// 4242, 4243, ...
type TreeSession struct {
	// Normalize, when set, replaces more of what varies between runs (a
	// temporary directory) in each line.
	Normalize func(line string) string

	t      *testing.T
	live   bool
	began  time.Time
	Tree   *Tree
	lines  []string // not yet normalised
	logged int      // how many of the tree's lines are in the transcript
}

// RunTreeTranscript runs a session as the subtest name and checks it
// against testdata/<name>.transcript (see [UpdateEnv]; with [LiveEnv] it
// narrates instead).
func RunTreeTranscript(t *testing.T, name, title string, run func(s *TreeSession)) {
	t.Run(name, func(t *testing.T) {
		s := &TreeSession{t: t, live: os.Getenv(LiveEnv) == "1", began: time.Now()}
		if s.live {
			fmt.Printf("\n== %s: %s ==\n", Step(t), title)
		}
		run(s)
		if !s.live {
			checkTranscript(t, name, s.Transcript())
		}
	})
}

func (s *TreeSession) record(who, text string) {
	line := text
	if who != "" {
		line = fmt.Sprintf("%6s | %s", who, text)
	}
	s.lines = append(s.lines, line)
	if s.live {
		fmt.Printf("%7.3fs  %s\n", time.Since(s.began).Seconds(), line)
	}
}

// Note adds a line of narration, shown as "# text".
func (s *TreeSession) Note(text string) { s.record("", "# "+text) }

// Start runs binary (see [CopyProgram]) as the step and records its command
// and its first lines, up to "listening".
func (s *TreeSession) Start(binary string, args ...string) {
	s.t.Helper()
	s.Tree = StartTree(s.t, binary, args...)
	s.record("", "$ "+strings.Join(append([]string{Step(s.t), "-addr", s.Tree.Addr}, args...), " "))
	s.Expect("listening")
}

// Expect waits for the next line with msg from any process, one not yet in
// the transcript, and adds the lines up to it. A missing line fails the
// test.
func (s *TreeSession) Expect(msg string) {
	s.t.Helper()
	found := -1
	s.Tree.Await(EventTimeout, func(lines []Line, _ map[int]Exit) bool {
		for i := s.logged; i < len(lines); i++ {
			if lines[i].Msg() == msg {
				found = i
				return true
			}
		}
		return false
	})
	lines := s.Tree.Lines()
	if found < 0 {
		s.add(lines)
		s.t.Fatalf("no line msg=%q; transcript so far:\n%s", msg, s.Transcript())
	}
	s.add(lines[:found+1])
}

func (s *TreeSession) add(lines []Line) {
	for _, l := range lines[s.logged:] {
		s.record("server", l.Raw)
	}
	s.logged = len(lines)
}

// Get sends GET path and waits for the answer, as curl in a second
// terminal.
func (s *TreeSession) Get(path string) Response {
	s.record("client", "GET "+path)
	r := s.Tree.Get(path)
	s.record("client", describeResponse(r))
	return r
}

// GetAsync sends GET path in the background; see [TreeSession.Answer].
func (s *TreeSession) GetAsync(path string) <-chan Response {
	s.record("client", "GET "+path)
	return s.Tree.GetAsync(path)
}

// Answer waits for the answer to a GetAsync and records it.
func (s *TreeSession) Answer(ch <-chan Response) Response {
	r := AwaitResponse(ch, EventTimeout)
	s.record("client", describeResponse(r))
	return r
}

// Signal sends sig to the process pid, as kill would.
func (s *TreeSession) Signal(pid int, sig syscall.Signal) {
	s.t.Helper()
	s.record("you", fmt.Sprintf("kill -%s %d", strings.TrimPrefix(proc.SignalName(sig), "SIG"), pid))
	s.Tree.Signal(pid, sig)
}

// WaitExit waits for the process pid to exit, and records the lines so far
// and how it ended.
func (s *TreeSession) WaitExit(pid int) Exit {
	s.t.Helper()
	e := s.Tree.WaitExit(pid)
	// The lines the process wrote last may not all be read yet: a script
	// waits for its last line (Expect) before it waits for its exit.
	s.add(s.Tree.Lines())
	s.record("exit", fmt.Sprintf("pid %d: %s", pid, e))
	return e
}

// Transcript is the session so far, normalised: no times, pids 4242,
// 4243, ... in order of appearance, port 8080, took=<duration>.
func (s *TreeSession) Transcript() string {
	pids := map[string]string{}
	// The pids are the processes' own, read from the lines: each line says
	// which process wrote it.
	for _, l := range s.Tree.Lines() {
		if p := l.Attr("pid"); p != "" && pids[p] == "" {
			pids[p] = strconv.Itoa(TranscriptPid + len(pids))
		}
	}
	_, port, _ := net.SplitHostPort(s.Tree.Addr)
	var b strings.Builder
	for _, line := range s.lines {
		if who, text, ok := strings.Cut(line, " | "); ok && strings.TrimSpace(who) == "server" {
			line = who + " | " + slogTimeRE.ReplaceAllString(text, "")
		}
		line = strings.ReplaceAll(line, ":"+port, ":"+strconv.Itoa(TranscriptPort))
		for real, stand := range pids {
			line = regexp.MustCompile(`\b`+real+`\b`).ReplaceAllString(line, stand)
		}
		line = tookRE.ReplaceAllString(line, "took=<duration>")
		if s.Normalize != nil {
			line = s.Normalize(line)
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}

// T is the session's test.
func (s *TreeSession) T() *testing.T { return s.t }
