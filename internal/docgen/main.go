// Command docgen regenerates the generated parts of every Markdown file in
// the repository, so that what the docs show is the code and the real runs,
// never a pasted copy. `make docs` runs it.
//
// A generated part is a directive line, the generated content, and an end
// line. docgen rewrites the content and leaves everything else alone:
//
//	<!-- gen:code 05-serve-error-select/main.go#main -->
//	    the top-level func, type, const or var main, with its doc comment
//	    ("T.M" names a method)
//	<!-- gen:code 05-serve-error-select/main.go#/serveErr := make/,/case <-ctx.Done/ -->
//	    the lines from the first match of the first regexp through the
//	    first match of the second on a later line (#/re/ alone: one line)
//	<!-- gen:file 04-notifycontext/testdata/drain.transcript -->
//	    a file verbatim, in a text fence
//	<!-- gen:include 15-behind-a-proxy/testdata/lab-proxies.md -->
//	    a Markdown file another generator wrote (make lab-docs), as it is
//	<!-- gen:diff 04-notifycontext/main.go 05-serve-error-select/main.go -->
//	    a unified diff, in a diff fence
//	<!-- gen:gosrc src/net/http/server.go#/^func \(s \*Server\) Shutdown/,/^}/ -->
//	    an excerpt of the source of Go release GoRelease (one constant,
//	    whatever Go is installed), after a link to those lines at its
//	    release tag on GitHub
//	<!-- gen:end -->
//
// Paths are relative to the repository root; gosrc paths to that release's
// GOROOT. When the installed Go is another release, docgen runs the go
// command with GOTOOLCHAIN=GoRelease to find it, which downloads that
// toolchain through the module proxy the first time.
// Directives inside code fences are left alone. On any error (a missing
// file, a regexp that matches nothing, an unknown declaration, a directive
// without its end line) docgen names the Markdown file and line and writes
// nothing.
//
// Usage:
//
//	go run ./internal/docgen          rewrite every stale part
//	go run ./internal/docgen -check   list the stale parts; exit 1 if any
//	go run ./internal/docgen -diff OLD NEW   print the unified diff of two files
//
// The test of this package (part of `make test`) fails when a generated
// part is stale, a relative link or anchor is broken, a translated page
// leaves its original's skeleton or breaks a line between two CJK
// characters, a cited test does not exist, or a page uses a word its
// language's glossary rejects (glossary.go); it checks the gen:gosrc parts
// only when the installed Go is GoRelease, and downloads nothing.
package main

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
)

func main() {
	check := flag.Bool("check", false, "only list the stale parts, and exit 1 if there are any")
	diff := flag.Bool("diff", false, "print the unified diff of the two files named as arguments")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: docgen [-check] | docgen -diff OLD NEW")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *diff {
		if flag.NArg() != 2 {
			flag.Usage()
			os.Exit(2)
		}
		os.Exit(printDiff(flag.Arg(0), flag.Arg(1)))
	}
	if flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	root, err := FindRoot(".")
	if err != nil {
		fmt.Fprintln(os.Stderr, "docgen:", err)
		os.Exit(1)
	}
	g := &Generator{Root: root, FetchGo: true}
	contents, parts, err := g.ExpandAll()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		fmt.Fprintln(os.Stderr, "docgen: nothing written")
		os.Exit(1)
	}
	var stale int
	for _, name := range slices.Sorted(maps.Keys(contents)) {
		changed := 0
		for _, p := range parts[name] {
			if p.Old != p.New {
				changed++
				if *check {
					fmt.Printf("%s:%d: gen:%s %s is stale\n", name, p.Line, p.Kind, p.Arg)
				}
			}
		}
		if changed == 0 {
			continue
		}
		stale += changed
		if *check {
			continue
		}
		file := filepath.Join(root, filepath.FromSlash(name))
		info, err := os.Stat(file)
		if err != nil {
			fmt.Fprintln(os.Stderr, "docgen:", err)
			os.Exit(1)
		}
		if err := os.WriteFile(file, contents[name], info.Mode().Perm()); err != nil {
			fmt.Fprintln(os.Stderr, "docgen:", err)
			os.Exit(1)
		}
		fmt.Printf("docgen: %s: %d part(s) regenerated\n", name, changed)
	}
	if *check && stale > 0 {
		fmt.Println("run `make docs` to regenerate them")
		os.Exit(1)
	}
}

func printDiff(oldName, newName string) int {
	old, err := os.ReadFile(oldName)
	if err != nil {
		fmt.Fprintln(os.Stderr, "docgen:", err)
		return 2
	}
	new, err := os.ReadFile(newName)
	if err != nil {
		fmt.Fprintln(os.Stderr, "docgen:", err)
		return 2
	}
	d, err := UnifiedDiff(filepath.ToSlash(oldName), filepath.ToSlash(newName), string(old), string(new))
	if err != nil {
		fmt.Fprintln(os.Stderr, "docgen:", err)
		return 2
	}
	fmt.Print(d)
	if d != "" {
		return 1 // as diff(1): the files differ
	}
	return 0
}
