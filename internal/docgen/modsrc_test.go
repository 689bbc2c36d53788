package main

import (
	"strings"
	"testing"
)

// TestModSource quotes a library the repository requires, at the version its
// go.mod names, with a link to that tag.
func TestModSource(t *testing.T) {
	g := &Generator{Root: "../.."}
	got, err := g.generate("modsrc", "google.golang.org/grpc/server.go#Server.GracefulStop")
	if err != nil {
		t.Fatal(err)
	}
	version, err := g.goCmd("list", "-m", "-f", "{{.Version}}", "google.golang.org/grpc")
	if err != nil {
		t.Fatal(err)
	}
	v := strings.TrimSpace(string(version))
	for _, want := range []string{
		"[server.go, lines ",
		"google.golang.org/grpc " + v + "](https://github.com/grpc/grpc-go/blob/" + v + "/server.go#L",
		"```go\n// GracefulStop stops the gRPC server gracefully.",
		"func (s *Server) GracefulStop() {",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("gen:modsrc output lacks %q:\n%s", want, got)
		}
	}
	if _, err := g.generate("modsrc", "example.com/nothing/x.go#F"); err == nil || !strings.Contains(err.Error(), "no module") {
		t.Errorf("a module not in go.mod: err = %v, want one saying no module holds it", err)
	}
}
