package main

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/gracefulgo/walkthrough/internal/demotest"
	"github.com/gracefulgo/walkthrough/internal/kubesim"
	"github.com/gracefulgo/walkthrough/internal/proc"
)

// The pitfalls this step is about (docs/pitfalls.md), each shown with the
// real program.

// TestListenerClosedOnSIGTERMBehindALoadBalancer: without a drain delay
// the program closes its listener at SIGTERM, as steps 03 to 08 do, while
// the proxy still sends it new connections until the removal arrives:
// they are refused. TestRollingUpdateDropsNothing is the same update with
// the delay. The propagation is a second, so that the window in which the
// proxy still sends to a closed listener holds dozens of the load's new
// connections, however slowly a busy machine runs the clients (at 200ms a
// loaded run once had none in it).
func TestListenerClosedOnSIGTERMBehindALoadBalancer(t *testing.T) {
	t.Parallel()
	result, _ := rollout(t, time.Second, 0)
	if result.Count(kubesim.Refused) == 0 {
		t.Errorf("no request was refused with no drain delay: %v", result)
	}
}

// TestShellFormEntrypoint: a shell between the container runtime and the
// program keeps the signal from it. Docker runs a shell-form ENTRYPOINT
// or CMD as /bin/sh -c "...", and /bin/sh (dash here) runs the program as
// its child instead of replacing itself with it. The SIGTERM goes to the
// shell, the program never logs "shutdown started", and goes on serving
// until the SIGKILL at the end of the grace period. With exec, as an
// exec-form ENTRYPOINT does, the program is the process that gets it.
func TestShellFormEntrypoint(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, entrypoint string
		getsSignal       bool
	}{
		{"shell form", `exec /bin/sh -c "'$PROGRAM' $*"`, false},
		{"exec form", `exec "$PROGRAM" "$@"`, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			script := filepath.Join(t.TempDir(), "entrypoint")
			if err := os.WriteFile(script, []byte("#!/bin/sh\n"+c.entrypoint+"\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			var p *proc.Process
			var err error
			for range 100 {
				cmd := demotest.Command("-drain-delay=0s")
				cmd.Env = append(cmd.Env, "PROGRAM="+cmd.Path)
				cmd.Path, cmd.Args[0] = script, script
				p, err = proc.Start(demotest.FreeAddr(t), cmd)
				// A file just written can be "busy" for a moment: a process
				// forked meanwhile by another test holds the writer's
				// descriptor until it execs (golang.org/issue/22315).
				if !errors.Is(err, syscall.ETXTBSY) {
					break
				}
				time.Sleep(10 * time.Millisecond) // until that child has exec'd
			}
			if err != nil {
				t.Fatal(err)
			}
			listening, ok := p.AwaitLog("listening", demotest.EventTimeout)
			if !ok {
				p.Kill()
				t.Fatalf("the program never logged listening:\n%s", p.Output())
			}
			program, err := strconv.Atoi(listening.Attr("pid"))
			if err != nil {
				t.Fatal(err)
			}
			// The kubelet signals the container's first process: the one
			// the runtime started, the shell if there is one.
			t.Cleanup(func() {
				_ = syscall.Kill(program, syscall.SIGKILL) // the program may outlive the shell; gone already is fine
				p.Kill()
			})
			if err := p.AwaitAnswer(demotest.EventTimeout); err != nil {
				t.Fatal(err)
			}
			if (program == p.Pid()) != c.getsSignal {
				t.Fatalf("the program's pid is %d, the entrypoint's %d", program, p.Pid())
			}
			if _, err := p.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if c.getsSignal {
				if _, ok := p.AwaitLog("shutdown finished", demotest.EventTimeout); !ok {
					t.Errorf("SIGTERM to the exec-form entrypoint did not shut the program down:\n%s", p.Output())
				}
				return
			}
			// The shell dies of the signal; the program, its child, does
			// not hear of it and goes on serving.
			if !awaitGone(p.Pid()) {
				t.Fatalf("the shell (pid %d) is still there %s after SIGTERM", p.Pid(), demotest.EventTimeout)
			}
			r := demotest.Response{}
			for _, path := range []string{"/", "/readyz"} {
				if r = (&demotest.Process{Process: p}).Get(path); !r.OK() {
					t.Errorf("GET %s after the shell's SIGTERM = %v: want the program still serving, unaware", path, r)
				}
			}
			if l, ok := p.Logged("shutdown started"); ok {
				t.Errorf("the program logged %q: the signal reached it through the shell", l.Raw)
			}
		})
	}
}

// awaitGone waits until no process has the given pid.
func awaitGone(pid int) bool {
	deadline := time.Now().Add(demotest.EventTimeout)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(pid, 0); err == syscall.ESRCH {
			return true
		}
		time.Sleep(5 * time.Millisecond) // poll interval while the process ends
	}
	return false
}

// TestLivenessProbeThatFailsDuringTheDrain: a liveness probe pointed at
// /readyz (or at one /healthz that fails once draining) fails from the
// SIGTERM on, and a prober that goes on probing a terminating pod kills
// the container in the middle of its drain delay: the request in flight
// is cut. Pointed at /livez, which answers 200 for as long as the program
// runs, the same probe lets the request finish and the program exit 0.
// Kubelets stop liveness probes once the pod is being deleted since
// kubernetes#110191 (1.25, and 1.22.11, 1.23.8, 1.24.2; the check of
// #98571 in 1.21 did not take effect, #107473), so this prober is an older
// kubelet's, or another platform's health check that keeps going.
func TestLivenessProbeThatFailsDuringTheDrain(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		path       string
		wantKilled bool
		// The delay the program drains for. The probe that kills needs
		// 10 failures of 50ms or more; a long delay leaves it room on a
		// busy machine and costs nothing, since the kill ends the run.
		// The probe that must not kill runs through a short one.
		delay time.Duration
	}{{"/readyz", true, 20 * time.Second}, {"/livez", false, 1500 * time.Millisecond}} {
		t.Run(c.path, func(t *testing.T) {
			t.Parallel()
			p := demotest.Start(t, "-drain-delay="+c.delay.String(), "-shutdown-timeout=5s")
			// The request ends just after the delay, so that the drain that
			// follows is short.
			inFlight := p.GetAsync("/slow?d=" + (c.delay + 20*time.Millisecond).String())
			p.WaitLog("slow request started")
			// Probes fail after 10 × 50ms = 500ms or more: well within the
			// delay, and much longer than the drain once the listener closes.
			stop := kubesim.Liveness{Path: c.path, Period: 50 * time.Millisecond, FailureThreshold: 10}.Watch(p.Process)
			p.Signal(syscall.SIGTERM)
			r := demotest.AwaitResponse(inFlight, c.delay+demotest.EventTimeout)
			exit := p.WaitExit()
			killed := stop()
			if killed != c.wantKilled {
				t.Errorf("killed by the liveness probe: %t, want %t (%s, the request got %v)", killed, c.wantKilled, exit, r)
			}
			if c.wantKilled && r.OK() {
				t.Errorf("the request in flight got %v, want it cut by the kill", r)
			}
			if !c.wantKilled && (!r.OK() || exit.Code != 0) {
				t.Errorf("the request got %v and the program %s; want 200 and exit status 0", r, exit)
			}
		})
	}
}
