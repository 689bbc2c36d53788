package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestCJKBreaks(t *testing.T) {
	for _, c := range []struct {
		name string
		src  string
		want []int
	}{
		{"kanji to hiragana", "これは\n日本語です。\n", []int{1}},
		{"punctuation to kana", "止めます。\nそして", []int{1}},
		{"fullwidth paren", "（対策）\n（対策）", []int{1}},
		{"list continuation", "- 項目の\n  続きです", []int{1}},
		{"blockquote", "> 引用の\n> 続き", []int{1}},
		{"traditional chinese", "程式會\n結束。", []int{1}},
		{"fullwidth comma", "連線，\n然後關閉", []int{1}},
		{"corner brackets", "「優雅關閉」\n是什麼", []int{1}},
		{"han then english term", "優雅關閉\ngraceful shutdown", nil},
		{"cjk then ascii", "ステップ\n`go test` です", nil},
		{"ascii then cjk", "`go test`\nです", nil},
		{"paragraph break", "段落。\n\n次の段落。", nil},
		{"heading", "# 見出し\n本文です。", nil},
		{"hard break", "一行目  \n二行目", nil},
		{"code block", "```\n日本\n語\n```\n", nil},
		{"generated part", "<!-- gen:code a.go#f -->\n日本\n語\n<!-- gen:end -->\n", nil},
		{"after a generated part", "<!-- gen:code a.go#f -->\n<!-- gen:end -->\n日本\n語", []int{3}},
	} {
		if got := cjkBreaks(c.src); !slices.Equal(got, c.want) {
			t.Errorf("%s: cjkBreaks(%q) = %v, want %v", c.name, c.src, got, c.want)
		}
	}
}

func TestCheckNoLineBreakBetweenCJKOnlyReadsTranslations(t *testing.T) {
	root := t.TempDir()
	for name, src := range map[string]string{
		"en.md":           "日本\n語\n",
		"ja/en.md":        "# 題\n\n<!-- translation of ../en.md -->\n日本\n語\n",
		"README.zh-TW.md": "<!-- translation of en.md -->\n# 標題\n\n優雅\n關閉\n",
		"zh-tw/en.md":     "<!-- translation of ../en.md -->\n# 標題\n\n一行一段。\n",
	} {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := CheckNoLineBreakBetweenCJK(root, []string{"en.md", "ja/en.md", "README.zh-TW.md", "zh-tw/en.md"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !strings.HasPrefix(got[0], "ja/en.md:4: ") || !strings.HasPrefix(got[1], "README.zh-TW.md:4: ") {
		t.Errorf("got %q, want one problem at ja/en.md:4 and one at README.zh-TW.md:4", got)
	}
}
