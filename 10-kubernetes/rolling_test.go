package main

import (
	"os/exec"
	"testing"
	"time"

	"github.com/gracefulgo/walkthrough/internal/demotest"
	"github.com/gracefulgo/walkthrough/internal/kubesim"
)

// rollout runs a rolling update of 3 replicas of this step, behind a
// simulated kube-proxy, under a load of keep-alive clients that never
// retry, and returns what the clients saw.
func rollout(t *testing.T, propagation, drainDelay time.Duration) (kubesim.Result, *kubesim.Cluster) {
	t.Helper()
	cluster, err := kubesim.NewCluster(kubesim.Config{
		Command: func() *exec.Cmd {
			return demotest.Command("-drain-delay="+drainDelay.String(), "-shutdown-timeout=5s")
		},
		Propagation: propagation,
		GracePeriod: 10 * time.Second,
	}, 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	load := kubesim.StartLoad(cluster.Proxy, kubesim.LoadConfig{Clients: 4, Path: "/", Pause: 5 * time.Millisecond, PerConn: 10})
	if !load.AwaitOK(50, demotest.EventTimeout) {
		t.Fatalf("the load got no answers before the update: %v", load.Stop())
	}
	err = cluster.RollingUpdate()
	result := load.Stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("propagation %s, drain delay %s: %v", propagation, drainDelay, result)
	return result, cluster
}

// TestRollingUpdateDropsNothing: with a drain delay longer than the
// propagation, a rolling update of 3 replicas under load fails no request.
// The old replicas were still answering after their SIGTERM (the delay was
// used, not skipped), and each exited 0 without a SIGKILL.
func TestRollingUpdateDropsNothing(t *testing.T) {
	t.Parallel()
	result, cluster := rollout(t, 200*time.Millisecond, 500*time.Millisecond)
	for _, f := range result.Failures {
		t.Errorf("a request failed: %s (reused connection: %t): %s", f.Kind, f.Reused, f.Err)
	}
	sigterm := map[string]time.Time{}
	for _, e := range cluster.Events() {
		if e.What == kubesim.EventSIGTERM {
			sigterm[e.Replica] = e.At
		}
	}
	if len(sigterm) != 3 {
		t.Fatalf("%d replicas were deleted, want 3", len(sigterm))
	}
	for _, r := range cluster.Replicas() {
		at, deleted := sigterm[r.Name]
		if !deleted {
			continue
		}
		if last := result.Answered[r.Pid()]; !last.After(at) {
			t.Errorf("%s (pid %d) answered nothing after its SIGTERM: the load never reached a terminating pod", r.Name, r.Pid())
		}
		if exit, _ := r.Exited(); exit.Code != 0 || r.Killed {
			t.Errorf("%s: %s (SIGKILLed: %t), want exit status 0", r.Name, exit, r.Killed)
		}
	}
}

// TestPropagationLongerThanDelayFails: the delay must cover the
// propagation. With the endpoint removed 600ms after SIGTERM and a delay
// of 100ms, the proxy goes on sending new connections to a closed
// listener for half a second, and they are refused.
func TestPropagationLongerThanDelayFails(t *testing.T) {
	t.Parallel()
	result, _ := rollout(t, 600*time.Millisecond, 100*time.Millisecond)
	if result.Count(kubesim.Refused) == 0 {
		t.Errorf("no request was refused: %v", result)
	}
}

// TestLastPodReadinessDuringTheDrain: an EndpointSlice keeps a deleted
// pod, terminating (so not ready) and serving for as long as its readiness
// probe passes, and a kube-proxy with no ready endpoint left falls back to
// the serving terminating ones. The last pod of a Service is deleted under
// load, with no replacement. With the readiness probe on /readyz, which
// turns 503 at SIGTERM, the pod stops serving long before its listener
// closes, and no new connection is sent to a closed listener. With a probe
// that stays 200 through the drain (here: /livez, as a /readyz that never
// fails would), the proxy goes on sending the pod new connections through
// the fallback, answered during the delay, and refused once Shutdown has
// closed the listener, until the probe fails on the closed port.
func TestLastPodReadinessDuringTheDrain(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		readiness   string
		wantRefused bool
	}{{"/readyz", false}, {"/livez", true}} {
		t.Run(c.readiness, func(t *testing.T) {
			t.Parallel()
			cluster, err := kubesim.NewCluster(kubesim.Config{
				Command: func() *exec.Cmd {
					return demotest.Command("-drain-delay=1s", "-shutdown-timeout=5s")
				},
				Propagation:   100 * time.Millisecond,
				GracePeriod:   10 * time.Second,
				ReadinessPath: c.readiness,
			}, 1)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(cluster.Close)
			pod := cluster.Replicas()[0]
			load := kubesim.StartLoad(cluster.Proxy, kubesim.LoadConfig{Clients: 4, Path: "/", Pause: 5 * time.Millisecond, PerConn: 10})
			if !load.AwaitOK(50, demotest.EventTimeout) {
				t.Fatalf("the load got no answers before the deletion: %v", load.Stop())
			}
			cluster.Delete(pod)
			cluster.AwaitDeleted()
			result := load.Stop()
			refused := cluster.Proxy.RefusedBy(pod.Addr)
			t.Logf("readiness probe on %s: %v; new connections sent to the closed listener: %d", c.readiness, result, refused)
			if (refused > 0) != c.wantRefused {
				t.Errorf("the proxy sent %d new connections to the pod's closed listener; want some: %t", refused, c.wantRefused)
			}
			if !c.wantRefused {
				return
			}
			// The fallback at work: the pod answered after the proxy knew
			// it was terminating.
			var terminating time.Time
			for _, e := range cluster.Events() {
				if e.What == kubesim.EventRemoved {
					terminating = e.At
				}
			}
			if last := result.Answered[pod.Pid()]; !last.After(terminating) {
				t.Errorf("the pod answered nothing after the proxy knew it was terminating (last answer %s, terminating %s): no fallback",
					last.Format(time.StampMilli), terminating.Format(time.StampMilli))
			}
		})
	}
}
