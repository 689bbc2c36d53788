// Command testsum runs go test with the arguments it is given and prints
// what go test prints without -v: a line per package, and the whole output
// of every test that failed. Then it ends with a line per skipped test and
// its reason, which go test without -v never shows, even when the results
// come from the test cache. It exits with go test's status.
//
//	go run ./internal/testsum -race -p 4 -parallel 8 ./...
//	go run ./internal/testsum -C 11-streaming/browser ./...
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

func main() {
	args := []string{"test", "-json"}
	if rest := os.Args[1:]; len(rest) >= 2 && rest[0] == "-C" {
		// go test takes -C only as its first flag.
		args = []string{"test", "-C", rest[1], "-json"}
		os.Args = os.Args[2:]
	}
	cmd := exec.Command("go", append(args, os.Args[1:]...)...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsum:", err)
		os.Exit(2)
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "testsum:", err)
		os.Exit(2)
	}
	skips := summarize(out, os.Stdout)
	err = cmd.Wait()
	for _, s := range skips {
		fmt.Println(s)
	}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		os.Exit(exit.ExitCode())
	case err != nil:
		fmt.Fprintln(os.Stderr, "testsum:", err)
		os.Exit(2)
	}
}

// event is one line of go test -json (cmd/test2json).
type event struct {
	Action     string
	Package    string
	ImportPath string // build-output events
	Test       string
	Output     string
}

// summarize reads go test -json from r and writes to w what go test
// without -v would have printed; it returns a "skipped:" line per test
// that skipped, with the reason the test gave.
func summarize(r io.Reader, w io.Writer) (skips []string) {
	type key struct{ pkg, test string }
	held := map[key][]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			fmt.Fprintln(w, sc.Text()) // not JSON: pass it on as it came
			continue
		}
		k := key{e.Package, e.Test}
		switch {
		case e.Action == "build-output":
			fmt.Fprint(w, e.Output)
		case e.Action == "output" && e.Test == "":
			// Package lines: ok, FAIL, "no test files", and what a test
			// binary printed outside any test. -json runs the binary with
			// -test.v, whose own PASS line go test would not show.
			if e.Output != "PASS\n" && !strings.HasPrefix(e.Output, "=== RUN") {
				fmt.Fprint(w, e.Output)
			}
		case e.Action == "output":
			held[k] = append(held[k], e.Output)
		case e.Action == "fail" && e.Test != "":
			for _, line := range held[k] {
				fmt.Fprint(w, line)
			}
			delete(held, k)
		case e.Action == "skip" && e.Test != "":
			skips = append(skips, fmt.Sprintf("skipped: %s %s: %s", e.Package, e.Test, reason(held[k])))
			delete(held, k)
		case e.Action == "pass":
			delete(held, k)
		}
	}
	return skips
}

// reason is the message a skipped test gave: its output but the lines
// the testing package writes itself (=== RUN, --- SKIP and the like).
func reason(lines []string) string {
	var msg []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t != "" && !strings.HasPrefix(t, "=== ") && !strings.HasPrefix(t, "--- ") {
			msg = append(msg, t)
		}
	}
	if len(msg) == 0 {
		return "(no reason given)"
	}
	return strings.Join(msg, " ")
}
