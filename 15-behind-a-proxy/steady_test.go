package main

import (
	"net/http"
	"syscall"
	"testing"

	"github.com/gracefulgo/walkthrough/internal/demotest"
	"github.com/gracefulgo/walkthrough/internal/frontproxy"
)

// TestIdleTimeoutLongerThanNginx: the step's rule in steady state, with
// the timeouts shortened so that a test can wait them out. When the
// program's idle timeout is longer than nginx's upstream keepalive_timeout
// (3s against 1s), nginx closes the idle connection, and the next request
// goes on a new one: 200. When the program was told a wrong
// -proxy-keepalive and nginx keeps connections longer (5s) than the
// program (2s), the program closes first, the relay holds that close as
// the network can, and the POST nginx sends on the connection is a 502
// that nobody processed: the race, without any shutdown.
func TestIdleTimeoutLongerThanNginx(t *testing.T) {
	t.Parallel()
	needProxy(t, "nginx")
	for _, tc := range []struct {
		name         string
		idleTimeout  string // the program's
		nginxTimeout string
		wantStatus   int
	}{
		// Two seconds or more between the two timers, so that the one
		// meant to close first does on a busy machine too. The test waits
		// for the first close only.
		{name: "nginx-closes", idleTimeout: "3s", nginxTimeout: "1s", wantStatus: http.StatusOK},
		{name: "program-closes", idleTimeout: "2s", nginxTimeout: "5s", wantStatus: http.StatusBadGateway},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := demotest.Start(t, "-idle-timeout="+tc.idleTimeout, "-proxy-keepalive=1s", "-drain-delay=0s")
			relay, err := frontproxy.NewRelay(a.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer relay.Close()
			nginx := startNginx(t, map[string]string{
				"worker_processes auto;": "worker_processes 1;",
				"keepalive_timeout 60s;": "keepalive_timeout " + tc.nginxTimeout + ";",
			}, server(relay.Addr))
			if status, body := send(t, nginx, http.MethodPost); status != http.StatusOK || body != "1\n" {
				t.Fatalf("first POST: %d %q, want 200 1", status, body)
			}
			conn, ok := relay.AwaitConn(0)
			if !ok {
				t.Fatal("nginx opened no connection")
			}
			// Whichever side's idle timeout runs out first closes it.
			var closer string
			select {
			case <-conn.ClosedByProxy:
				closer = "nginx"
			case <-conn.ClosedByProgram:
				closer = "the program"
			case <-a.Done():
				t.Fatalf("the program exited:\n%s", a.Output())
			}
			status, body := send(t, nginx, http.MethodPost)
			a.Signal(syscall.SIGTERM)
			count := exitCount(t, a)
			t.Logf("%s closed the idle connection; second POST: %d; count=%d", closer, status, count)
			if status != tc.wantStatus {
				t.Errorf("second POST after %s closed the idle connection: %d %q, want %d", closer, status, body, tc.wantStatus)
			}
			if want := map[int]int{http.StatusOK: 2, http.StatusBadGateway: 1}[tc.wantStatus]; count != want {
				t.Errorf("count=%d, want %d", count, want)
			}
		})
	}
}
