package main

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

// A translation keeps one word for each term. The words are chosen in a
// glossary beside the translated pages (docs/ja/glossary.md,
// docs/zh-tw/glossary.md), in this form:
//
//	<!-- glossary of: ../../README.ja.md *.md -->
//	# 用語集
//
//	One paragraph: what the page is.
//
//	| English | 日本語 | not |
//	|---|---|---|
//	| budget | `持ち時間` | `予算` `タイムバジェット` |
//
// The comment, among the first five lines, names the pages it governs,
// relative to the glossary; a name may be a glob. In those pages, outside
// code blocks, generated parts and code spans, every chosen word must appear
// at least once, and no rejected word may appear once the chosen word of its
// row has been taken out of the line (so `ハンドラー` can be chosen over
// `ハンドラ`). The line breaks of the glossary itself are checked as a
// translated page's are (cjkbreaks.go).
var (
	glossaryOfRE    = regexp.MustCompile(`^<!-- glossary of: (.+?) -->$`)
	glossaryHeadRE  = regexp.MustCompile(`^\| English \| (\S[^|]*?) \| not \|$`)
	glossaryWordRE  = regexp.MustCompile("^`([^`]+)`$")
	glossaryWordsRE = regexp.MustCompile("^(?:`[^`]+`(?: +`[^`]+`)*)?$")
	codeWordRE      = regexp.MustCompile("`([^`]+)`")
)

// isGlossary reports whether the Markdown file name is a glossary.
func isGlossary(name string) bool {
	ok, _ := path.Match("docs/*/glossary.md", name)
	return ok
}

// A glossaryRow is one term of a glossary.
type glossaryRow struct {
	line     int
	term     string
	chosen   string
	rejected []string
}

// glossary is a parsed glossary: the pages it names (relative to it, as
// written) and its rows.
type glossary struct {
	governs []string
	rows    []glossaryRow
}

// parseGlossary reads a glossary named name; problems name name:line.
func parseGlossary(name, src string) (glossary, []string) {
	var (
		g        glossary
		problems []string
	)
	fail := func(line int, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("%s:%d: ", name, line)+fmt.Sprintf(format, args...))
	}
	lines := strings.Split(src, "\n")
	for _, line := range lines[:min(5, len(lines))] {
		if m := glossaryOfRE.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			g.governs = strings.Fields(m[1])
		}
	}
	if g.governs == nil {
		fail(1, "a glossary names the pages it governs among its first five lines: <!-- glossary of: ../../README.ja.md *.md -->")
	}
	tables := 0
	for i := 0; i < len(lines); i++ {
		if !glossaryHeadRE.MatchString(strings.TrimSpace(lines[i])) {
			continue
		}
		tables++
		if tables > 1 {
			fail(i+1, "a second table: a glossary has one")
			break
		}
		if i+1 >= len(lines) || strings.Trim(strings.TrimSpace(lines[i+1]), "|-: ") != "" {
			fail(i+2, "the header row is followed by its |---|---|---| row")
		}
		i += 2
		for ; i < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[i]), "|"); i++ {
			cells := strings.Split(strings.Trim(strings.TrimSpace(lines[i]), "|"), "|")
			if len(cells) != 3 {
				fail(i+1, "a row has %d cells, want 3: | English | `chosen word` | `rejected` `words` |", len(cells))
				continue
			}
			term, chosen, rejected := strings.TrimSpace(cells[0]), strings.TrimSpace(cells[1]), strings.TrimSpace(cells[2])
			m := glossaryWordRE.FindStringSubmatch(chosen)
			if term == "" || m == nil {
				fail(i+1, "a row names its English term, then exactly one chosen word in backticks, got %q and %q", term, chosen)
				continue
			}
			if !glossaryWordsRE.MatchString(rejected) {
				fail(i+1, "the rejected words are each in backticks, separated by spaces; got %q", rejected)
				continue
			}
			row := glossaryRow{line: i + 1, term: term, chosen: m[1]}
			for _, w := range codeWordRE.FindAllStringSubmatch(rejected, -1) {
				row.rejected = append(row.rejected, w[1]) // a word may hold a space: `0 で終了`
			}
			g.rows = append(g.rows, row)
		}
		i--
	}
	if tables == 0 {
		fail(1, "no table with the header | English | <language name> | not |")
	}
	return g, problems
}

// governedPages returns the pages, among files, that the glossary name
// governs: the names it gives, relative to it, globs expanded against files,
// never the glossary itself. A page that does not exist is no error (a
// glossary may name the pages of a language before they are all written);
// a glossary that governs no page at all is.
func governedPages(name string, g glossary, files []string) []string {
	var pages []string
	seen := map[string]bool{name: true}
	for _, pattern := range g.governs {
		pattern = path.Join(path.Dir(name), pattern)
		for _, f := range files {
			if ok, _ := path.Match(pattern, f); ok && !seen[f] {
				seen[f] = true
				pages = append(pages, f)
			}
		}
	}
	return pages
}

// prose returns the lines of a Markdown page as the glossary check reads
// them: code blocks, generated parts and code spans blanked out, so that
// line numbers still hold.
func prose(src string) []string {
	lines := strings.Split(src, "\n")
	var fence string
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		switch {
		case fence != "":
			if closesFence(line, fence) {
				fence = ""
			}
			lines[i] = ""
		case opensFence(line) != "":
			fence, lines[i] = opensFence(line), ""
		case directiveRE.MatchString(strings.TrimSpace(line)):
			for ; i < len(lines) && strings.TrimSpace(lines[i]) != endLine; i++ {
				lines[i] = ""
			}
		default:
			lines[i] = codeSpanRE.ReplaceAllString(line, "")
		}
	}
	return lines
}

// CheckGlossaries checks every glossary among files (relative to root)
// against the pages it governs, and returns one message per problem, naming
// the page and line.
func CheckGlossaries(root string, files []string) ([]string, error) {
	read := func(name string) (string, error) {
		src, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(name)))
		return string(src), err
	}
	var problems []string
	for _, name := range files {
		if !isGlossary(name) {
			continue
		}
		src, err := read(name)
		if err != nil {
			return nil, err
		}
		for _, n := range cjkBreaks(src) {
			problems = append(problems, fmt.Sprintf("%s:%d: a line break between two CJK characters renders as a space; join the line with the next one", name, n))
		}
		g, bad := parseGlossary(name, src)
		problems = append(problems, bad...)
		if g.governs == nil {
			continue
		}
		pages := governedPages(name, g, files)
		if len(pages) == 0 {
			problems = append(problems, fmt.Sprintf("%s:1: governs no page: none of %s exists", name, strings.Join(g.governs, " ")))
			continue
		}
		used := map[string]bool{}
		for _, page := range pages {
			src, err := read(page)
			if err != nil {
				return nil, err
			}
			for i, line := range prose(src) {
				for _, row := range g.rows {
					if strings.Contains(line, row.chosen) {
						used[row.chosen] = true
					}
					rest := strings.ReplaceAll(line, row.chosen, "")
					for _, w := range row.rejected {
						if strings.Contains(rest, w) {
							problems = append(problems, fmt.Sprintf("%s:%d: %q, which %s rejects: write %q (%s)", page, i+1, w, name, row.chosen, row.term))
						}
					}
				}
			}
		}
		for _, row := range g.rows {
			if !used[row.chosen] {
				problems = append(problems, fmt.Sprintf("%s:%d: `%s` (%s) is used on no page", name, row.line, row.chosen, row.term))
			}
		}
	}
	return problems, nil
}
