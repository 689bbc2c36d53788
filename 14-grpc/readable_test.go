package main

import (
	"testing"

	"google.golang.org/protobuf/types/known/durationpb"
)

// TestDurationsReadable: a refused duration is named as a person reads
// it, and one beyond time.Duration's range as it was sent, not saturated.
func TestDurationsReadable(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   *durationpb.Duration
		want string
	}{
		{&durationpb.Duration{Seconds: 360_000_000}, "100000h0m0s"},
		{&durationpb.Duration{Nanos: 1}, "1ns"},
		{&durationpb.Duration{Seconds: -1}, "-1s"},
		{&durationpb.Duration{Seconds: 315_576_000_000}, "315576000000s"},
		{&durationpb.Duration{Seconds: -315_576_000_000, Nanos: -500_000_000}, "-315576000000.5s"},
	} {
		if got := readable(c.in); got != c.want {
			t.Errorf("readable(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}
