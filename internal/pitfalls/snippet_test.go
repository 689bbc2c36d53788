package pitfalls

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"testing"
)

// TestSnippetAsPrinted: a snippet that was never compiled. shogo82148's
// post prints a program that calls fmt.Fprintf without importing fmt, and
// registers a handler h that it never declares, on http.DefaultServeMux,
// which its server does not serve. testdata holds the post's import list
// and its two lines that use fmt and h, quoted; the compiler must reject
// it for those two reasons, and no other.
func TestSnippetAsPrinted(t *testing.T) {
	const dir = "./testdata/shogo82148-start-http-server"
	build := exec.Command("go", "build", "-gcflags=-e", "-o", os.DevNull, dir)
	out, err := build.CombinedOutput()
	if err == nil {
		t.Fatalf("the snippet as printed compiles; want it rejected:\n%s", out)
	}
	var got []string
	for _, m := range regexp.MustCompile(`(?m)main\.go:\d+:\d+: (.*)$`).FindAllStringSubmatch(string(out), -1) {
		got = append(got, m[1])
	}
	want := []string{"undefined: fmt", "undefined: h"}
	if !slices.Equal(got, want) {
		t.Errorf("the compiler said %q, want %q; its output:\n%s", got, want, out)
	}
}
