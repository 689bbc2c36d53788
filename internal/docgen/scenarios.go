package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// scenarioTable renders gen:scenarios FILE: the map of what each step
// guarantees, as a table with a row per scenario and a column per step.
// FILE is the scenario suite; it gives the scenarios, in order, and the
// comment that says what passing each one means. Each step's main_test.go
// gives its suite literal (demotest.Suite, or grpcsuite.Suite for a gRPC
// step), whose KnownToFail keys are the scenarios it fails (✗) and whose
// NotApplicable keys those that mean nothing for it (n/a). Both are read
// with go/parser, so the table says what the tests assert, and cannot
// drift from them.
func (g *Generator) scenarioTable(file string) (string, error) {
	src, err := g.read(g.Root, file)
	if err != nil {
		return "", err
	}
	scenarios, meaning, err := parseScenarios(file, src)
	if err != nil {
		return "", err
	}
	dirs, err := filepath.Glob(filepath.Join(g.Root, "[0-9][0-9]-*"))
	if err != nil {
		return "", err
	}
	var steps []string
	failing := map[string][]string{} // step -> the constants it declares known to fail
	notApplicable := map[string][]string{}
	for _, dir := range dirs {
		step := filepath.Base(dir)
		name := step + "/main_test.go"
		test, err := g.read(g.Root, name)
		if err != nil {
			return "", err
		}
		decl, err := parseSuite(name, test)
		if err != nil {
			return "", err
		}
		for _, field := range []string{"KnownToFail", "NotApplicable"} {
			for _, c := range decl[field] {
				if _, ok := meaning[c]; !ok {
					return "", fmt.Errorf("%s: %s names demotest.%s, which %s does not define", name, field, c, file)
				}
			}
		}
		for _, c := range decl["KnownToFail"] {
			if slices.Contains(decl["NotApplicable"], c) {
				return "", fmt.Errorf("%s: demotest.%s is both KnownToFail and NotApplicable", name, c)
			}
		}
		steps = append(steps, step)
		failing[step] = decl["KnownToFail"]
		notApplicable[step] = decl["NotApplicable"]
	}
	if len(steps) == 0 {
		return "", fmt.Errorf("no step folders in %s", g.Root)
	}

	var b strings.Builder
	b.WriteString("| scenario | passing means |")
	for _, step := range steps {
		n, _, _ := strings.Cut(step, "-")
		fmt.Fprintf(&b, " [%s](%s/) |", n, step)
	}
	b.WriteString("\n|---|---|")
	b.WriteString(strings.Repeat(":-:|", len(steps)))
	b.WriteString("\n")
	for _, s := range scenarios {
		fmt.Fprintf(&b, "| `%s` | %s |", s.value, s.meaning)
		for _, step := range steps {
			switch {
			case slices.Contains(notApplicable[step], s.constant):
				b.WriteString(" n/a |")
			case slices.Contains(failing[step], s.constant):
				b.WriteString(" ✗ |")
			default:
				b.WriteString(" ✓ |")
			}
		}
		b.WriteString("\n")
	}
	return b.String(), nil
}

type scenario struct{ constant, value, meaning string }

// parseScenarios reads the scenario constants (name, value and line
// comment) and the order of the Scenarios variable.
func parseScenarios(name string, src []byte) ([]scenario, map[string]string, error) {
	f, err := parser.ParseFile(token.NewFileSet(), name, src, parser.ParseComments)
	if err != nil {
		return nil, nil, err
	}
	byConst := map[string]scenario{}
	var order []string
	for _, decl := range f.Decls {
		gen, ok := decl.(*ast.GenDecl)
		if !ok {
			continue
		}
		for _, spec := range gen.Specs {
			vs, ok := spec.(*ast.ValueSpec)
			if !ok || len(vs.Names) != 1 || len(vs.Values) != 1 {
				continue
			}
			switch {
			case gen.Tok == token.CONST:
				lit, ok := vs.Values[0].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING || vs.Comment == nil {
					continue
				}
				value, _ := strconv.Unquote(lit.Value)
				c := vs.Names[0].Name
				byConst[c] = scenario{constant: c, value: value, meaning: strings.TrimSpace(vs.Comment.Text())}
			case gen.Tok == token.VAR && vs.Names[0].Name == "Scenarios":
				list, ok := vs.Values[0].(*ast.CompositeLit)
				if !ok {
					return nil, nil, fmt.Errorf("%s: Scenarios is not a list literal", name)
				}
				for _, e := range list.Elts {
					id, ok := e.(*ast.Ident)
					if !ok {
						return nil, nil, fmt.Errorf("%s: Scenarios lists %T, want a constant", name, e)
					}
					order = append(order, id.Name)
				}
			}
		}
	}
	if len(order) == 0 {
		return nil, nil, fmt.Errorf("%s: no Scenarios list", name)
	}
	meaning := map[string]string{}
	var scenarios []scenario
	for _, c := range order {
		s, ok := byConst[c]
		if !ok {
			return nil, nil, fmt.Errorf("%s: Scenarios lists %s, which is no string constant with a comment", name, c)
		}
		scenarios = append(scenarios, s)
		meaning[c] = s.meaning
	}
	return scenarios, meaning, nil
}

// suiteTypes are the suite literals a step's test may declare itself with:
// demotest's for the HTTP steps, grpcsuite's for the gRPC one.
var suiteTypes = []string{"demotest", "grpcsuite"}

// parseSuite finds the one suite literal (demotest.Suite or
// grpcsuite.Suite) in a step's test and returns, for each of its fields
// KnownToFail and NotApplicable, the constants its map names, such as
// "SecondSignal".
func parseSuite(name string, src []byte) (map[string][]string, error) {
	f, err := parser.ParseFile(token.NewFileSet(), name, src, 0)
	if err != nil {
		return nil, err
	}
	var suites []*ast.CompositeLit
	ast.Inspect(f, func(n ast.Node) bool {
		if lit, ok := n.(*ast.CompositeLit); ok && slices.ContainsFunc(suiteTypes, func(pkg string) bool { return isSelector(lit.Type, pkg, "Suite") }) {
			suites = append(suites, lit)
		}
		return true
	})
	if len(suites) != 1 {
		return nil, fmt.Errorf("%s: want one demotest.Suite or grpcsuite.Suite literal, found %d", name, len(suites))
	}
	decl := map[string][]string{}
	for _, e := range suites[0].Elts {
		kv, ok := e.(*ast.KeyValueExpr)
		if !ok {
			continue
		}
		key, ok := kv.Key.(*ast.Ident)
		if !ok || key.Name != "KnownToFail" && key.Name != "NotApplicable" {
			continue
		}
		field := key.Name
		m, ok := kv.Value.(*ast.CompositeLit)
		if !ok {
			return nil, fmt.Errorf("%s: %s is not a map literal", name, field)
		}
		for _, e := range m.Elts {
			entry, ok := e.(*ast.KeyValueExpr)
			if !ok {
				return nil, fmt.Errorf("%s: %s is not a map literal", name, field)
			}
			sel, ok := entry.Key.(*ast.SelectorExpr)
			if !ok || !isIdent(sel.X, "demotest") {
				return nil, fmt.Errorf("%s: %s keys must be demotest constants", name, field)
			}
			decl[field] = append(decl[field], sel.Sel.Name)
		}
	}
	return decl, nil
}

func isSelector(e ast.Expr, pkg, name string) bool {
	sel, ok := e.(*ast.SelectorExpr)
	return ok && isIdent(sel.X, pkg) && sel.Sel.Name == name
}

func isIdent(e ast.Expr, name string) bool {
	id, ok := e.(*ast.Ident)
	return ok && id.Name == name
}
