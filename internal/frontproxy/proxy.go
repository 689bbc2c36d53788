// Package frontproxy starts the real proxies of step 15, nginx and HAProxy,
// as child processes on loopback, each with its configuration and every
// file it writes in a folder of its own, and lets a test, the lab or make
// run-15 drive them as a deploy would: nginx by rewriting its upstream
// list and reloading, HAProxy through its runtime API on a UNIX socket.
// It also has the relay that makes the keep-alive race between a proxy
// and the program happen on purpose (relay.go), and a no-retry load that
// counts what the proxy answered (load.go).
//
// The configurations are the step's own, deploy/nginx.conf and
// deploy/haproxy.cfg, copied as they are; a caller may replace whole lines
// of them ([Config.Replace]) to show what a line changes.
package frontproxy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gracefulgo/walkthrough/internal/proc"
)

// Install says how to get the proxies on Debian or Ubuntu: the one line a
// test that skips without them prints.
const Install = "apt-get install nginx haproxy (Debian 12: nginx 1.22, HAProxy 2.6); the system service need not run, the tests start their own"

// Lookup finds a proxy's binary (nginx or haproxy) on PATH or in /usr/sbin,
// where Debian puts both and where a user's PATH often does not look.
func Lookup(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	p := filepath.Join("/usr/sbin", name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s not found: %s", name, Install)
	}
	return p, nil
}

// Config is what a proxy is started with.
type Config struct {
	// File is the configuration to copy: the step's deploy/nginx.conf or
	// deploy/haproxy.cfg.
	File string
	// Dir is the folder the proxy runs in; every file it writes goes there.
	Dir string
	// Listen is the loopback address clients connect to.
	Listen string
	// Replace maps a line of File, as it is written there without its
	// leading spaces, to the line to put in its place; a line that is not
	// in File is an error, so that a variant cannot silently stop applying.
	Replace map[string]string
}

// A Proxy is a running nginx or HAProxy.
type Proxy struct {
	*proc.Process
	Name   string // "nginx" or "haproxy"
	Listen string
	dir    string
	bin    string
	conf   string
}

// copyConfig writes File into Dir with its Replace lines replaced.
func (c Config) copyConfig() (string, error) {
	src, err := os.ReadFile(c.File)
	if err != nil {
		return "", err
	}
	lines := strings.Split(string(src), "\n")
	for old, repl := range c.Replace {
		found := false
		for i, l := range lines {
			if strings.TrimSpace(l) == old {
				indent := l[:len(l)-len(strings.TrimLeft(l, " \t"))]
				lines[i] = indent + repl
				found = true
			}
		}
		if !found {
			return "", fmt.Errorf("%s has no line %q to replace", c.File, old)
		}
	}
	dst := filepath.Join(c.Dir, filepath.Base(c.File))
	return dst, os.WriteFile(dst, []byte(strings.Join(lines, "\n")), 0o644)
}

// start runs the proxy in its own process group, so that Stop can end
// nginx's workers along with their master whatever happens.
func start(name, bin string, dir string, env []string, args ...string) (*proc.Process, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p, err := proc.Start("", cmd)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return p, nil
}

// Stop ends the proxy: SIGTERM (a fast shutdown for both), then SIGKILL to
// its whole process group if it has not exited within EventTimeout.
func (p *Proxy) Stop() {
	if p.HasExited() {
		return
	}
	// Either fails only when the process has exited already, and Done
	// then says so at once.
	_, _ = p.Signal(syscall.SIGTERM)
	if _, ok := p.AwaitExit(proc.EventTimeout); !ok {
		_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
		<-p.Done()
	}
}

// AwaitLine waits for a line, after the first from lines already written,
// that contains s, and returns its index. It fails if the proxy exits or
// the wait outlasts proc.EventTimeout.
func (p *Proxy) AwaitLine(s string, from int) (int, error) {
	deadline := time.NewTimer(proc.EventTimeout)
	defer deadline.Stop()
	for exited := false; ; {
		lines, grew := p.Watch()
		for i := from; i < len(lines); i++ {
			if strings.Contains(lines[i].Raw, s) {
				return i, nil
			}
		}
		from = max(from, len(lines))
		if exited {
			return 0, fmt.Errorf("%s exited without writing %q", p.Name, s)
		}
		select {
		case <-grew:
		case <-p.Done():
			exited = true
		case <-deadline.C:
			return 0, fmt.Errorf("%s did not write %q within %s", p.Name, s, proc.EventTimeout)
		}
	}
}

// Written is how many lines the proxy has written so far: a mark for
// AwaitLine and Since.
func (p *Proxy) Written() int {
	lines, _ := p.Watch()
	return len(lines)
}

// Since returns the lines written after the mark that contain s.
func (p *Proxy) Since(mark int, s string) []string {
	lines, _ := p.Watch()
	var out []string
	for _, l := range lines[min(mark, len(lines)):] {
		if strings.Contains(l.Raw, s) {
			out = append(out, l.Raw)
		}
	}
	return out
}
