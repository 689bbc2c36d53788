package main

import (
	"strings"
	"testing"
)

func TestCheckTranslations(t *testing.T) {
	const en = "# Title\n\nProse.\n\n## Run it\n\n```sh\nmake run-01\n```\n\n<!-- gen:file a/out.txt -->\nold\n<!-- gen:end -->\n\n### Deeper\n"
	ja := func(body string) string { return "<!-- translation of en.md -->\n" + body }
	const same = "# 題\n\n文。\n\n## 動かす\n\n```sh\nmake run-01\n```\n\n<!-- gen:file a/out.txt -->\n違う中身は docs の gate が見る\n<!-- gen:end -->\n\n### さらに\n"
	tests := []struct {
		name, ja, want string
	}{
		{"same skeleton, other prose", ja(same), ""},
		{"a section missing", ja(strings.Replace(same, "\n### さらに\n", "\n", 1)),
			"docs/ja.md ends where docs/en.md:15 has a level-3 heading: translate it"},
		{"a heading at another level", ja(strings.Replace(same, "### さらに", "## さらに", 1)),
			"docs/ja.md:16 has a level-2 heading where docs/en.md:15 has a level-3 heading"},
		{"a command changed", ja(strings.Replace(same, "make run-01", "make run-02", 1)),
			"docs/ja.md:8 has a code block ```sh… where docs/en.md:7 has a code block ```sh…"},
		{"another directive", ja(strings.Replace(same, "a/out.txt", "b/out.txt", 1)),
			"docs/ja.md:12 has <!-- gen:file b/out.txt --> where docs/en.md:11 has <!-- gen:file a/out.txt -->"},
		{"a section too many", ja(same + "\n## 余分\n"),
			"docs/ja.md:18 has a level-2 heading after the end of docs/en.md: remove it, or add it to the original first"},
		{"not a translation", "# 題\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := writeFiles(t, map[string]string{"docs/en.md": en, "docs/ja.md": tt.ja})
			got, err := CheckTranslations(root, []string{"docs/ja.md"})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, "\n") != tt.want {
				t.Errorf("got  %q\nwant %q", strings.Join(got, "\n"), tt.want)
			}
		})
	}
}

// The Traditional Chinese pages are found the same way: a README beside the
// English one at the root, and pages in a docs/zh-tw folder.
func TestCheckTranslationsFindsZhTW(t *testing.T) {
	const en = "# Title\n\n```sh\nmake run-01\n```\n"
	root := writeFiles(t, map[string]string{
		"README.md":        en,
		"README.zh-TW.md":  "<!-- translation of README.md -->\n# 標題\n\n```sh\nmake run-01\n```\n",
		"docs/workshop.md": en,
		"docs/zh-tw/ws.md": "<!-- translation of ../workshop.md -->\n# 工作坊\n\n```sh\nmake run-02\n```\n",
	})
	got, err := CheckTranslations(root, []string{"README.md", "README.zh-TW.md", "docs/workshop.md", "docs/zh-tw/ws.md"})
	if err != nil {
		t.Fatal(err)
	}
	want := "docs/zh-tw/ws.md:4 has a code block ```sh… where docs/workshop.md:3 has a code block ```sh…"
	if strings.Join(got, "\n") != want {
		t.Errorf("got  %q\nwant %q", strings.Join(got, "\n"), want)
	}
}
