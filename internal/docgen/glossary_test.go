package main

import (
	"strings"
	"testing"
)

const sampleGlossary = "<!-- glossary of: ../../README.ja.md *.md -->\n# 用語集\n\n訳語の一覧です。\n\n" +
	"| English | 日本語 | not |\n|---|---|---|\n" +
	"| handler | `ハンドラー` | `ハンドラ` |\n" +
	"| budget | `持ち時間` | `予算` `タイムバジェット` |\n" +
	"| signal | `シグナル` | |\n" +
	"| exits 0 | `exit 0` | `0 で終了` |\n" +
	"\nNotes.\n"

func TestCheckGlossaries(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"every word used, none rejected", map[string]string{
			"README.ja.md":  "ハンドラーが持ち時間を使い、exit 0 します。0 と 1 です。\n",
			"docs/ja/a.md":  "シグナルを受ける。\n",
			"docs/en.md":    "予算 is not checked here: no glossary governs it\n",
			"docs/ja/b.txt": "ハンドラ: not Markdown\n",
		}, nil},
		{"a rejected word, also inside the chosen one's line", map[string]string{
			"README.ja.md": "ハンドラーと持ち時間で exit 0。\nハンドラーとハンドラ。0 で終了します。\n",
			"docs/ja/a.md": "シグナル\n\n予算とタイムバジェット\n",
		}, []string{
			`README.ja.md:2: "ハンドラ", which docs/ja/glossary.md rejects: write "ハンドラー" (handler)`,
			`README.ja.md:2: "0 で終了", which docs/ja/glossary.md rejects: write "exit 0" (exits 0)`,
			`docs/ja/a.md:3: "予算", which docs/ja/glossary.md rejects: write "持ち時間" (budget)`,
			`docs/ja/a.md:3: "タイムバジェット", which docs/ja/glossary.md rejects: write "持ち時間" (budget)`,
		}},
		{"code, code spans and generated parts are not prose", map[string]string{
			"README.ja.md": "ハンドラーと持ち時間とシグナル、exit 0。`予算`\n```\nハンドラ\n```\n<!-- gen:file a.txt -->\n予算\n<!-- gen:end -->\n",
		}, nil},
		{"a chosen word used nowhere", map[string]string{
			"README.ja.md": "ハンドラーと持ち時間、exit 0。`シグナル`\n",
		}, []string{"docs/ja/glossary.md:10: `シグナル` (signal) is used on no page"}},
		{"no page governed", map[string]string{}, []string{
			"docs/ja/glossary.md:1: governs no page: none of ../../README.ja.md *.md exists",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.files["docs/ja/glossary.md"] = sampleGlossary
			root := writeFiles(t, tt.files)
			files, err := MarkdownFiles(root)
			if err != nil {
				t.Fatal(err)
			}
			got, err := CheckGlossaries(root, files)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestParseGlossaryRejectsMalformed(t *testing.T) {
	for _, c := range []struct{ name, src, want string }{
		{"no comment", "# 用語集\n\n| English | 日本語 | not |\n|---|---|---|\n| a | `あ` | |\n",
			"g.md:1: a glossary names the pages it governs"},
		{"no table", "<!-- glossary of: *.md -->\n# 用語集\n", "g.md:1: no table"},
		{"two chosen words", "<!-- glossary of: *.md -->\n| English | 日本語 | not |\n|---|---|---|\n| a | `あ` `い` | |\n",
			"g.md:4: a row names its English term, then exactly one chosen word"},
		{"a rejected word without backticks", "<!-- glossary of: *.md -->\n| English | 日本語 | not |\n|---|---|---|\n| a | `あ` | い |\n",
			"g.md:4: the rejected words are each in backticks"},
		{"two cells", "<!-- glossary of: *.md -->\n| English | 日本語 | not |\n|---|---|---|\n| a | `あ` |\n",
			"g.md:4: a row has 2 cells"},
		{"a line break between two CJK characters", "<!-- glossary of: *.md -->\n| English | 日本語 | not |\n|---|---|---|\n| a | `あ` | |\n\n注意の\n続き\n",
			""},
	} {
		_, problems := parseGlossary("g.md", c.src)
		got := strings.Join(problems, "\n")
		if c.want == "" && got != "" || !strings.HasPrefix(got, c.want) {
			t.Errorf("%s: got %q, want it to start with %q", c.name, got, c.want)
		}
	}
}

func TestCheckGlossariesReadsTheGlossarysLineBreaks(t *testing.T) {
	root := writeFiles(t, map[string]string{
		"docs/ja/glossary.md": sampleGlossary + "注意の\n続き\n",
		"docs/ja/a.md":        "ハンドラーと持ち時間とシグナル、exit 0\n",
	})
	got, err := CheckGlossaries(root, []string{"docs/ja/a.md", "docs/ja/glossary.md"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !strings.HasPrefix(got[0], "docs/ja/glossary.md:14: a line break between two CJK characters") {
		t.Errorf("got %q, want one line break at docs/ja/glossary.md:14", got)
	}
}
