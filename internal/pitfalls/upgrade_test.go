package pitfalls

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/cloudflare/tableflip"

	"github.com/gracefulgo/walkthrough/internal/demotest"
)

// The two traps of a graceful restart with tableflip (step 12 shows the
// fixes): a SIGTERM that shuts the server down but does not stop the
// upgrader, and an old process that calls Shutdown the moment the new one
// is ready.

func init() { programs["tableflip-in-a-hurry"] = tableflipInAHurry }

// tableflipInAHurry is tableflip used as a first try would: SIGHUP
// upgrades; on Exit (the new process is ready) and on SIGTERM it calls
// Shutdown at once, and it never calls upg.Stop. Every line names its pid,
// since a new process shares its stderr.
func tableflipInAHurry(addr string) {
	log := slog.With("pid", os.Getpid())
	upg, err := tableflip.New(tableflip.Options{})
	if err != nil {
		log.Error("cannot upgrade", "err", err)
		os.Exit(1)
	}
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGHUP, syscall.SIGTERM)
	ln, err := upg.Listen("tcp", addr)
	if err != nil {
		log.Error("cannot listen", "addr", addr, "err", err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "pid %d\n", os.Getpid()) })
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		log.Info("slow request started")
		time.Sleep(time.Second)
		fmt.Fprintln(w, "slow request finished")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 2 * time.Second}
	go srv.Serve(ln)
	log.Info("listening", "addr", addr)
	if err := upg.Ready(); err != nil {
		log.Error("not ready", "err", err)
		os.Exit(1)
	}
	for {
		select {
		case sig := <-signals:
			if sig == syscall.SIGHUP {
				go upg.Upgrade()
				continue
			}
		case <-upg.Exit():
		}
		log.Info("shutdown started")
		srv.Shutdown(context.Background())
		log.Info("shutdown finished")
		return
	}
}

// TestUpgraderNotStoppedOnSIGTERM: on SIGTERM the program shuts its server
// down, which closes its listener, but tableflip still holds a copy of the
// socket to hand over. So the port stays open: during the drain every new
// connection is accepted by the kernel, waits in a backlog that nobody
// serves, and gets no answer. The scenario new-conns-refused fails for the
// same reason; step 12 calls upg.Stop.
func TestUpgraderNotStoppedOnSIGTERM(t *testing.T) {
	t.Setenv(programEnv, "tableflip-in-a-hurry")
	tree := demotest.StartTree(t, os.Args[0])
	pid := tree.Pid()
	slow := tree.GetAsync("/slow")
	tree.WaitLog(pid, "slow request started")
	tree.Signal(pid, syscall.SIGTERM)
	tree.WaitLog(pid, "shutdown started")
	// Dial throughout the drain, as new clients would.
	var last *demotest.Conn
	for dials := 0; ; dials++ {
		select {
		case r := <-slow:
			if !r.OK() {
				t.Fatalf("the slow request got %v; want it drained", r)
			}
			if dials == 0 {
				t.Fatal("the drain ended before the test could dial")
			}
			// The last connection, accepted by the kernel during the
			// drain, never gets an answer.
			if r := last.Do("/"); r.Err == nil {
				t.Errorf("a request on a connection made during the drain got %v; want no answer", r)
			}
			return
		default:
		}
		c, err := tree.Dial()
		if errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("a new connection was refused during the drain: the socket closed (dial %d)", dials)
		}
		if err != nil {
			t.Fatal(err)
		}
		last = c
		time.Sleep(5 * time.Millisecond) // as checkNewConnsRefused polls
	}
}

// TestShutdownRightAfterHandOver: the old process calls Shutdown the moment
// the new one is ready. Shutdown closes the idle kept-alive connections on
// the spot; the client of one, which could not know, sends its next
// request on it and gets an error, not an answer. Under load, some client
// is always about to send: step 12's TestThreeUpgradesUnderLoad, with the
// fix taken out, sees about one failure per keep-alive client per
// hand-over. Step 12 answers each connection's next request with
// Connection: close before it calls Shutdown.
func TestShutdownRightAfterHandOver(t *testing.T) {
	t.Setenv(programEnv, "tableflip-in-a-hurry")
	tree := demotest.StartTree(t, os.Args[0])
	pid := tree.Pid()
	c, err := tree.Dial()
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Do("/"); !r.OK() || r.Close {
		t.Fatalf("GET / on a kept-alive connection: %v (close %v)", r, r.Close)
	}
	tree.Signal(pid, syscall.SIGHUP)
	tree.WaitLog(pid, "shutdown finished")
	r := c.Do("/")
	if r.Err == nil {
		t.Fatalf("the next request on the kept-alive connection got %v; want an error", r)
	}
	if ne := (net.Error)(nil); errors.As(r.Err, &ne) && ne.Timeout() {
		t.Fatalf("the next request timed out (%v); want the connection closed", r.Err)
	}
	// The new process serves.
	if r := tree.Get("/"); !r.OK() || r.Body == fmt.Sprintf("pid %d\n", pid) {
		t.Errorf("GET / after the hand-over = %v; want the new process", r)
	}
}
