package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sampleScenarios = `package demotest

const (
	Drain  = "drain"  // the request completes
	Second = "second" // a second signal ends it
	Unlisted = "unlisted"
)

var Scenarios = []string{Drain, Second}
`

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, text := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestScenarioTable(t *testing.T) {
	root := writeFiles(t, map[string]string{
		"demotest/scenarios.go": sampleScenarios,
		"01-one/main_test.go": `package main
func TestScenarios(t *testing.T) {
	demotest.Suite{NoShutdownTimeout: true, KnownToFail: map[string]string{
		demotest.Drain:  "dies",
		demotest.Second: "dies first",
	}}.Run(t)
}`,
		"02-two/main_test.go": `package main
func TestScenarios(t *testing.T) { demotest.Suite{}.Run(t) }`,
		"03-three/main_test.go": `package main
func TestScenarios(t *testing.T) {
	demotest.Suite{KnownToFail: map[string]string{demotest.Second: "swallowed"}}.Run(t)
}`,
		"04-four/main_test.go": `package main
func TestScenarios(t *testing.T) {
	grpcsuite.Suite{NotApplicable: map[string]string{demotest.Drain: "HTTP only"}}.Run(t)
}`,
		"05-five/main_test.go": `package main
func TestScenarios(t *testing.T) {
	grpcsuite.Suite{
		KnownToFail:   map[string]string{demotest.Second: "swallowed"},
		NotApplicable: map[string]string{demotest.Drain: "HTTP only"},
	}.Run(t)
}`,
		"notastep/main_test.go": "package main",
	})
	got, err := (&Generator{Root: root}).scenarioTable("demotest/scenarios.go")
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"| scenario | passing means | [01](01-one/) | [02](02-two/) | [03](03-three/) | [04](04-four/) | [05](05-five/) |",
		"|---|---|:-:|:-:|:-:|:-:|:-:|",
		"| `drain` | the request completes | ✗ | ✓ | ✓ | n/a | n/a |",
		"| `second` | a second signal ends it | ✗ | ✓ | ✗ | ✓ | ✗ |",
		"",
	}, "\n")
	if got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
}

func TestScenarioTableErrors(t *testing.T) {
	for _, tc := range []struct{ name, test, want string }{
		{"no suite", "package main", "want one demotest.Suite or grpcsuite.Suite literal, found 0"},
		{"two suites", `package main
var _ = demotest.Suite{}
var _ = grpcsuite.Suite{}`, "found 2"},
		{"unknown not applicable", `package main
var _ = grpcsuite.Suite{NotApplicable: map[string]string{demotest.Nope: "?"}}`, "NotApplicable names demotest.Nope"},
		{"not applicable not a constant", `package main
var _ = grpcsuite.Suite{NotApplicable: map[string]string{"drain": "?"}}`, "NotApplicable keys must be demotest constants"},
		{"both", `package main
var _ = grpcsuite.Suite{KnownToFail: map[string]string{demotest.Drain: "?"}, NotApplicable: map[string]string{demotest.Drain: "?"}}`, "demotest.Drain is both KnownToFail and NotApplicable"},
		{"unknown scenario", `package main
var _ = demotest.Suite{KnownToFail: map[string]string{demotest.Nope: "?"}}`, "demotest.Nope"},
		{"not a constant", `package main
var _ = demotest.Suite{KnownToFail: map[string]string{"drain": "?"}}`, "keys must be demotest constants"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := writeFiles(t, map[string]string{"demotest/scenarios.go": sampleScenarios, "01-one/main_test.go": tc.test})
			_, err := (&Generator{Root: root}).scenarioTable("demotest/scenarios.go")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
