package grpcsuite

import (
	"slices"
	"strings"
	"testing"

	"github.com/gracefulgo/walkthrough/internal/demotest"
)

// Every scenario is run or declared not applicable, with a reason, once.
func TestValidate(t *testing.T) {
	na := "HTTP/1.1 only"
	for _, tc := range []struct {
		name  string
		suite Suite
		want  string // "" for a valid declaration
	}{
		{"step 14's", Suite{NotApplicable: map[string]string{demotest.ConnectionClose: na}}, ""},
		{"a scenario with no check", Suite{}, "scenario connection-close has no gRPC check"},
		{"not a scenario", Suite{NotApplicable: map[string]string{demotest.ConnectionClose: na, "nope": na}}, `NotApplicable names "nope"`},
		{"no reason", Suite{NotApplicable: map[string]string{demotest.ConnectionClose: " "}}, "NotApplicable gives connection-close no reason"},
		{"no reason to fail", Suite{
			NotApplicable: map[string]string{demotest.ConnectionClose: na},
			KnownToFail:   map[string]string{demotest.Routes: ""},
		}, "KnownToFail gives routes no reason"},
		{"both", Suite{
			NotApplicable: map[string]string{demotest.ConnectionClose: na, demotest.Routes: na},
			KnownToFail:   map[string]string{demotest.Routes: "bad"},
		}, "routes is declared both known to fail and not applicable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.suite.validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("validate() = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// Every scenario that has a check here is one of demotest's.
func TestChecksAreScenarios(t *testing.T) {
	for name := range checks {
		if !slices.Contains(demotest.Scenarios, name) {
			t.Errorf("checks has %q, which is not a scenario", name)
		}
	}
}
