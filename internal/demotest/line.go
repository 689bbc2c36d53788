package demotest

import "github.com/gracefulgo/walkthrough/internal/slogline"

// Line is one line the program wrote; At is when the test read it. The
// parser lives in [slogline], which does not import testing, so the lab
// program shares it too.
type Line = slogline.Line

// ParseLine parses a line of slog's text format; see [slogline.Parse].
func ParseLine(raw string) Line { return slogline.Parse(raw) }
