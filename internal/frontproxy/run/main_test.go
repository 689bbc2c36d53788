package main

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// A -replace value runs to the next flag, spaces included; everything
// else splits on spaces.
func TestSplitFlags(t *testing.T) {
	got := splitFlags("-proxy haproxy -replace option httpchk GET /readyz=>#none -keepalive -- -drain-delay 0s")
	want := []string{"-proxy", "haproxy", "-replace", "option httpchk GET /readyz=>#none", "-keepalive", "--", "-drain-delay", "0s"}
	if !slices.Equal(got, want) {
		t.Errorf("splitFlags = %q, want %q", got, want)
	}
}

// Every line a configuration of make measure-15 replaces is in the step's
// file, so that none of them fails minutes into the matrix.
func TestConfigurationsReplaceLinesThatExist(t *testing.T) {
	for _, c := range configurations {
		args := splitFlags(c.flags)
		file := "../../../15-behind-a-proxy/deploy/haproxy.cfg"
		if slices.Contains(args, "nginx") {
			file = "../../../15-behind-a-proxy/deploy/nginx.conf"
		}
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, l := range strings.Split(string(src), "\n") {
			lines = append(lines, strings.TrimSpace(l))
		}
		for i, a := range args {
			if a != "-replace" || i+1 == len(args) {
				continue
			}
			old, _, _ := strings.Cut(args[i+1], "=>")
			if !slices.Contains(lines, strings.TrimSpace(old)) {
				t.Errorf("%s: %s has no line %q", c.name, file, old)
			}
		}
	}
}
