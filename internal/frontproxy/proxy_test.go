package frontproxy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A Replace line takes the indentation of the line it replaces, and a
// line that is not in the file is an error: a variant of a configuration
// must not silently stop applying when the file changes.
func TestCopyConfigReplace(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src", "proxy.conf")
	if err := os.MkdirAll(filepath.Dir(src), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src, []byte("a {\n    keepalive 32;\n    other;\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := Config{File: src, Dir: dir, Replace: map[string]string{"keepalive 32;": "keepalive 0;"}}
	dst, err := c.copyConfig()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	if want := "a {\n    keepalive 0;\n    other;\n}\n"; string(b) != want {
		t.Errorf("copied %q, want %q", b, want)
	}
	c.Replace = map[string]string{"keepalive 16;": "keepalive 0;"}
	if _, err := c.copyConfig(); err == nil || !strings.Contains(err.Error(), `no line "keepalive 16;"`) {
		t.Errorf("a line not in the file: %v, want an error naming it", err)
	}
}

// The step's configurations have the lines the tests and make measure-15
// replace, so that none of their variants fails to apply.
func TestStepConfigurationsHaveTheirLines(t *testing.T) {
	for file, lines := range map[string][]string{
		"../../15-behind-a-proxy/deploy/nginx.conf": {"worker_processes auto;", "keepalive_timeout 60s;",
			"proxy_next_upstream error timeout;", "worker_shutdown_timeout 75s;"},
		"../../15-behind-a-proxy/deploy/haproxy.cfg": {ServerLine, "option httpchk GET /readyz",
			"http-check expect status 200", "retry-on conn-failure empty-response", "balance roundrobin",
			"option idle-close-on-response", "hard-stop-after 75s"},
	} {
		replace := map[string]string{}
		for _, l := range lines {
			replace[l] = l
		}
		if _, err := (Config{File: file, Dir: t.TempDir(), Replace: replace}).copyConfig(); err != nil {
			t.Error(err)
		}
	}
}
