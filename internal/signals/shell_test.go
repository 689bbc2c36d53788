package signals

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/gracefulgo/walkthrough/internal/proc"
)

// TestShellInFront: SIGTERM to the pid of a shell that runs the program,
// as a runtime signals the process it started (Docker's shell form is
// `/bin/sh -c "..."`; an entrypoint script is the shell running a file).
// Where the shell replaces itself with the program (exec), the pid is the
// program's, which drains and exits 0. Where it runs the program as its
// child, the shell dies of the signal and the program runs on, orphaned.
// Which one happens without an exec depends on the shell: dash (Debian's
// and Ubuntu's /bin/sh) forks for `sh -c "program"`; bash runs a lone
// command of -c in its own process, but not a list of two. Neither
// replaces itself with a script's last command.
func TestShellInFront(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, shell string
		script      bool   // run a script file instead of -c
		command     string // PROGRAM stands for the program and its flags
		execs       bool   // the shell's pid becomes the program's
	}{
		{"dash -c program", "dash", false, `PROGRAM`, false},
		{"dash -c exec program", "dash", false, `exec PROGRAM`, true},
		{"dash script", "dash", true, `PROGRAM`, false},
		{"dash script with exec", "dash", true, `exec PROGRAM`, true},
		{"bash -c program", "bash", false, `PROGRAM`, true},
		{"bash -c program; echo", "bash", false, `PROGRAM; echo stopped`, false},
		{"bash script", "bash", true, `PROGRAM`, false},
		{"bash script with exec", "bash", true, `exec PROGRAM`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			shell := needTool(t, tc.shell, "apt-get install "+tc.shell)
			addr, err := proc.FreeAddr()
			if err != nil {
				t.Fatal(err)
			}
			command := strings.Replace(tc.command, "PROGRAM", step04+" -addr "+addr, 1)
			argv := []string{shell, "-c", command}
			if tc.script {
				script := filepath.Join(t.TempDir(), "entrypoint.sh")
				if err := os.WriteFile(script, []byte("#!"+shell+"\n"+command+"\n"), 0o755); err != nil {
					t.Fatal(err)
				}
				argv = []string{script}
			}
			p := startWrapper(t, "", argv...)
			p.addr = addr
			pid := p.awaitListening()
			if got := pid == p.cmd.Process.Pid; got != tc.execs {
				t.Errorf("the program's pid is the shell's: %v; want %v", got, tc.execs)
			}
			p.signal(syscall.SIGTERM)
			got := p.awaitExit()
			if tc.execs {
				p.awaitLog("shutdown finished")
				if got != "exit status 0" {
					t.Errorf("the program, in the shell's place: %s; want exit status 0", got)
				}
				return
			}
			if got != "killed by SIGTERM" {
				t.Errorf("the shell: %s; want killed by SIGTERM", got)
			}
			p.checkOrphaned(pid)
		})
	}
}

// TestGroupOrOnePid: a supervisor that signals the process group, as a
// terminal does on Ctrl+C, kill -TERM -- -PGID, or systemd with
// KillMode=control-group (its cgroup, not a group, but the same idea:
// every process), reaches the program whatever stands in front of it;
// one that signals one pid reaches that pid only. dash -c "program" is the
// wrapper that passes nothing on.
func TestGroupOrOnePid(t *testing.T) {
	t.Parallel()
	for _, group := range []bool{false, true} {
		name := "one pid"
		if group {
			name = "the group"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dash := needTool(t, "dash", "apt-get install dash")
			addr, err := proc.FreeAddr()
			if err != nil {
				t.Fatal(err)
			}
			p := startWrapper(t, "", dash, "-c", step04+" -addr "+addr)
			p.addr = addr
			pid := p.awaitListening()
			if !group {
				p.signal(syscall.SIGTERM)
				if got := p.awaitExit(); got != "killed by SIGTERM" {
					t.Errorf("the shell: %s; want killed by SIGTERM", got)
				}
				p.checkOrphaned(pid)
				return
			}
			answer := p.slowRequest()
			p.signalGroup(syscall.SIGTERM)
			p.checkDrained("terminated signal received", answer)
			if got := p.awaitExit(); got != "killed by SIGTERM" {
				t.Errorf("the shell: %s; want killed by SIGTERM", got)
			}
			p.awaitOutputEnd()
		})
	}
}
