package main

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// The gate: `make test` runs these, so a stale generated part or a broken
// link fails the build. Each failure names the Markdown file and line.

var goTagRE = regexp.MustCompile(`github\.com/golang/go/blob/(go[0-9.]+)/`)

func TestGeneratedPartsAreFresh(t *testing.T) {
	root, err := FindRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	g := &Generator{Root: root} // no FetchGo: a test downloads nothing
	_, parts, err := g.ExpandAll()
	if err != nil {
		t.Fatalf("make docs would fail:\n%v", err)
	}
	unchecked := 0
	for name, ps := range parts {
		for _, p := range ps {
			if p.Unchecked {
				// The excerpts quote GoRelease and this is another Go: its
				// source is not at hand, but the links must still name
				// GoRelease, or the constant moved without `make docs`.
				unchecked++
				if m := goTagRE.FindStringSubmatch(p.Old); m == nil || m[1] != GoRelease {
					t.Errorf("%s:%d: gen:gosrc %s does not link to %s, the release the docs quote; run `make docs`", name, p.Line, p.Arg, GoRelease)
				}
				continue
			}
			if p.Old != p.New {
				t.Errorf("%s:%d: gen:%s %s is stale; run `make docs`\n%s", name, p.Line, p.Kind, p.Arg, firstDifference(p.Old, p.New))
			}
		}
	}
	if unchecked > 0 {
		_, version, _ := g.goEnv()
		t.Logf("gen:gosrc: the docs quote %s, this is %s: %d excerpts not compared with the source (GOTOOLCHAIN=%s go test ./internal/docgen compares them)",
			GoRelease, version, unchecked, GoRelease)
	}
}

// firstDifference shows the first line where the committed part and the
// generated one differ.
func firstDifference(old, new string) string {
	a, b := strings.Split(old, "\n"), strings.Split(new, "\n")
	for i := 0; i < max(len(a), len(b)); i++ {
		var x, y string
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			return fmt.Sprintf("\tline %d of the part is   %q\n\tmake docs would write %q", i+1, x, y)
		}
	}
	return ""
}

// Each check below reads every Markdown file of the repository and fails
// with one error per problem it reports, each naming file:line.
func TestLinksAndAnchors(t *testing.T)                  { checkAllMarkdown(t, CheckLinks) }
func TestTranslationsFollowTheirOriginals(t *testing.T) { checkAllMarkdown(t, CheckTranslations) }
func TestNoLineBreakBetweenCJK(t *testing.T)            { checkAllMarkdown(t, CheckNoLineBreakBetweenCJK) }
func TestCitedTestsExist(t *testing.T)                  { checkAllMarkdown(t, CheckTestNames) }
func TestGlossariesAreFollowed(t *testing.T)            { checkAllMarkdown(t, CheckGlossaries) }

func checkAllMarkdown(t *testing.T, check func(root string, files []string) ([]string, error)) {
	root, err := FindRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	files, err := MarkdownFiles(root)
	if err != nil {
		t.Fatal(err)
	}
	problems, err := check(root, files)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
}
