package main

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestCheckTestNames: a cited test, benchmark or subtest that a _test.go
// file defines passes; one that none defines is named with its page and
// line; names inside a fenced code block are not citations.
func TestCheckTestNames(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		path := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a/a_test.go", "package a\n\nimport \"testing\"\n\nfunc TestKept(t *testing.T) {}\nfunc BenchmarkSend(b *testing.B) {}\n")
	write("a/testdata/x_test.go", "package x\n\nfunc TestOnlyInTestdata() {}\n")
	write("README.md", "`TestKept` and TestKept/sub and BenchmarkSend prove it.\nTestGone proved it once; so did TestOnlyInTestdata.\n\n```go\nfunc TestInABlock(t *testing.T) {}\n```\n")
	got, err := CheckTestNames(root, []string{"README.md"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"README.md:2: cites TestGone, which no _test.go file defines: renamed or removed?",
		"README.md:2: cites TestOnlyInTestdata, which no _test.go file defines: renamed or removed?",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("CheckTestNames = %q\nwant %q", got, want)
	}
}
