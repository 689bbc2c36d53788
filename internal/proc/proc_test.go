package proc

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// childEnv makes the test binary a child: it writes childLines lines on each
// of stdout and stderr and exits 3, or, set to "wait", logs one line and
// waits to be killed.
const (
	childEnv   = "PROC_TEST_CHILD"
	childLines = 500
)

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "lines":
		for i := range childLines {
			fmt.Fprintf(os.Stdout, "level=INFO msg=out i=%d\n", i)
			fmt.Fprintf(os.Stderr, "level=INFO msg=err i=%d\n", i)
		}
		os.Exit(3)
	case "args":
		fmt.Fprintf(os.Stderr, "level=INFO msg=args args=%q\n", strings.Join(os.Args[1:], " "))
		os.Exit(0)
	case "wait":
		fmt.Fprintln(os.Stderr, "level=INFO msg=listening")
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func startChild(t *testing.T, mode string) *Process {
	t.Helper()
	t.Setenv(childEnv, mode)
	p, err := Start("127.0.0.1:1", exec.Command(os.Args[0]))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	return p
}

// Once the process counts as exited, every line it wrote has been read, in
// the order it wrote them, and the exit time is no later than that moment.
func TestEveryLineIsReadBeforeExit(t *testing.T) {
	p := startChild(t, "lines")
	<-p.Done()
	doneAt := time.Now()
	e, ok := p.Exited()
	if !ok || e.Code != 3 || e.String() != "exit status 3" {
		t.Fatalf("exit %+v (%v), want exit status 3", e, ok)
	}
	if e.At.After(doneAt) {
		t.Errorf("exit time %v is after Done was closed at %v", e.At, doneAt)
	}
	if got := p.Count("out") + p.Count("err"); got != 2*childLines {
		t.Fatalf("%d lines read at the exit, want %d", got, 2*childLines)
	}
	for i, l := range p.Lines() {
		if want := strconv.Itoa(i / 2); l.Attr("i") != want {
			t.Fatalf("line %d is %q, want i=%s: not in the order written", i, l.Raw, want)
		}
	}
	if args := strings.Join(p.cmd.Args[1:], " "); args != "-addr 127.0.0.1:1" {
		t.Errorf("args %q, want -addr first", args)
	}
	// A wait for a line that never comes ends at the exit, not at the timeout.
	if _, ok := p.AwaitLogN("out", childLines+1, time.Minute); ok {
		t.Errorf("found line %d of %d", childLines+1, childLines)
	}
}

func TestKilledBySignal(t *testing.T) {
	p := startChild(t, "wait")
	if _, ok := p.AwaitLog("listening", EventTimeout); !ok {
		t.Fatal("the child never logged listening")
	}
	if _, err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	e, ok := p.AwaitExit(EventTimeout)
	if !ok || e.Code != -1 || e.Signal != syscall.SIGTERM || e.String() != "killed by SIGTERM" {
		t.Errorf("exit %+v (%v), want killed by SIGTERM", e, ok)
	}
}

func TestFreeAddrBelowEphemeralRange(t *testing.T) {
	seen := map[string]bool{}
	for range 20 {
		addr, err := FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		port, _ := strconv.Atoi(addr[strings.LastIndex(addr, ":")+1:])
		if port < 20000 || port >= 32768 || seen[addr] {
			t.Errorf("FreeAddr = %s: want a port from 20000 to 32767, not handed out before", addr)
		}
		seen[addr] = true
	}
}

// -addr goes after the words that lead the arguments (a role, such as
// step 09's web), before the flags; an empty address adds no -addr.
func TestStartPutsAddrAfterTheRole(t *testing.T) {
	t.Setenv(childEnv, "args")
	for _, c := range []struct {
		addr string
		args []string
		want string
	}{
		{"127.0.0.1:1", []string{"-workers", "2"}, "-addr 127.0.0.1:1 -workers 2"},
		{"127.0.0.1:1", []string{"web", "-database", "x"}, "web -addr 127.0.0.1:1 -database x"},
		{"127.0.0.1:1", []string{"web"}, "web -addr 127.0.0.1:1"},
		{"", []string{"worker", "-workers", "2"}, "worker -workers 2"},
	} {
		p, err := Start(c.addr, exec.Command(os.Args[0], c.args...))
		if err != nil {
			t.Fatal(err)
		}
		line, ok := p.AwaitLog("args", EventTimeout)
		if got := line.Attr("args"); !ok || got != c.want {
			t.Errorf("Start(%q, %q) ran the program with %q, want %q", c.addr, c.args, got, c.want)
		}
		p.Kill()
	}
}

// FreeAddr hands out each port once, from blocks this process holds locked,
// so that another test binary handing out ports at the same time cannot
// give a program the same one.
func TestFreeAddrHoldsItsBlocks(t *testing.T) {
	seen := map[string]bool{}
	for range 2*portsBlock + 1 { // three blocks at least
		addr, err := FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		if seen[addr] {
			t.Fatalf("%s handed out twice", addr)
		}
		seen[addr] = true
		_, p, _ := net.SplitHostPort(addr)
		port, _ := strconv.Atoi(p)
		b := (port - portsLow) / portsBlock
		f, err := os.OpenFile(filepath.Join(os.TempDir(), "gracefulgo-ports", fmt.Sprintf("block-%d", b)), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		f.Close()
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			t.Fatalf("port %d's block %d could be locked again (%v): another process could hand out the same ports", port, b, err)
		}
	}
}
