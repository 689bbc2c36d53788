package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"
)

// A Markdown renderer turns a soft line break into a space, and between two
// Japanese or Chinese characters a space is a visible gap in the middle of a
// sentence.
// So a translated page keeps one paragraph (and one list item) a line: no
// line break may fall between two CJK characters. Code blocks and generated
// parts are left alone, and so is a hard break (a line ending in two spaces),
// which renders as a break on purpose.

// isCJK reports whether r is Han, Hiragana, Katakana, CJK punctuation
// (、。「」 and the rest of U+3000–U+303F) or a fullwidth form (（）：).
func isCJK(r rune) bool {
	switch {
	case unicode.Is(unicode.Han, r),
		r >= 0x3000 && r <= 0x30FF, // CJK symbols and punctuation, Hiragana, Katakana
		r >= 0x31F0 && r <= 0x31FF, // Katakana phonetic extensions
		r >= 0xFF00 && r <= 0xFFEF: // halfwidth and fullwidth forms
		return true
	}
	return false
}

// cjkBreaks returns the 1-based numbers of the lines of src that end with a
// CJK character while the next line, in the same paragraph, starts with one.
func cjkBreaks(src string) []int {
	var (
		bad   []int
		fence string
	)
	lines := strings.Split(src, "\n")
	for i := 0; i < len(lines); i++ {
		line := lines[i]
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
		if directiveRE.MatchString(strings.TrimSpace(line)) {
			for i+1 < len(lines) && strings.TrimSpace(lines[i+1]) != endLine {
				i++
			}
			continue
		}
		if i+1 == len(lines) || atxHeadingRE.MatchString(line) || strings.HasSuffix(line, "  ") {
			continue
		}
		last, _ := utf8.DecodeLastRuneInString(strings.TrimSpace(unquote(line)))
		first, _ := utf8.DecodeRuneInString(strings.TrimSpace(unquote(lines[i+1])))
		if isCJK(last) && isCJK(first) {
			bad = append(bad, i+1)
		}
	}
	return bad
}

// unquote strips the blockquote markers a line starts with.
func unquote(line string) string {
	for {
		t := strings.TrimLeft(line, " ")
		if !strings.HasPrefix(t, ">") {
			return line
		}
		line = t[1:]
	}
}

// CheckNoLineBreakBetweenCJK returns one message, naming page:line, for each
// line break between two CJK characters in a translated page among files.
func CheckNoLineBreakBetweenCJK(root string, files []string) ([]string, error) {
	var problems []string
	for _, name := range files {
		src, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(name)))
		if err != nil {
			return nil, err
		}
		if translatedFrom(name, string(src)) == "" {
			continue
		}
		for _, n := range cjkBreaks(string(src)) {
			problems = append(problems, fmt.Sprintf("%s:%d: a line break between two CJK characters renders as a space; join the line with the next one (one paragraph, one list item, a line)", name, n))
		}
	}
	return problems, nil
}
