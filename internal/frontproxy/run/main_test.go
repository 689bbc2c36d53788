package main

import (
	"slices"
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
