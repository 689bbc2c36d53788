package signals

import (
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"

	"github.com/gracefulgo/walkthrough/internal/proc"
	"github.com/gracefulgo/walkthrough/internal/slogline"
)

// step12 builds step 12's binary once, for the tests that need it, and
// returns its path.
func step12(t *testing.T) string {
	t.Helper()
	step12Build.Do(func() {
		step12Build.path = filepath.Join(filepath.Dir(step04), "12-zero-downtime-restart")
		out, err := exec.Command("go", "build", "-o", step12Build.path, "github.com/gracefulgo/walkthrough/12-zero-downtime-restart").CombinedOutput()
		if err != nil {
			step12Build.err = err.Error() + "\n" + string(out)
		}
	})
	if step12Build.err != "" {
		t.Fatalf("building step 12: %s", step12Build.err)
	}
	return step12Build.path
}

var step12Build struct {
	sync.Once
	path, err string
}

// TestGroupSignalDuringAHandOver: step 12 on SIGHUP starts its new binary
// as its child, in its own process group, hands it the socket, and drains.
// During that drain a SIGTERM to the group (what a terminal's Ctrl+C, a
// kill -- -PGID, or systemd's KillMode=control-group does) reaches the old
// process too, which has stopped catching signals: it dies at once, and
// its request in flight is cut. A SIGTERM to the new process's pid only
// (KillMode=mixed, which signals the main pid, the one step 12's PID file
// names) lets the old one finish its drain.
func TestGroupSignalDuringAHandOver(t *testing.T) {
	t.Parallel()
	for _, group := range []bool{false, true} {
		name := "the new process's pid"
		if group {
			name = "the group"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			binary := step12(t)
			addr, err := proc.FreeAddr()
			if err != nil {
				t.Fatal(err)
			}
			p := startWrapper(t, "", binary, "-addr", addr)
			p.addr = addr
			oldPid := p.awaitListening()
			answer := p.slowRequest()
			p.signal(syscall.SIGHUP)
			newListening := p.awaitLine("the new process's listening line", func(l slogline.Line) bool {
				return l.Msg() == "listening" && l.Attr("pid") != strconv.Itoa(oldPid)
			})
			newPid, err := strconv.Atoi(newListening.Attr("pid"))
			if err != nil {
				t.Fatalf("the new process's listening line names no pid: %v", err)
			}
			p.alsoKill = append(p.alsoKill, newPid)
			p.awaitLine("the old process's drain", func(l slogline.Line) bool {
				return l.Msg() == "shutdown started" && l.Attr("pid") == strconv.Itoa(oldPid)
			})
			if group {
				p.signalGroup(syscall.SIGTERM)
			} else if err := syscall.Kill(newPid, syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			// The new process drains (it has nothing in flight) either way.
			p.awaitLine("the new process's shutdown finished", func(l slogline.Line) bool {
				return l.Msg() == "shutdown finished" && l.Attr("pid") == strconv.Itoa(newPid)
			})
			r := p.awaitAnswer(answer)
			got := p.awaitExit() // the old process is the one started
			if group {
				if got != "killed by SIGTERM" || r.err == nil {
					t.Errorf("old process: %s, its request in flight: %s; want killed by SIGTERM and the request cut", got, r)
				}
				return
			}
			if got != "exit status 0" || r.err != nil || r.status != http.StatusOK {
				t.Errorf("old process: %s, its request in flight: %s; want exit status 0 after answering it 200", got, r)
			}
		})
	}
}
