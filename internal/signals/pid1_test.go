package signals

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gracefulgo/walkthrough/internal/proc"
)

// startInNamespace runs argv as PID 1 of a PID namespace of its own
// (unshare --pid --fork --mount-proc), where PROGRAM in argv stands for
// step 04 with its -addr. It returns once the program answers, with the
// init's pid as seen from outside the namespace: unshare's child, which is
// the one pid there is to signal (unshare --fork itself blocks SIGINT and
// SIGTERM while it waits, and passes nothing on).
func startInNamespace(t *testing.T, argv ...string) (p *wrapper, initPid, programPid int) {
	t.Helper()
	addr, err := proc.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	for i, a := range argv {
		switch {
		case i > 0 && argv[i-1] == "-c":
			args = append(args, strings.ReplaceAll(a, "PROGRAM", step04+" -addr "+addr))
		case a == "PROGRAM":
			args = append(args, step04, "-addr", addr)
		default:
			args = append(args, a)
		}
	}
	p = startWrapper(t, "", unshareArgs(t, args...)...)
	p.addr = addr
	programPid = p.awaitListening()
	initPid = childOf(t, p.cmd.Process.Pid)
	p.alsoKill = append(p.alsoKill, initPid) // SIGKILL from outside ends the namespace
	return p, initPid, programPid
}

// pending reports whether sig is pending for the process, for one of its
// threads or the whole of it: sent, and neither delivered nor dropped yet.
func pending(t *testing.T, pid int, sig syscall.Signal) bool {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, value, _ := strings.Cut(line, ":")
		if name != "SigPnd" && name != "ShdPnd" {
			continue
		}
		mask, err := strconv.ParseUint(strings.TrimSpace(value), 16, 64)
		if err != nil {
			t.Fatalf("/proc/%d/status: %q: %v", pid, line, err)
		}
		if mask&(1<<(sig-1)) != 0 {
			return true
		}
	}
	return false
}

// TestPID1: the program behind an init, as in a container, proved without
// a container engine: a real PID namespace, SIGTERM to its PID 1 from
// outside, as a runtime sends it (docker stop, the kubelet).
//
//   - The program as PID 1 (Docker's exec form): the kernel gives a
//     namespace's init no default action for a signal, but Go installs
//     handlers for SIGINT and SIGTERM, so the program drains.
//   - dash as PID 1 (Docker's shell form): dash does not catch SIGTERM, so
//     the kernel drops it; nothing happens. SIGKILL from outside the
//     namespace ends the init, and the kernel then kills everything in it:
//     the request in flight is cut, the program never drains.
//   - tini or dumb-init as PID 1: each forwards the signal to the program,
//     which drains, and exits with its status.
//   - tini in front of dash: tini forwards SIGTERM to dash, which dies of
//     it (it is no init now), and tini exits 143; the kernel kills the
//     program with the namespace. dumb-init in front of dash: dumb-init
//     sends SIGTERM to the whole session of its child, so the program gets
//     it too; but dash dies of it at once, dumb-init exits 143, and the
//     kernel kills the program before or early in its drain.
func TestPID1(t *testing.T) {
	t.Parallel()
	type outcome int
	const (
		drains  outcome = iota // the program drains and exits 0, so does unshare
		dropped                // the signal is dropped; only SIGKILL ends it
		cut                    // the program is killed: never signalled, or halfway through
	)
	for _, tc := range []struct {
		name     string
		tools    []string // besides unshare
		argv     []string
		outcome  outcome
		signaled bool   // for cut: the program may have logged "shutdown started" first
		unshare  string // how unshare exits
	}{
		{"the program", nil, []string{"PROGRAM"}, drains, true, "exit status 0"},
		{"dash -c program", []string{"dash"}, []string{"dash", "-c", "PROGRAM"}, dropped, false, "exit status 1"},
		{"tini", []string{"tini"}, []string{"tini", "--", "PROGRAM"}, drains, true, "exit status 0"},
		{"dumb-init", []string{"dumb-init"}, []string{"dumb-init", "PROGRAM"}, drains, true, "exit status 0"},
		{"tini, dash -c program", []string{"tini", "dash"}, []string{"tini", "--", "dash", "-c", "PROGRAM"}, cut, false, "exit status 143"},
		{"dumb-init, dash -c program", []string{"dumb-init", "dash"}, []string{"dumb-init", "dash", "-c", "PROGRAM"}, cut, true, "exit status 143"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, tool := range tc.tools {
				needTool(t, tool, "apt-get install "+tool)
			}
			p, initPid, programPid := startInNamespace(t, tc.argv...)
			if tc.argv[0] == "PROGRAM" && programPid != 1 {
				t.Errorf("the program logged pid %d; want 1, the namespace's init", programPid)
			}
			answer := p.slowRequest()
			if tc.name == "the program" {
				// unshare, the pid a supervisor started, blocks SIGTERM:
				// the signal stays pending, and the program is not told.
				p.signal(syscall.SIGTERM)
				if !pending(t, p.cmd.Process.Pid, syscall.SIGTERM) {
					t.Errorf("SIGTERM sent to unshare is not pending; want it blocked")
				}
				if l, ok := p.logged("shutdown started"); ok {
					t.Errorf("SIGTERM to unshare reached the program: %s", l.Raw)
				}
			}
			if err := syscall.Kill(initPid, syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			switch tc.outcome {
			case drains:
				p.checkDrained("terminated signal received", answer)
			case dropped:
				// Dropped when sent, not left pending: nothing will come of it.
				if pending(t, initPid, syscall.SIGTERM) || !alive(initPid) {
					t.Errorf("SIGTERM to a shell as PID 1: pending %v, alive %v; want dropped, alive", pending(t, initPid, syscall.SIGTERM), alive(initPid))
				}
				if r := get(p.addr, "/"); r.err != nil || r.status != http.StatusOK {
					t.Errorf("after SIGTERM the program answered %s; want 200, unaware", r)
				}
				if err := syscall.Kill(initPid, syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
			}
			if got := p.awaitExit(); got != tc.unshare {
				t.Errorf("unshare: %s; want %s", got, tc.unshare)
			}
			p.awaitOutputEnd() // everything in the namespace is gone
			if tc.outcome == drains {
				return
			}
			if r := p.awaitAnswer(answer); r.err == nil {
				t.Errorf("the slow request in flight got %s; want it cut with the program", r)
			}
			_, started := p.logged("shutdown started")
			_, finished := p.logged("shutdown finished")
			// Where the program is signalled, whether it logs before the
			// kernel kills it is a race it usually loses.
			if started && !tc.signaled || finished {
				t.Errorf("the program logged shutdown started: %v, finished: %v; want it never to finish, and to start only if it was signalled (%v)", started, finished, tc.signaled)
			}
		})
	}
}

// inNamespace returns the pid, as seen from here, of the process whose pid
// in the namespace of the process init is nsPid, if there is one.
func inNamespace(t *testing.T, init int, nsPid string) (int, bool) {
	t.Helper()
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", init))
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if theirs, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid)); err != nil || theirs != ns {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 0 && f[0] == "NSpid:" && f[len(f)-1] == nsPid {
				return pid, true
			}
		}
	}
	return 0, false
}

// TestPID1ThatNeverReaps is pitfall 33: a program that is PID 1 and starts
// children (a hook, a helper, a shell command) inherits every process they
// leave behind, and the kernel leaves each one that exits a zombie until
// PID 1 waits for it. The program here reaps its own child as it should;
// the child's background command, orphaned, is handed to PID 1 and stays
// a zombie: a pid taken, for as long as the program lives. With tini as
// PID 1 (docker run --init), tini reaps it.
func TestPID1ThatNeverReaps(t *testing.T) {
	t.Parallel()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		argv []string
	}{
		{"the program as PID 1", []string{self}},
		{"tini as PID 1", []string{"tini", "-vvv", "--", self}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.argv[0] == "tini" {
				needTool(t, "tini", "apt-get install tini")
			}
			argv := unshareArgs(t, append([]string{"env", programEnv + "=spawner"}, tc.argv...)...)
			p := startWrapper(t, "", argv...)
			orphan := p.awaitLog("helper exited").Attr("orphan")
			initPid := childOf(t, p.cmd.Process.Pid)
			p.alsoKill = append(p.alsoKill, initPid)
			// The orphan lives a tenth of a second, then exits: wait for
			// it to be a zombie of PID 1 or, behind tini, to be gone.
			zombie := 0
			for deadline := time.Now().Add(eventTimeout); ; time.Sleep(5 * time.Millisecond) { // poll interval while the orphan exits
				pid, found := inNamespace(t, initPid, orphan)
				state, ppid, err := procStatus(pid)
				if tc.argv[0] == "tini" && (!found || err != nil) {
					break
				}
				if tc.argv[0] != "tini" && found && state == "Z" && ppid == initPid {
					zombie = pid
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the orphan (pid %s in the namespace): found %v, state %q, parent %d (PID 1 is %d) after %s", orphan, found, state, ppid, initPid, eventTimeout)
				}
			}
			if zombie != 0 {
				// A round trip through the program: it was running, and
				// had time to reap, since the orphan exited.
				if err := syscall.Kill(initPid, syscall.SIGHUP); err != nil {
					t.Fatal(err)
				}
				p.awaitLog("hangup")
				if state, ppid, err := procStatus(zombie); err != nil || state != "Z" || ppid != initPid {
					t.Errorf("pid %d: state %q, parent %d, %v; want still a zombie child of %d", zombie, state, ppid, err, initPid)
				}
			}
			if err := syscall.Kill(initPid, syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			p.awaitLog("shutdown finished")
			if got := p.awaitExit(); got != "exit status 0" {
				t.Errorf("unshare: %s; want exit status 0", got)
			}
		})
	}
}
