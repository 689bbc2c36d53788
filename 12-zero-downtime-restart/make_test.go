package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMakeRunAfterABrokenDeploy: the README's broken deploy leaves a shell
// script at bin/12-zero-downtime-restart, and `go build -o` refuses to
// write over a file that is no Go program. make run-12 builds under a
// temporary name and renames it into place, so it replaces the script and
// starts the program. It runs the repository's Makefile in a folder of its
// own, whose bin/ it may break, with this step and the module linked in.
func TestMakeRunAfterABrokenDeploy(t *testing.T) {
	t.Parallel()
	_ = os.Getenv("TOOLS_PRESENT") // so that make test does not replay a skip once make is installed (tools/present.sh)
	makePath, err := exec.LookPath("make")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("no make on PATH, and CI must run this test")
		}
		t.Skip("no make on PATH: install make to run this test")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, name := range []string{"Makefile", "go.mod", "go.sum", "12-zero-downtime-restart"} {
		if err := os.Symlink(filepath.Join(root, name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	binary := filepath.Join(dir, "bin", "12-zero-downtime-restart")
	if err := os.Mkdir(filepath.Dir(binary), 0o755); err != nil {
		t.Fatal(err)
	}
	deploy(t, binary, "#!/bin/sh\nexit 3\n")
	// A stray word: the program, once built and started, prints its usage
	// and exits 2 at once, with no server to stop.
	cmd := exec.Command(makePath, "run-12", "ARGS=stray")
	cmd.Dir = dir
	out, _ := cmd.CombinedOutput()
	if strings.Contains(string(out), "not an object file") {
		t.Fatalf("make run-12 did not replace the broken deploy:\n%s", out)
	}
	if !strings.Contains(string(out), `"stray" is not a flag`) {
		t.Errorf("make run-12 did not start the program it built:\n%s", out)
	}
	if b, err := os.ReadFile(binary); err != nil || strings.HasPrefix(string(b), "#!") {
		t.Errorf("after make run-12, %s is still the broken deploy (%v)", binary, err)
	}
}
