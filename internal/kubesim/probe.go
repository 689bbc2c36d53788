package kubesim

import (
	"net/http"
	"sync"
	"time"

	"github.com/gracefulgo/walkthrough/internal/proc"
)

// Liveness is a liveness probe that goes on probing a terminating pod:
// an HTTP GET of Path every Period; after FailureThreshold failures in a
// row (no answer, or one other than 2xx or 3xx), FailureThreshold-1
// periods after the first, the container is killed. That is an older
// kubelet, or another platform's health check: since kubernetes#110191
// (1.25, backported to 1.22.11, 1.23.8 and 1.24.2; #98571's check in 1.21
// did not take effect, #107473) the kubelet stops liveness and startup
// probes once the pod starts terminating, and runs only its readiness
// probe (see [Cluster.Delete]).
// A kubelet would stop the container with SIGTERM and its grace period; a
// program that is already draining has had its SIGTERM, so what is left
// is the SIGKILL, and that is what this sends.
type Liveness struct {
	Path             string
	Period           time.Duration
	FailureThreshold int
}

// Watch probes p until it exits or stop is called; stop returns whether
// the probe killed it.
func (l Liveness) Watch(p *proc.Process) (stop func() (killed bool)) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	var killed bool
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: l.Period}
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(l.Period)
		defer tick.Stop()
		failures := 0
		for {
			select {
			case <-done:
				return
			case <-p.Done():
				return
			case <-tick.C:
			}
			resp, err := client.Get("http://" + p.Addr + l.Path)
			if err == nil {
				resp.Body.Close()
			}
			if err != nil || resp.StatusCode >= 400 {
				failures++
			} else {
				failures = 0
			}
			if failures == l.FailureThreshold {
				killed = !p.HasExited()
				p.Kill()
				return
			}
		}
	}()
	return func() bool {
		close(done)
		wg.Wait()
		return killed
	}
}
