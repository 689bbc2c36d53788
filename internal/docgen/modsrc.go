package main

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
)

// sourceRepos maps a module path to where its source is browsed, for the
// link above a gen:modsrc excerpt. A module under github.com needs no entry.
var sourceRepos = map[string]string{
	"google.golang.org/grpc":     "https://github.com/grpc/grpc-go",
	"google.golang.org/protobuf": "https://github.com/protocolbuffers/protobuf-go",
}

// modSource renders gen:modsrc MODULE/FILE#SEL: an excerpt of a library's
// source, from the version the repository's go.mod requires (so the docs
// quote the code the steps run, and go stale when go.mod moves it), taken
// from the module cache (go mod download fetches it if it is not there).
func (g *Generator) modSource(arg string) (string, error) {
	file, sel, _ := strings.Cut(arg, "#")
	mod, err := g.module(file)
	if err != nil {
		return "", err
	}
	rel := strings.TrimPrefix(file, mod.Path+"/")
	src, err := g.read(mod.Dir, rel)
	if err != nil {
		return "", err
	}
	start, end, text, err := selectLines(file, src, sel)
	if err != nil {
		return "", err
	}
	lines := lineRange(start, end)
	title := fmt.Sprintf("%s, %s, %s %s", rel, lines, mod.Path, mod.Version)
	repo, ok := sourceRepos[mod.Path]
	if !ok && strings.HasPrefix(mod.Path, "github.com/") {
		repo, ok = "https://"+mod.Path, true
	}
	var b strings.Builder
	if ok {
		fmt.Fprintf(&b, "[%s](%s/blob/%s/%s#L%d-L%d)\n", title, repo, mod.Version, rel, start, end)
	} else {
		b.WriteString(title + "\n")
	}
	b.WriteString(fenced("go", text))
	return b.String(), nil
}

type module struct{ Path, Version, Dir string }

// module finds the module of the repository's build list that holds file
// (the longest module path that is a prefix of it), and its folder in the
// module cache.
func (g *Generator) module(file string) (module, error) {
	var best module
	for path := file; strings.Contains(path, "/"); path = path[:strings.LastIndex(path, "/")] {
		out, err := g.goCmd("list", "-m", "-json", path)
		if err != nil {
			continue // not a module of the build list
		}
		if err := json.Unmarshal(out, &best); err != nil {
			return module{}, fmt.Errorf("go list -m %s: %v", path, err)
		}
		break
	}
	if best.Path == "" {
		return module{}, fmt.Errorf("%s: no module of go.mod's build list holds it", file)
	}
	if best.Dir == "" {
		out, err := g.goCmd("mod", "download", "-json", best.Path+"@"+best.Version)
		if err != nil {
			return module{}, err
		}
		if err := json.Unmarshal(out, &best); err != nil {
			return module{}, fmt.Errorf("go mod download %s: %v", best.Path, err)
		}
	}
	return best, nil
}

// goCmd runs the go command in the repository and returns its output.
func (g *Generator) goCmd(args ...string) ([]byte, error) {
	cmd := exec.Command("go", args...)
	cmd.Dir = g.Root
	out, err := cmd.Output()
	if err != nil {
		if exit, ok := err.(*exec.ExitError); ok {
			return nil, fmt.Errorf("go %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(exit.Stderr)))
		}
		return nil, fmt.Errorf("go %s: %v", strings.Join(args, " "), err)
	}
	return out, nil
}
