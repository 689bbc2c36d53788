package slogline

import (
	"maps"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want map[string]string // nil: not a slog text line
	}{
		{`time=2026-11-22T15:45:18.497Z level=INFO msg=listening addr=127.0.0.1:18080 pid=7459`,
			map[string]string{"time": "2026-11-22T15:45:18.497Z", "level": "INFO", "msg": "listening", "addr": "127.0.0.1:18080", "pid": "7459"}},
		{`level=INFO msg="shutdown started" cause="interrupt signal received"`,
			map[string]string{"level": "INFO", "msg": "shutdown started", "cause": "interrupt signal received"}},
		{`msg="a \"quoted\" word" err="x=y z"`,
			map[string]string{"msg": `a "quoted" word`, "err": "x=y z"}},
		{`msg=empty value=`, map[string]string{"msg": "empty", "value": ""}},
		{`flag provided but not defined: -shutdown-timeout`, nil},
		{`no-msg=here`, nil},
		{`msg="unterminated`, nil},
		{``, nil},
	} {
		got := Parse(tc.raw)
		if got.Raw != tc.raw {
			t.Errorf("Parse(%q).Raw = %q", tc.raw, got.Raw)
		}
		if !maps.Equal(got.Attrs, tc.want) || (got.Attrs == nil) != (tc.want == nil) {
			t.Errorf("Parse(%q).Attrs = %v, want %v", tc.raw, got.Attrs, tc.want)
		}
	}
}
