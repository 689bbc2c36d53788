package signals

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// step04 is the path of step 04's binary, which every test runs behind its
// wrapper. TestMain builds it once.
var step04 string

// programEnv makes a re-executed test binary the program it names instead
// of running the tests; see spawner.
const programEnv = "SIGNALS_PROGRAM"

func TestMain(m *testing.M) {
	if os.Getenv(programEnv) == "spawner" {
		spawner()
		os.Exit(0)
	}
	// A shell that starts a command in the background without job control
	// (a CI script's `make test &`) starts it with SIGINT ignored, and an
	// ignored signal stays ignored across fork and exec: make, started from
	// here, would then ignore the tests' Ctrl+C. A child of a Go program
	// gets the default action back for every signal the program handles,
	// so handle SIGINT, and drop it, as it was dropped before.
	if signal.Ignored(syscall.SIGINT) {
		signal.Notify(make(chan os.Signal, 1), syscall.SIGINT)
	}
	flag.Parse()
	dir, err := os.MkdirTemp("", "signals-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	step04 = filepath.Join(dir, "04-notifycontext")
	build := exec.Command("go", "build", "-o", step04, "github.com/gracefulgo/walkthrough/04-notifycontext")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building step 04: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// needTool returns the path of the named tool, or skips the test saying how
// to install it (the Debian package install); under CI=true it fails
// instead, as .ci/run installs every one.
func needTool(t *testing.T, name, install string) string {
	t.Helper()
	_ = os.Getenv("TOOLS_PRESENT") // so that make test does not replay a skip once the tool is installed (tools/present.sh)
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no %s on PATH, and CI must run this test", name)
		}
		t.Skipf("no %s on PATH: %s to run this test", name, install)
	}
	return path
}

// unshareArgs is the command line that runs argv as PID 1 of a new PID
// namespace, with a /proc of its own. As another user than root it adds a
// user namespace of its own, in which that user is root. It skips the test,
// or fails it under CI=true, where unshare is missing or may not make one.
func unshareArgs(t *testing.T, argv ...string) []string {
	t.Helper()
	unshare := needTool(t, "unshare", "apt-get install util-linux")
	args := []string{unshare}
	if os.Geteuid() != 0 {
		args = append(args, "--user", "--map-root-user")
	}
	args = append(args, "--pid", "--fork", "--mount-proc")
	unshareWorks.Do(func() {
		out, err := exec.Command(args[0], append(args[1:], "true")...).CombinedOutput()
		if err != nil {
			unshareWorks.err = fmt.Errorf("%s true: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
	})
	if unshareWorks.err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("unshare cannot make a PID namespace here, and CI must run this test: %v", unshareWorks.err)
		}
		t.Skipf("unshare cannot make a PID namespace here (run as root, or allow user namespaces): %v", unshareWorks.err)
	}
	return append(args, argv...)
}

// unshareWorks tries unshare once per test binary.
var unshareWorks struct {
	sync.Once
	err error
}

// spawner is a program that starts a child process, as a program with a
// hook or a helper does, and reaps it as it should: the child is a shell
// that puts a command in the background and exits at once, so that the
// command, orphaned, is handed to PID 1 of its namespace and exits there a
// moment later. Then the spawner waits for SIGTERM, and logs "hangup"
// whenever it gets a SIGHUP, so that a test can see what is left after a
// round trip through it: a zombie still there was not reaped.
func spawner() {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	hangup := make(chan os.Signal, 1)
	signal.Notify(hangup, syscall.SIGHUP)
	go func() {
		for range hangup {
			slog.Info("hangup")
		}
	}()
	out, err := exec.Command("sh", "-c", "sleep 0.1 & echo $!").Output()
	if err != nil {
		slog.Error("cannot start the helper", "err", err)
		os.Exit(1)
	}
	slog.Info("helper exited", "orphan", strings.TrimSpace(string(out)), "pid", os.Getpid())
	<-ctx.Done()
	slog.Info("shutdown finished")
}
