package main

import (
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"unicode"
)

var (
	inlineLinkRE = regexp.MustCompile(`\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+"[^"]*")?\s*\)`)
	refDefRE     = regexp.MustCompile(`^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)`)
	codeSpanRE   = regexp.MustCompile("(`+)[^`].*?(`+)")
	atxHeadingRE = regexp.MustCompile(`^ {0,3}(#{1,6})(?:\s+(.*?))?(?:\s+#+)?\s*$`)
	htmlAnchorRE = regexp.MustCompile(`<a\s+(?:id|name)="([^"]+)"`)
	schemeRE     = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*:`)
	mdLinkTextRE = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)
	htmlTagRE    = regexp.MustCompile(`<[^>]+>`)
)

// A link is a relative link or anchor found in a Markdown file.
type link struct {
	line   int
	target string
}

// mdDoc is what the link check needs of a Markdown file: its links and
// the anchors its headings (and <a id=...>) define.
type mdDoc struct {
	links   []link
	anchors map[string]bool
}

// parseMarkdown finds the links and anchors of a Markdown file, outside
// code fences and code spans.
func parseMarkdown(src string) mdDoc {
	doc := mdDoc{anchors: map[string]bool{}}
	seen := map[string]int{}
	addHeading := func(text string) {
		slug := Slug(text)
		n := seen[slug]
		seen[slug]++
		if n > 0 {
			slug = fmt.Sprintf("%s-%d", slug, n)
		}
		doc.anchors[slug] = true
	}
	var fence, prev string
	for i, line := range strings.Split(src, "\n") {
		if fence != "" {
			if closesFence(line, fence) {
				fence = ""
			}
			prev = ""
			continue
		}
		if f := opensFence(line); f != "" {
			fence, prev = f, ""
			continue
		}
		if m := atxHeadingRE.FindStringSubmatch(line); m != nil {
			addHeading(m[2])
		} else if t := strings.TrimSpace(line); t != "" && strings.Trim(t, "=") == "" || len(t) >= 2 && strings.Trim(t, "-") == "" {
			// A setext heading: the text line above underlined with = or -.
			if p := strings.TrimSpace(prev); p != "" && !strings.HasPrefix(p, "|") && !strings.HasPrefix(p, "<") {
				addHeading(p)
			}
		}
		for _, m := range htmlAnchorRE.FindAllStringSubmatch(line, -1) {
			doc.anchors[m[1]] = true
		}
		text := codeSpanRE.ReplaceAllString(line, "")
		var targets []string
		for _, m := range inlineLinkRE.FindAllStringSubmatch(text, -1) {
			targets = append(targets, m[1])
		}
		if m := refDefRE.FindStringSubmatch(text); m != nil {
			targets = append(targets, m[1])
		}
		for _, t := range targets {
			t = strings.TrimSuffix(strings.TrimPrefix(t, "<"), ">")
			if t == "" || schemeRE.MatchString(t) || strings.HasPrefix(t, "//") {
				continue // not a link inside the repo
			}
			doc.links = append(doc.links, link{line: i + 1, target: t})
		}
		prev = line
	}
	return doc
}

// Slug is the anchor GitHub gives a heading: the text as rendered (no
// Markdown), lower-cased, with every character that is not a letter, digit,
// mark, connector (such as _), space or hyphen removed, and each space
// made a hyphen. A repeated slug gets -1, -2, ... (see parseMarkdown).
func Slug(heading string) string {
	text := mdLinkTextRE.ReplaceAllString(heading, "$1")
	text = htmlTagRE.ReplaceAllString(text, "")
	var b strings.Builder
	for _, r := range strings.ToLower(text) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.Pc):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// CheckLinks checks every relative link and anchor of the Markdown files
// (names relative to root): the file or folder must exist inside the repo,
// and an anchor must name a heading of the Markdown file it points into.
// It returns one error string per broken link, naming file:line.
func CheckLinks(root string, files []string) ([]string, error) {
	docs := map[string]mdDoc{}
	load := func(name string) (mdDoc, error) {
		if d, ok := docs[name]; ok {
			return d, nil
		}
		src, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(name)))
		if err != nil {
			return mdDoc{}, err
		}
		d := parseMarkdown(string(src))
		docs[name] = d
		return d, nil
	}
	var broken []string
	for _, name := range files {
		doc, err := load(name)
		if err != nil {
			return nil, err
		}
		for _, l := range doc.links {
			if msg := checkLink(root, name, l.target, load); msg != "" {
				broken = append(broken, fmt.Sprintf("%s:%d: %s: %s", name, l.line, l.target, msg))
			}
		}
	}
	return broken, nil
}

func checkLink(root, from, target string, load func(string) (mdDoc, error)) string {
	pathPart, anchor, _ := strings.Cut(target, "#")
	if p, err := url.PathUnescape(pathPart); err == nil {
		pathPart = p
	}
	to := from
	if pathPart != "" {
		if strings.HasPrefix(pathPart, "/") {
			to = path.Clean(strings.TrimPrefix(pathPart, "/")) // GitHub: relative to the repo root
		} else {
			to = path.Join(path.Dir(from), pathPart)
		}
		if to == ".." || strings.HasPrefix(to, "../") {
			return "points outside the repository"
		}
		if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(to))); err != nil {
			return "no such file or folder " + to
		}
	}
	if anchor == "" || !strings.HasSuffix(to, ".md") {
		return "" // anchors into code (#L10) and folders are GitHub's to resolve
	}
	doc, err := load(to)
	if err != nil {
		return err.Error()
	}
	if !doc.anchors[anchor] {
		return fmt.Sprintf("%s has no heading with the anchor #%s", to, anchor)
	}
	return ""
}
