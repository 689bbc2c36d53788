package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
)

// protocVersion matches the line in each generated file's header that names
// the protoc that made it: a reader's protoc may be another release than
// Debian's, and the code it generates is the same.
var protocVersion = regexp.MustCompile(`(?m)^//\s+(- )?protoc\s+v.*\n`)

// TestGeneratedCodeIsCurrent regenerates slowpb from slow.proto with
// tools/protoc.sh, the script make generate runs, into a temporary folder,
// and fails when the committed code differs: a .proto edited without
// make generate, or a plugin moved in tools/go.mod. It needs protoc; on a
// machine without it the test skips, and under CI=true it fails, because
// .ci/run installs it.
func TestGeneratedCodeIsCurrent(t *testing.T) {
	t.Parallel()
	_ = os.Getenv("TOOLS_PRESENT") // so that make test does not replay a skip once protoc is installed (tools/present.sh)
	if _, err := exec.LookPath("protoc"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but protoc is not installed: .ci/run installs Debian's protobuf-compiler and libprotobuf-dev")
		}
		t.Skip("protoc is not installed, so the generated code is not checked: apt-get install protobuf-compiler libprotobuf-dev, then make test-14")
	}
	dir := t.TempDir()
	if out, err := exec.Command("sh", "../tools/protoc.sh", dir).CombinedOutput(); err != nil {
		t.Fatalf("tools/protoc.sh: %v\n%s", err, out)
	}
	committed, err := filepath.Glob("slowpb/*")
	if err != nil {
		t.Fatal(err)
	}
	generated, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	names := func(paths []string) (s []string) {
		for _, p := range paths {
			s = append(s, filepath.Base(p))
		}
		return s
	}
	if !slices.Equal(names(committed), names(generated)) {
		t.Fatalf("slowpb/ holds %v, protoc generates %v: run make generate", names(committed), names(generated))
	}
	for _, name := range names(generated) {
		want, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join("slowpb", name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(protocVersion.ReplaceAll(got, nil), protocVersion.ReplaceAll(want, nil)) {
			t.Errorf("slowpb/%s is not what slow.proto generates: run make generate", name)
		}
	}
}
