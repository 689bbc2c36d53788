package signals

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/gracefulgo/walkthrough/internal/proc"
	"github.com/gracefulgo/walkthrough/internal/slogline"
)

// makefile is the Makefile the make tests run: the same program behind the
// two kinds of recipe. make runs a recipe without a shell's special
// characters itself, as the repository's run-NN does; any other goes to
// /bin/sh -c.
const makefile = `direct:
	$(PROGRAM) $(ARGS)
shell:
	cd . && $(PROGRAM) $(ARGS)
`

// startMake runs make's target (direct or shell) around step 04, with
// step 04's flags args after -addr, and returns once the program answers,
// with the program's pid.
func startMake(t *testing.T, target string, args ...string) (*wrapper, int) {
	t.Helper()
	makePath := needTool(t, "make", "apt-get install make")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Makefile"), []byte(makefile), 0o644); err != nil {
		t.Fatal(err)
	}
	addr, err := proc.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	flags := append([]string{"-addr", addr}, args...)
	// Under make test this test runs below a make, whose variables would
	// make this one a sub-make (make[1]: in its messages, the outer make's
	// flags): start it as a user's shell does.
	var env []string
	for _, kv := range os.Environ() {
		switch name, _, _ := strings.Cut(kv, "="); name {
		case "MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES":
		default:
			env = append(env, kv)
		}
	}
	p := startWrapperEnv(t, dir, env, makePath, target, "PROGRAM="+step04, "ARGS="+strings.Join(flags, " "))
	p.addr = addr
	return p, p.awaitListening()
}

// checkWaitedFor fails the test unless the program, whose pid is given, had
// exited by the time make did: make waited for it.
func checkWaitedFor(t *testing.T, pid int) {
	t.Helper()
	if alive(pid) {
		t.Errorf("make exited while the program (pid %d) still runs; want make to wait for it", pid)
	}
}

// TestCtrlCOnMake: Ctrl+C in a terminal sends SIGINT to the whole
// foreground process group, make and the program both. The program drains
// and exits; make waits for it, then ends itself by SIGINT, so the shell
// reports 130 (128+2) whatever the program did. What make prints says
// what the program did: nothing when it exited 0, `Error 1` when it
// exited 1, `Interrupt` when the shell of a shell recipe ended by SIGINT
// (dash waits for its command, then ends by the SIGINT it got, and the
// program's own status is lost).
func TestCtrlCOnMake(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, target string
		args         []string
		drains       bool   // the drain finishes the slow request; else the deadline cuts it
		makeSays     string // what make's own line ends with; "" for no line
	}{
		{"direct recipe, program exits 0", "direct", nil, true, ""},
		{"direct recipe, program exits 1", "direct", []string{"-shutdown-timeout", "50ms"}, false, "] Error 1"},
		{"shell recipe", "shell", nil, true, "] Interrupt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, pid := startMake(t, tc.target, tc.args...)
			answer := p.slowRequest()
			p.signalGroup(syscall.SIGINT)
			if tc.drains {
				p.checkDrained("interrupt signal received", answer)
			} else {
				p.awaitLog("shutdown forced")
			}
			if got := p.awaitExit(); got != "killed by SIGINT" {
				t.Errorf("make: %s; want killed by SIGINT (the shell's 130)", got)
			}
			checkWaitedFor(t, pid)
			p.awaitOutputEnd()
			said := ""
			for _, line := range strings.Split(p.output(), "\n") {
				if strings.HasPrefix(line, "make: *** ") {
					said = line
				}
			}
			if tc.makeSays == "" && said != "" || !strings.HasSuffix(said, tc.makeSays) {
				t.Errorf("make said %q; want a line ending %q", said, tc.makeSays)
			}
		})
	}
}

// TestSIGTERMToMake: kill -TERM of make's pid (the first pid ps shows for
// make run-NN) with a recipe that make runs itself, as run-NN's is. GNU
// make passes SIGTERM on to the commands it runs, waits for them, then
// ends itself by SIGTERM: the program drains.
func TestSIGTERMToMake(t *testing.T) {
	t.Parallel()
	p, pid := startMake(t, "direct")
	answer := p.slowRequest()
	p.signal(syscall.SIGTERM)
	p.checkDrained("terminated signal received", answer)
	if got := p.awaitExit(); got != "killed by SIGTERM" {
		t.Errorf("make: %s; want killed by SIGTERM (the shell's 143)", got)
	}
	checkWaitedFor(t, pid)
}

// TestSIGTERMToMakeWithAShellRecipe is pitfall 32: the same kill -TERM of
// make's pid, with a recipe that goes through /bin/sh (`cd x && ./prog`).
// make passes the signal to its child, the shell; the shell dies of it
// and passes nothing on; make reports `Terminated` and ends by SIGTERM.
// The program runs on, orphaned, still serving, never told to stop.
func TestSIGTERMToMakeWithAShellRecipe(t *testing.T) {
	t.Parallel()
	p, pid := startMake(t, "shell")
	p.signal(syscall.SIGTERM)
	if got := p.awaitExit(); got != "killed by SIGTERM" {
		t.Errorf("make: %s; want killed by SIGTERM", got)
	}
	p.awaitLine("make's line that its shell was Terminated", func(l slogline.Line) bool {
		return strings.HasPrefix(l.Raw, "make: *** ") && strings.HasSuffix(l.Raw, "] Terminated")
	})
	p.checkOrphaned(pid)
}
