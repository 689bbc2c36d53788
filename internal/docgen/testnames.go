package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// A page that names a test (TestKeepAliveRace, BenchmarkSend, or a
// subtest, TestScenarios/guaranteed/routes) cites it as the proof of a
// claim. CheckTestNames fails every such name that no _test.go file of the
// repository defines, so that renaming a test fails the gate instead of
// leaving a dead citation.
var testNameRE = regexp.MustCompile(`\b(?:Test|Benchmark|Fuzz)[A-Z][A-Za-z0-9_]*`)

// CheckTestNames returns one message per test name cited outside a fenced
// code block of files (relative to root) that is no top-level function of
// a _test.go file under root, modules of their own included.
func CheckTestNames(root string, files []string) ([]string, error) {
	defined, err := testFunctions(root)
	if err != nil {
		return nil, err
	}
	var problems []string
	for _, name := range files {
		src, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(name)))
		if err != nil {
			return nil, err
		}
		fence := ""
		for i, line := range strings.Split(string(src), "\n") {
			if fence != "" {
				if closesFence(line, fence) {
					fence = ""
				}
				continue
			}
			if fence = opensFence(line); fence != "" {
				continue
			}
			for _, cited := range testNameRE.FindAllString(line, -1) {
				if !defined[cited] {
					problems = append(problems, fmt.Sprintf("%s:%d: cites %s, which no _test.go file defines: renamed or removed?", name, i+1, cited))
				}
			}
		}
	}
	return problems, nil
}

// testFunctions is the set of top-level function names in every _test.go
// file under root, but in .git, testdata and bin.
func testFunctions(root string) (map[string]bool, error) {
	names := map[string]bool{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "testdata", "bin":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			if fn, ok := decl.(*ast.FuncDecl); ok && fn.Recv == nil {
				names[fn.Name.Name] = true
			}
		}
		return nil
	})
	return names, err
}
