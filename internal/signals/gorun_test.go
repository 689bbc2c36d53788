package signals

import (
	"strings"
	"syscall"
	"testing"

	"github.com/gracefulgo/walkthrough/internal/proc"
)

// startGoRun runs `go run ./04-notifycontext -addr ADDR args...` from the
// repository's root, and returns once the program answers, with its pid.
func startGoRun(t *testing.T, args ...string) (*wrapper, int) {
	t.Helper()
	addr, err := proc.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	p := startWrapper(t, "../..", append([]string{"go", "run", "./04-notifycontext", "-addr", addr}, args...)...)
	p.addr = addr
	return p, p.awaitListening()
}

// TestGoRunCtrlC: Ctrl+C on `go run .` sends SIGINT to the group, the go
// command and the program. The go command catches SIGINT (and SIGQUIT),
// so it lives on and waits for the program, which drains. Then it exits 1
// whatever the program returned: after the interrupt its idle build
// workers set the exit status to 1, and a program that failed is reported
// as `exit status N` and an exit 1 too.
func TestGoRunCtrlC(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		args      []string
		drains    bool
		goReports string // the line go run prints about the program, "" for none
	}{
		{"program exits 0", nil, true, ""},
		{"program exits 1", []string{"-shutdown-timeout", "50ms"}, false, "exit status 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, pid := startGoRun(t, tc.args...)
			answer := p.slowRequest()
			p.signalGroup(syscall.SIGINT)
			if tc.drains {
				p.checkDrained("interrupt signal received", answer)
			} else {
				p.awaitLog("shutdown forced")
			}
			if got := p.awaitExit(); got != "exit status 1" {
				t.Errorf("go run: %s; want exit status 1", got)
			}
			if alive(pid) {
				t.Errorf("go run exited while the program (pid %d) still runs; want it to wait", pid)
			}
			p.awaitOutputEnd()
			reported := ""
			for _, line := range strings.Split(p.output(), "\n") {
				if strings.HasPrefix(line, "exit status ") {
					reported = line
				}
			}
			if reported != tc.goReports {
				t.Errorf("go run reported %q about the program; want %q", reported, tc.goReports)
			}
		})
	}
}

// TestGoRunKilledWithSIGTERM is pitfall 31: kill -TERM of the go command's
// pid, the one ps shows for `go run .`. The go command does not catch
// SIGTERM: it dies of it at once, and passes nothing on. The program, its
// child, runs on, orphaned, never told to stop. Sent to the whole group,
// as a terminal sends Ctrl+C, the same SIGTERM reaches the program, which
// drains (the go command is gone by then).
func TestGoRunKilledWithSIGTERM(t *testing.T) {
	t.Parallel()
	t.Run("the go command's pid", func(t *testing.T) {
		t.Parallel()
		p, pid := startGoRun(t)
		p.signal(syscall.SIGTERM)
		if got := p.awaitExit(); got != "killed by SIGTERM" {
			t.Errorf("go run: %s; want killed by SIGTERM", got)
		}
		p.checkOrphaned(pid)
	})
	t.Run("the group", func(t *testing.T) {
		t.Parallel()
		p, _ := startGoRun(t)
		answer := p.slowRequest()
		p.signalGroup(syscall.SIGTERM)
		if got := p.awaitExit(); got != "killed by SIGTERM" {
			t.Errorf("go run: %s; want killed by SIGTERM", got)
		}
		p.checkDrained("terminated signal received", answer)
		p.awaitOutputEnd()
	})
}
