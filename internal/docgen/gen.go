package main

import (
	"bytes"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
)

// A generated part is a directive line, the generated content, and an end
// line. Only whole lines count, and never inside a code fence, so Markdown
// can show the syntax without it being expanded.
var (
	directiveRE = regexp.MustCompile(`^<!-- gen:([a-z]+) (.+?) -->$`)
	endLine     = "<!-- gen:end -->"
)

// GoRelease is the one Go release whose source the docs quote: every
// gen:gosrc excerpt, and the link above it, comes from this release,
// whatever Go the reader has installed. To move the docs to another
// release, change it here, run `make docs`, and read what changed.
const GoRelease = "go1.27.3"

// Part is one generated part of a Markdown file, before and after
// generation.
type Part struct {
	Line      int    // 1-based line of the directive
	Kind, Arg string // "code", "05-serve-error-select/main.go#main"
	Old, New  string // the content between directive and end line
	// Unchecked: a gen:gosrc part left as it was, because the Go at hand is
	// not the release the docs quote (see Generator.FetchGo).
	Unchecked bool
}

// Generator expands generated parts. Paths in directives are relative to
// Root; gosrc paths are relative to the GOROOT of Go release GoRelease.
type Generator struct {
	Root string
	// GoRelease is the release gen:gosrc quotes; "" means the constant
	// GoRelease (tests set another).
	GoRelease string
	// FetchGo: when set, gen:gosrc reads the source of GoRelease even if it
	// is not the installed Go, by running the go command with
	// GOTOOLCHAIN=GoRelease (which downloads that toolchain the first time,
	// as go does). When not set and the installed Go is another release,
	// gen:gosrc parts are left as they are and marked Unchecked.
	FetchGo bool

	goOnce    sync.Once
	goRoot    string // $(go env GOROOT)
	goVersion string // "go1.27.3"
	goErr     error
}

func (g *Generator) release() string {
	if g.GoRelease != "" {
		return g.GoRelease
	}
	return GoRelease
}

// errOtherGo: the Go at hand is not the release the docs quote.
var errOtherGo = errors.New("not the Go release the docs quote")

// Expand regenerates every part of the Markdown file name (relative to
// Root) whose content is src. It returns the new content and the parts; on
// any error it returns every error, each naming file:line, and no content.
func (g *Generator) Expand(name string, src []byte) ([]byte, []Part, error) {
	lines := strings.Split(string(src), "\n")
	var (
		out   []string
		parts []Part
		errs  []error
		fence string // the fence that opened the code block we are in, if any
	)
	fail := func(line int, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s:%d: %s", name, line, fmt.Sprintf(format, args...)))
	}
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		out = append(out, line)
		if fence != "" {
			if closesFence(line, fence) {
				fence = ""
			}
			continue
		}
		if f := opensFence(line); f != "" {
			fence = f
			continue
		}
		trimmed := strings.TrimSpace(line)
		if trimmed == endLine {
			fail(i+1, "gen:end without a directive before it")
			continue
		}
		m := directiveRE.FindStringSubmatch(trimmed)
		if m == nil {
			continue
		}
		p := Part{Line: i + 1, Kind: m[1], Arg: m[2]}
		end := -1
		for j := i + 1; j < len(lines); j++ {
			t := strings.TrimSpace(lines[j])
			if t == endLine {
				end = j
				break
			}
			if directiveRE.MatchString(t) {
				break
			}
		}
		if end < 0 {
			fail(p.Line, "gen:%s has no %s line after it", p.Kind, endLine)
			continue
		}
		p.Old = strings.Join(lines[i+1:end], "\n")
		body, err := g.generate(p.Kind, p.Arg)
		switch {
		case errors.Is(err, errOtherGo):
			p.Unchecked, body = true, p.Old
		case err != nil:
			fail(p.Line, "gen:%s %s: %v", p.Kind, p.Arg, err)
		}
		p.New = strings.TrimSuffix(body, "\n")
		parts = append(parts, p)
		out = append(out, p.New, lines[end])
		i = end
	}
	if fence != "" {
		// An unclosed fence runs to the end of the file in Markdown; say so,
		// since it silently hides every directive after it.
		fail(len(lines), "a code fence %s is never closed", fence)
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	return []byte(strings.Join(out, "\n")), parts, nil
}

// opensFence returns the fence a line opens (``` or ~~~, possibly longer),
// or "".
func opensFence(line string) string {
	t := strings.TrimLeft(line, " ")
	if len(line)-len(t) > 3 {
		return ""
	}
	for _, c := range []string{"`", "~"} {
		n := len(t) - len(strings.TrimLeft(t, c))
		if n >= 3 {
			return t[:n]
		}
	}
	return ""
}

// closesFence reports whether line closes a block opened with fence.
func closesFence(line, fence string) bool {
	t := strings.TrimSpace(line)
	return strings.HasPrefix(t, fence) && strings.Trim(t, fence[:1]) == ""
}

// generate returns the content of one part, ending in a newline.
func (g *Generator) generate(kind, arg string) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "<!-- generated by make docs from %s; do not edit -->\n", arg)
	switch kind {
	case "code":
		file, sel, _ := strings.Cut(arg, "#")
		src, err := g.read(g.Root, file)
		if err != nil {
			return "", err
		}
		_, _, text, err := selectLines(file, src, sel)
		if err != nil {
			return "", err
		}
		b.WriteString(fenced(language(file), text))
	case "file":
		src, err := g.read(g.Root, arg)
		if err != nil {
			return "", err
		}
		lang := "text"
		if strings.HasSuffix(arg, ".mmd") {
			lang = "mermaid" // a Mermaid chart, which GitHub draws
		}
		b.WriteString(fenced(lang, string(src)))
	case "diff":
		names := strings.Fields(arg)
		if len(names) != 2 {
			return "", errors.New("want two files: gen:diff OLD NEW")
		}
		a, err := g.read(g.Root, names[0])
		if err != nil {
			return "", err
		}
		c, err := g.read(g.Root, names[1])
		if err != nil {
			return "", err
		}
		d, err := UnifiedDiff(names[0], names[1], string(a), string(c))
		if err != nil {
			return "", err
		}
		if d == "" {
			return "", errors.New("the files are the same")
		}
		b.WriteString(fenced("diff", d))
	case "gosrc":
		goRoot, version, err := g.goEnv()
		if err != nil {
			return "", err
		}
		file, sel, _ := strings.Cut(arg, "#")
		src, err := g.read(goRoot, file)
		if err != nil {
			return "", err
		}
		start, end, text, err := selectLines(file, src, sel)
		if err != nil {
			return "", err
		}
		lines := lineRange(start, end)
		fmt.Fprintf(&b, "[%s, %s, Go %s](https://github.com/golang/go/blob/%s/%s#L%d-L%d)\n",
			file, lines, strings.TrimPrefix(version, "go"), version, file, start, end)
		b.WriteString(fenced("go", text))
	case "modsrc":
		excerpt, err := g.modSource(arg)
		if err != nil {
			return "", err
		}
		b.WriteString(excerpt)
	case "include":
		// Markdown that a program wrote (the lab's tables and figures), put
		// in as it is, so that a table is a table.
		if !strings.HasSuffix(arg, ".md") {
			return "", errors.New("gen:include takes a .md file")
		}
		src, err := g.read(g.Root, arg)
		if err != nil {
			return "", err
		}
		text := string(src)
		if !strings.HasSuffix(text, "\n") {
			text += "\n"
		}
		b.WriteString(text)
	case "scenarios":
		table, err := g.scenarioTable(arg)
		if err != nil {
			return "", err
		}
		b.WriteString(table)
	default:
		return "", fmt.Errorf("unknown directive gen:%s (want code, file, include, diff, gosrc, modsrc or scenarios)", kind)
	}
	return b.String(), nil
}

// read reads a slash-separated path under dir, refusing one that leaves it.
func (g *Generator) read(dir, name string) ([]byte, error) {
	clean := path.Clean(name)
	if name == "" || path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
		return nil, fmt.Errorf("%q: want a path relative to %s, inside it", name, dir)
	}
	src, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(clean)))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no file %s", name)
	}
	return src, err
}

// goEnv finds, once, the GOROOT of the Go release the docs quote, and that
// version, which is also the tag of its source on GitHub. When the Go at
// hand is another release and g.FetchGo is not set, it returns that
// release's version and an error wrapping errOtherGo.
func (g *Generator) goEnv() (goRoot, version string, err error) {
	g.goOnce.Do(func() {
		cmd := exec.Command("go", "env", "GOROOT", "GOVERSION")
		if g.FetchGo {
			cmd.Env = append(os.Environ(), "GOTOOLCHAIN="+g.release())
		}
		cmd.Stderr = os.Stderr // "go: downloading go1.27.3 ..." the first time
		out, err := cmd.Output()
		if err != nil {
			g.goErr = fmt.Errorf("go env: %v", err)
			return
		}
		f := strings.Fields(string(out))
		if len(f) < 2 || !regexp.MustCompile(`^go1\.\d+(\.\d+)?$`).MatchString(f[1]) {
			g.goErr = fmt.Errorf("go env printed %q; want a GOROOT and a released version such as go1.26.0", out)
			return
		}
		g.goRoot, g.goVersion = f[0], f[1]
		switch {
		case g.goVersion == g.release():
		case g.FetchGo:
			g.goErr = fmt.Errorf("GOTOOLCHAIN=%s go env printed version %s", g.release(), g.goVersion)
		default:
			g.goErr = fmt.Errorf("the docs quote %s, the Go at hand is %s: %w", g.release(), g.goVersion, errOtherGo)
		}
	})
	return g.goRoot, g.goVersion, g.goErr
}

// selectLines picks lines of src: with sel "", all of it; with "/re1/,/re2/",
// the lines from the first match of re1 through the first match of re2 on a
// later line; with "/re/", the first line matching re; otherwise the
// top-level declaration named sel (a func, type, const or var; "T.M" for a
// method), with its doc comment. It returns the 1-based first and last line
// and the text, ending in a newline.
func selectLines(file string, src []byte, sel string) (start, end int, text string, err error) {
	lines := strings.SplitAfter(string(src), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	switch {
	case sel == "":
		start, end = 1, len(lines)
	case strings.HasPrefix(sel, "/"):
		start, end, err = matchRange(lines, sel)
	default:
		start, end, err = findDecl(file, src, sel)
	}
	if err != nil {
		return 0, 0, "", err
	}
	text = strings.Join(lines[start-1:end], "")
	if !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	return start, end, text, nil
}

func matchRange(lines []string, sel string) (start, end int, err error) {
	if len(sel) < 3 || !strings.HasSuffix(sel, "/") {
		return 0, 0, fmt.Errorf("bad range %q: want /regexp/ or /regexp/,/regexp/", sel)
	}
	body := sel[1 : len(sel)-1]
	first, last, isRange := strings.Cut(body, "/,/")
	re1, err := regexp.Compile(first)
	if err != nil {
		return 0, 0, err
	}
	find := func(re *regexp.Regexp, from int) int {
		for i := from; i < len(lines); i++ {
			if re.MatchString(strings.TrimSuffix(lines[i], "\n")) {
				return i + 1
			}
		}
		return 0
	}
	if start = find(re1, 0); start == 0 {
		return 0, 0, fmt.Errorf("/%s/ matches no line", first)
	}
	if !isRange {
		return start, start, nil
	}
	re2, err := regexp.Compile(last)
	if err != nil {
		return 0, 0, err
	}
	if end = find(re2, start); end == 0 {
		return 0, 0, fmt.Errorf("/%s/ matches no line after line %d, where /%s/ matched", last, start, first)
	}
	return start, end, nil
}

func findDecl(file string, src []byte, name string) (start, end int, err error) {
	if !strings.HasSuffix(file, ".go") {
		return 0, 0, fmt.Errorf("#%s: declarations can be looked up only in .go files; use #/regexp/,/regexp/", name)
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, src, parser.ParseComments|parser.SkipObjectResolution)
	if err != nil {
		return 0, 0, err
	}
	var found []ast.Decl
	for _, d := range f.Decls {
		if declares(d, name) {
			found = append(found, d)
		}
	}
	switch len(found) {
	case 0:
		return 0, 0, fmt.Errorf("no top-level declaration %s in %s", name, file)
	case 1:
	default:
		return 0, 0, fmt.Errorf("%d top-level declarations named %s in %s", len(found), name, file)
	}
	d := found[0]
	pos := d.Pos()
	switch d := d.(type) {
	case *ast.FuncDecl:
		if d.Doc != nil {
			pos = d.Doc.Pos()
		}
	case *ast.GenDecl:
		if d.Doc != nil {
			pos = d.Doc.Pos()
		}
	}
	return fset.Position(pos).Line, fset.Position(d.End()).Line, nil
}

// declares reports whether d declares name: a func, a method "T.M", or a
// type, const or var (a grouped declaration is shown whole).
func declares(d ast.Decl, name string) bool {
	switch d := d.(type) {
	case *ast.FuncDecl:
		if d.Recv == nil || len(d.Recv.List) == 0 {
			return d.Name.Name == name
		}
		return receiverName(d.Recv.List[0].Type)+"."+d.Name.Name == name
	case *ast.GenDecl:
		for _, s := range d.Specs {
			switch s := s.(type) {
			case *ast.TypeSpec:
				if s.Name.Name == name {
					return true
				}
			case *ast.ValueSpec:
				for _, n := range s.Names {
					if n.Name == name {
						return true
					}
				}
			}
		}
	}
	return false
}

func receiverName(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.StarExpr:
		return receiverName(e.X)
	case *ast.IndexExpr:
		return receiverName(e.X)
	case *ast.IndexListExpr:
		return receiverName(e.X)
	case *ast.Ident:
		return e.Name
	}
	return ""
}

// fenced puts text in a code fence longer than any backtick run at the
// start of its lines, so that Markdown in the text cannot end it early.
func fenced(lang, text string) string {
	fence := "```"
	for _, l := range strings.Split(text, "\n") {
		t := strings.TrimLeft(l, " ")
		n := len(t) - len(strings.TrimLeft(t, "`"))
		for n >= len(fence) {
			fence += "`"
		}
	}
	if !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	return fence + lang + "\n" + text + fence + "\n"
}

func language(file string) string {
	switch {
	case strings.HasSuffix(file, ".go"):
		return "go"
	case strings.HasSuffix(file, ".md"):
		return "markdown"
	case path.Base(file) == "Makefile":
		return "make"
	case strings.HasSuffix(file, ".sh"), path.Base(file) == "run":
		return "sh"
	}
	return "text"
}

// MarkdownFiles lists every *.md file under root, relative to it and
// slash-separated, skipping bin/, data/ and dot-folders.
func MarkdownFiles(root string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "bin" || d.Name() == "data") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(d.Name(), ".md") {
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	return files, err
}

// FindRoot returns the directory of the go.mod that encloses dir.
func FindRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod in this directory or any parent")
		}
		dir = parent
	}
}

// ExpandAll expands every Markdown file under g.Root. It returns the new
// content of each file, by name, and the parts of each; any error from any
// file is returned, all of them joined.
func (g *Generator) ExpandAll() (map[string][]byte, map[string][]Part, error) {
	files, err := MarkdownFiles(g.Root)
	if err != nil {
		return nil, nil, err
	}
	contents := map[string][]byte{}
	parts := map[string][]Part{}
	var errs []error
	for _, name := range files {
		src, err := os.ReadFile(filepath.Join(g.Root, filepath.FromSlash(name)))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !bytes.Contains(src, []byte("<!-- gen:")) {
			continue
		}
		out, ps, err := g.Expand(name, src)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		contents[name], parts[name] = out, ps
	}
	return contents, parts, errors.Join(errs...)
}

// lineRange names the lines an excerpt quotes: "lines 3–9", or "line 3".
func lineRange(start, end int) string {
	if start == end {
		return fmt.Sprintf("line %d", start)
	}
	return fmt.Sprintf("lines %d–%d", start, end)
}
