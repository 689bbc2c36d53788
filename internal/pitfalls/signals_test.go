package pitfalls

import (
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/gracefulgo/walkthrough/internal/demotest"
	"github.com/gracefulgo/walkthrough/internal/proc"
)

// TestOSKillInTheSignalList: signal.Notify(c, os.Interrupt, os.Kill)
// compiles, runs and returns no error, yet os.Kill (SIGKILL) is never
// delivered: the kernel ends the process without running any of its code.
// The list promises a cleanup that can never run, and it misses SIGTERM,
// the signal every orchestrator sends, which then kills the program with
// no cleanup either. The fixed list, SIGINT and SIGTERM, catches SIGTERM.
//
// Subtest "SIGTERM is missed" is the one that fails when notifyOSKill is
// given the fix. "SIGKILL is never caught" pins a fact of the kernel that no
// change to the program can alter; it is there so that the claim "os.Kill
// does nothing" is shown, not only said.
func TestOSKillInTheSignalList(t *testing.T) {
	for _, tc := range []struct {
		name, program string
		send          syscall.Signal
		caught        bool // the program catches it and runs its cleanup
	}{
		{"SIGKILL is never caught", "notify-os-kill", syscall.SIGKILL, false},
		{"SIGTERM is missed", "notify-os-kill", syscall.SIGTERM, false},
		{"the fixed list catches SIGTERM", "notify-sigterm", syscall.SIGTERM, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startProgram(t, tc.program)
			p.Signal(tc.send)
			exit := p.WaitExit()
			_, cleanedUp := p.Logged("cleanup ran")
			if tc.caught {
				if exit.Code != 0 || !cleanedUp {
					t.Errorf("%s, cleanup ran: %v; want %s caught, the cleanup run and exit status 0", exit, cleanedUp, proc.SignalName(tc.send))
				}
				return
			}
			if exit.Signal != tc.send || cleanedUp {
				t.Errorf("%s, cleanup ran: %v; want killed by %s with no cleanup", exit, cleanedUp, proc.SignalName(tc.send))
			}
		})
	}
}

// notifySIGTERM is notifyOSKill with the fix: the signals a program can
// catch, SIGINT and SIGTERM.
func notifySIGTERM(addr string) {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	ln := listen(addr)
	defer ln.Close()
	sig := <-signals
	slog.Info("caught", "signal", sig)
	slog.Info("cleanup ran")
}

func init() { programs["notify-sigterm"] = notifySIGTERM }

// TestUnbufferedSignalChannel: signal.Notify never blocks to deliver a
// signal. On an unbuffered channel a send succeeds only while a goroutine is
// blocked receiving, so a signal that arrives while main is still busy
// starting up is dropped; a buffer of one keeps it until main gets there.
//
// Both subtests run the same sequence through os/signal: SIGUSR1 is raised
// while nobody receives (main is "busy"); then a receiver starts, and
// SIGUSR2 is raised until the receiver has something. The first signal it
// receives says what happened to SIGUSR1: SIGUSR2 first means SIGUSR1 was
// lost. (SIGUSR1 and SIGUSR2 because the pitfall is about channels, not
// about which signal, and they stop nothing else in the test binary.)
func TestUnbufferedSignalChannel(t *testing.T) {
	for _, tc := range []struct {
		name      string
		capacity  int
		firstSeen os.Signal
	}{
		{"unbuffered loses the signal", 0, syscall.SIGUSR2},
		{"buffered keeps it", 1, syscall.SIGUSR1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// go vet's sigchanyzer reports make(chan os.Signal) passed to
			// Notify; the capacity from the table is the pitfall on purpose.
			signals := make(chan os.Signal, tc.capacity)
			signal.Notify(signals, syscall.SIGUSR1, syscall.SIGUSR2)
			defer signal.Stop(signals)

			// Main is busy: nobody receives while SIGUSR1 is delivered.
			raise(t, syscall.SIGUSR1)

			// Main is ready and waits on the channel.
			done := make(chan struct{})
			defer close(done)
			received := make(chan os.Signal, 1)
			go func() {
				select {
				case sig := <-signals:
					received <- sig
				case <-done:
				}
			}()
			deadline := time.Now().Add(demotest.EventTimeout)
			for {
				select {
				case sig := <-received:
					if sig != tc.firstSeen {
						t.Errorf("the receiver got %v first, want %v", sig, tc.firstSeen)
					}
					return
				default:
				}
				if time.Now().After(deadline) {
					t.Fatalf("no signal reached the receiver within %s", demotest.EventTimeout)
				}
				// Each raise returns once os/signal has offered SIGUSR2 to
				// every channel: the loop is paced by deliveries.
				raise(t, syscall.SIGUSR2)
			}
		})
	}
}

// raise sends sig to this process and returns once os/signal has offered
// it to every channel registered for it. A channel of its own, registered
// for sig, says it has been delivered; Stop then takes the lock that
// delivery holds while it offers the signal to every channel, so once it
// returns, every channel has had its offer.
func raise(t *testing.T, sig syscall.Signal) {
	t.Helper()
	delivered := make(chan os.Signal, 1)
	signal.Notify(delivered, sig)
	if err := syscall.Kill(os.Getpid(), sig); err != nil {
		t.Fatal(err)
	}
	await(t, delivered, "the signal to be delivered")
	signal.Stop(delivered)
}
