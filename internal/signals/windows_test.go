package signals

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestStepsBuildForWindows compiles every step for GOOS=windows, so that a
// Windows reader's go build keeps working: a step that names a Unix-only
// signal (syscall.SIGUSR1; SIGHUP and SIGTERM are defined there) or call
// fails here. go list
// -export compiles each package, and its dependencies, as go build does,
// without linking fourteen programs (half a second once the build cache
// holds them, against tens of seconds). It cannot say how a step behaves
// there: docs/signals.md does, from the sources.
func TestStepsBuildForWindows(t *testing.T) {
	t.Parallel()
	steps, err := filepath.Glob("../../[0-9][0-9]-*")
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) == 0 {
		t.Fatal("no step folders in ../..")
	}
	args := []string{"list", "-export", "-f", "{{if .Error}}{{.Error}}{{end}}"}
	for _, s := range steps {
		args = append(args, "./"+filepath.Base(s))
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "GOOS=windows", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("GOOS=windows go %v: %v\n%s", args, err, out)
	}
}
