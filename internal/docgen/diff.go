package main

import (
	"fmt"
	"strings"
)

// diffContext is how many unchanged lines a hunk shows around a change,
// as diff -u and git diff do.
const diffContext = 3

// maxDiffCells bounds the table of the line-by-line comparison: the files
// compared are steps' main.go, a few hundred lines at most.
const maxDiffCells = 4 << 20

// An edit is one line of the edit script: ' ' kept, '-' deleted, '+' added.
type edit struct {
	op   byte
	text string
	a, b int // 0-based line in the old and in the new file
}

// UnifiedDiff returns the unified diff that turns old into new, with
// oldName and newName in its header, or "" when they are the same. It is
// a longest-common-subsequence diff: minimal, deletions shown before
// additions.
func UnifiedDiff(oldName, newName, old, new string) (string, error) {
	a, b := splitLines(old), splitLines(new)
	if (len(a)+1)*(len(b)+1) > maxDiffCells {
		return "", fmt.Errorf("%s and %s are too long to compare (%d and %d lines)", oldName, newName, len(a), len(b))
	}
	edits := diffLines(a, b)
	var out strings.Builder
	for i := 0; i < len(edits); {
		if edits[i].op == ' ' {
			i++
			continue
		}
		// A hunk runs from diffContext lines before this change to
		// diffContext lines after the last change that is no more than
		// 2*diffContext unchanged lines from the one before it.
		first := max(i-diffContext, 0)
		last := i
		for j := i; j < len(edits); j++ {
			if edits[j].op != ' ' {
				last = j
			} else if j-last > 2*diffContext {
				break
			}
		}
		end := min(last+diffContext+1, len(edits))
		if out.Len() == 0 {
			fmt.Fprintf(&out, "--- %s\n+++ %s\n", oldName, newName)
		}
		writeHunk(&out, edits[first:end])
		i = end
	}
	return out.String(), nil
}

func writeHunk(out *strings.Builder, hunk []edit) {
	var oldCount, newCount int
	for _, e := range hunk {
		if e.op != '+' {
			oldCount++
		}
		if e.op != '-' {
			newCount++
		}
	}
	fmt.Fprintf(out, "@@ -%s +%s @@\n", hunkRange(hunk[0].a, oldCount), hunkRange(hunk[0].b, newCount))
	for _, e := range hunk {
		out.WriteByte(e.op)
		out.WriteString(e.text)
		out.WriteByte('\n')
	}
}

// hunkRange is diff -u's "start,count": the 1-based first line, with the
// count left out when it is 1, and the line before when it is 0.
func hunkRange(start0, count int) string {
	switch count {
	case 0:
		return fmt.Sprintf("%d,0", start0)
	case 1:
		return fmt.Sprint(start0 + 1)
	}
	return fmt.Sprintf("%d,%d", start0+1, count)
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// diffLines returns an edit script from a to b, built from the table of
// longest common subsequences of their suffixes.
func diffLines(a, b []string) []edit {
	w := len(b) + 1
	lcs := make([]int32, (len(a)+1)*w) // lcs[i*w+j]: LCS of a[i:] and b[j:]
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i*w+j] = lcs[(i+1)*w+j+1] + 1
			} else {
				lcs[i*w+j] = max(lcs[(i+1)*w+j], lcs[i*w+j+1])
			}
		}
	}
	var edits []edit
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			edits = append(edits, edit{' ', a[i], i, j})
			i++
			j++
		case j == len(b) || (i < len(a) && lcs[(i+1)*w+j] >= lcs[i*w+j+1]):
			edits = append(edits, edit{'-', a[i], i, j})
			i++
		default:
			edits = append(edits, edit{'+', b[j], i, j})
			j++
		}
	}
	return edits
}
