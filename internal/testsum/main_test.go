package main

import (
	"strings"
	"testing"
)

// TestSummarize: a passing test's output is dropped, a failing test's is
// shown whole, package lines are kept, and a skip ends up as one line with
// its reason, cached or not.
func TestSummarize(t *testing.T) {
	t.Parallel()
	in := strings.Join([]string{
		`{"Action":"start","Package":"p"}`,
		`{"Action":"run","Package":"p","Test":"TestOK"}`,
		`{"Action":"output","Package":"p","Test":"TestOK","Output":"=== RUN   TestOK\n"}`,
		`{"Action":"output","Package":"p","Test":"TestOK","Output":"--- PASS: TestOK (0.00s)\n"}`,
		`{"Action":"pass","Package":"p","Test":"TestOK"}`,
		`{"Action":"output","Package":"p","Test":"TestBad","Output":"=== RUN   TestBad\n"}`,
		`{"Action":"output","Package":"p","Test":"TestBad","Output":"    x_test.go:9: want 1\n"}`,
		`{"Action":"output","Package":"p","Test":"TestBad","Output":"--- FAIL: TestBad (0.00s)\n"}`,
		`{"Action":"fail","Package":"p","Test":"TestBad"}`,
		`{"Action":"output","Package":"p","Test":"TestTool","Output":"=== RUN   TestTool\n"}`,
		`{"Action":"output","Package":"p","Test":"TestTool","Output":"    x_test.go:5: protoc is not installed: apt-get install protobuf-compiler\n"}`,
		`{"Action":"output","Package":"p","Test":"TestTool","Output":"--- SKIP: TestTool (0.00s)\n"}`,
		`{"Action":"skip","Package":"p","Test":"TestTool"}`,
		`{"Action":"output","Package":"p","Output":"PASS\n"}`,
		`{"Action":"output","Package":"p","Output":"FAIL\tp\t0.01s\n"}`,
		`{"Action":"build-output","ImportPath":"q","Output":"q/x.go:1:1: syntax error\n"}`,
		`{"Action":"fail","Package":"p"}`,
	}, "\n")
	var out strings.Builder
	skips := summarize(strings.NewReader(in), &out)
	want := "    x_test.go:9: want 1\n--- FAIL: TestBad (0.00s)\nFAIL\tp\t0.01s\nq/x.go:1:1: syntax error\n"
	if got := strings.ReplaceAll(out.String(), "=== RUN   TestBad\n", ""); got != want {
		t.Errorf("output:\n%s\nwant:\n%s", got, want)
	}
	if len(skips) != 1 || skips[0] != "skipped: p TestTool: x_test.go:5: protoc is not installed: apt-get install protobuf-compiler" {
		t.Errorf("skips = %q", skips)
	}
}
