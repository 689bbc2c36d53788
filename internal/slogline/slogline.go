// Package slogline parses the lines log/slog's text handler writes. It is
// kept free of the testing package so that both the test harness
// (internal/demotest) and the lab program (lab/) can use it.
package slogline

import (
	"strconv"
	"strings"
	"time"
)

// Line is one line a program wrote. Lines written by slog's text handler
// (key=value pairs) are parsed into Attrs; other lines only have Raw.
type Line struct {
	Raw   string
	Attrs map[string]string
	At    time.Time // when the reader read it
}

// Msg is the line's msg attribute, or "" for a line that is not slog text.
func (l Line) Msg() string { return l.Attrs["msg"] }

// Attr returns the value of key, or "" when the line has no such key.
func (l Line) Attr(key string) string { return l.Attrs[key] }

// Parse parses a line of slog's text format: space-separated key=value
// pairs, where a value is quoted Go-style when it needs to be. A line that
// does not parse that way gets no Attrs.
func Parse(raw string) Line {
	l := Line{Raw: raw}
	attrs := map[string]string{}
	rest := raw
	for rest != "" {
		key, after, ok := strings.Cut(rest, "=")
		if !ok || key == "" || strings.ContainsAny(key, " \"") {
			return l
		}
		var value string
		if strings.HasPrefix(after, `"`) {
			quoted, err := strconv.QuotedPrefix(after)
			if err != nil {
				return l
			}
			value, _ = strconv.Unquote(quoted)
			after = after[len(quoted):]
		} else {
			value, after, _ = strings.Cut(after, " ")
			after = " " + after
		}
		attrs[key] = value
		if after != "" && after[0] != ' ' {
			return l
		}
		rest = strings.TrimLeft(after, " ")
	}
	if _, ok := attrs["msg"]; !ok {
		return l
	}
	l.Attrs = attrs
	return l
}
