package main

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

// A translated page names the page it follows on a line of its own:
//
//	<!-- translation of ../workshop.md -->
//
// (the path relative to the translated page, as a link would be). The two
// must keep the same skeleton: the same headings at the same levels, the
// same generated parts (their directives) and the same code blocks, in the
// same order. Only prose, which includes the headings' words, differs.
var translationRE = regexp.MustCompile(`^<!-- translation of (\S+) -->$`)

// A landmark is one piece of a page's skeleton.
type landmark struct {
	line int
	kind string // "heading", "gen", "code"
	text string // "##" for a heading; the directive; the code block whole
}

func (l landmark) String() string {
	switch l.kind {
	case "heading":
		return "a level-" + fmt.Sprint(len(l.text)) + " heading"
	case "gen":
		return l.text
	}
	first, _, _ := strings.Cut(l.text, "\n")
	return "a code block " + first + "…"
}

// skeleton lists the landmarks of a Markdown file: ATX headings, gen
// directives (not what they generate, which the docs gate checks) and the
// code blocks outside generated parts, verbatim with their fences.
func skeleton(src string) []landmark {
	var (
		marks []landmark
		fence string
		block []string
		start int
	)
	lines := strings.Split(src, "\n")
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if fence != "" {
			block = append(block, line)
			if closesFence(line, fence) {
				marks = append(marks, landmark{start, "code", strings.Join(block, "\n")})
				fence, block = "", nil
			}
			continue
		}
		if f := opensFence(line); f != "" {
			fence, block, start = f, []string{line}, i+1
			continue
		}
		t := strings.TrimSpace(line)
		if directiveRE.MatchString(t) {
			marks = append(marks, landmark{i + 1, "gen", t})
			for i+1 < len(lines) && strings.TrimSpace(lines[i+1]) != endLine {
				i++
			}
			continue
		}
		if m := atxHeadingRE.FindStringSubmatch(line); m != nil {
			marks = append(marks, landmark{i + 1, "heading", m[1]})
		}
	}
	return marks
}

// translatedFrom returns the page (relative to the root) that the page name,
// whose text is src, says it translates, or "" when it is no translation.
// The line must be among the first five: the page says up front what it
// follows.
func translatedFrom(name, src string) string {
	original := ""
	head := strings.SplitN(src, "\n", 6)
	for _, line := range head[:min(5, len(head))] {
		if m := translationRE.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			original = path.Join(path.Dir(name), m[1])
		}
	}
	return original
}

// CheckTranslations finds every translated page among files (relative to
// root) and returns one message for each place where its skeleton leaves
// the original's, naming both files and lines; one per pair, the first.
func CheckTranslations(root string, files []string) ([]string, error) {
	var problems []string
	for _, name := range files {
		src, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(name)))
		if err != nil {
			return nil, err
		}
		original := translatedFrom(name, string(src))
		if original == "" {
			continue
		}
		orig, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(original)))
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: says it translates %s, which cannot be read: %v", name, original, err))
			continue
		}
		if msg := compareSkeletons(original, skeleton(string(orig)), name, skeleton(string(src))); msg != "" {
			problems = append(problems, msg)
		}
	}
	return problems, nil
}

// compareSkeletons returns "" when the two skeletons match, else where they
// first part.
func compareSkeletons(origName string, orig []landmark, transName string, trans []landmark) string {
	for i := 0; i < max(len(orig), len(trans)); i++ {
		switch {
		case i >= len(trans):
			return fmt.Sprintf("%s ends where %s:%d has %s: translate it", transName, origName, orig[i].line, orig[i])
		case i >= len(orig):
			return fmt.Sprintf("%s:%d has %s after the end of %s: remove it, or add it to the original first", transName, trans[i].line, trans[i], origName)
		case orig[i].kind != trans[i].kind || orig[i].text != trans[i].text:
			return fmt.Sprintf("%s:%d has %s where %s:%d has %s", transName, trans[i].line, trans[i], origName, orig[i].line, orig[i])
		}
	}
	return ""
}
