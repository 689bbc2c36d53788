package demotest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// ErrNotDownloaded says that a tool's modules are not in the module cache.
var ErrNotDownloaded = errors.New("not in the module cache")

// GoTool builds a tool that tools/go.mod pins, with go tool (which caches
// the binary), and returns its path. It runs in a step's folder, one below
// the root. cachedOnly forbids downloads: then a tool whose modules are not
// in the module cache yet is ErrNotDownloaded.
func GoTool(name string, cachedOnly bool) (string, error) {
	return GoToolOf("../tools/go.mod", name, cachedOnly)
}

// GoToolOf is GoTool for a tool that another go.mod pins (a path from the
// step's folder): a tool whose modules would clash with the others'.
func GoToolOf(modfile, name string, cachedOnly bool) (string, error) {
	cmd := exec.Command("go", "tool", "-modfile="+modfile, "-n", name)
	if cachedOnly {
		cmd.Env = append(os.Environ(), "GOPROXY=off")
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	switch {
	case err == nil:
		return strings.TrimSpace(string(out)), nil
	case cachedOnly && strings.Contains(stderr.String(), "GOPROXY=off"):
		return "", ErrNotDownloaded
	}
	return "", fmt.Errorf("go tool -n %s: %v: %s", name, err, strings.TrimSpace(stderr.String()))
}
