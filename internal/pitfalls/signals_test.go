package pitfalls

import (
	"os"
	"os/signal"
	"syscall"
	"testing"
)

// TestOSKillInTheSignalList: signal.Notify(c, os.Interrupt, os.Kill)
// compiles, runs and returns no error, yet os.Kill (SIGKILL) is never
// delivered: the kernel ends the process without running any of its code.
// Listing it promises a cleanup that can never run.
func TestOSKillInTheSignalList(t *testing.T) {
	t.Run("SIGKILL is never caught", func(t *testing.T) {
		p := startProgram(t, "notify-os-kill")
		p.Signal(os.Kill)
		exit := p.WaitExit()
		if exit.Signal != syscall.SIGKILL {
			t.Errorf("%s, want killed by SIGKILL", exit)
		}
		if line, ok := p.Logged("caught"); ok {
			t.Errorf("the program caught %s; SIGKILL cannot be caught", line.Attr("signal"))
		}
	})
	// The same program does catch the signal it can catch, so the test
	// above fails for the right reason.
	t.Run("SIGINT is caught", func(t *testing.T) {
		p := startProgram(t, "notify-os-kill")
		p.Signal(os.Interrupt)
		if got := p.WaitLog("caught").Attr("signal"); got != "interrupt" {
			t.Errorf("caught signal=%q, want interrupt", got)
		}
		if exit := p.WaitExit(); exit.Code != 0 {
			t.Errorf("%s, want exit status 0", exit)
		}
	})
}

// TestUnbufferedSignalChannel: signal.Notify never blocks to deliver a
// signal. On an unbuffered channel a send succeeds only while a goroutine is
// blocked receiving, so a signal that arrives while main is still busy
// starting up is dropped; a buffer of one keeps it until main gets there.
//
// The test sends SIGUSR1 to its own process: the pitfall is about channel
// semantics, not about which signal, and SIGUSR1 stops nothing else in the
// test binary. A second, buffered channel registered for the same signal
// tells the test that the signal has been delivered.
func TestUnbufferedSignalChannel(t *testing.T) {
	for _, tc := range []struct {
		name     string
		capacity int
		kept     bool
	}{
		{"unbuffered loses the signal", 0, false},
		{"buffered keeps it", 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// go vet's sigchanyzer reports make(chan os.Signal) passed to
			// Notify; the capacity from the table is the pitfall on purpose.
			signals := make(chan os.Signal, tc.capacity)
			signal.Notify(signals, syscall.SIGUSR1)
			defer signal.Stop(signals)
			delivered := make(chan os.Signal, 1)
			signal.Notify(delivered, syscall.SIGUSR1)

			// Nobody receives from signals here: main is "busy".
			if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
				t.Fatal(err)
			}
			<-delivered
			// Stop takes the lock that delivery holds while it offers the
			// signal to every channel, so once it returns, every channel
			// has had its offer.
			signal.Stop(delivered)

			select {
			case <-signals:
				if !tc.kept {
					t.Error("the signal was waiting on an unbuffered channel")
				}
			default:
				if tc.kept {
					t.Error("the signal was lost although the channel had room for it")
				}
			}
		})
	}
}
