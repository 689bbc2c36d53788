package frontproxy

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/gracefulgo/walkthrough/internal/proc"
)

// StartNginx runs nginx with c's configuration in front of servers, each a
// whole "server" line of the upstream block without its semicolon, such as
// "server 127.0.0.1:8081 max_fails=0". It returns once nginx accepts
// connections on c.Listen.
func StartNginx(c Config, servers []string) (*Proxy, error) {
	bin, err := Lookup("nginx")
	if err != nil {
		return nil, err
	}
	conf, err := c.copyConfig()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(c.Dir, "temp"), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(c.Dir, "listen.conf"), []byte("listen "+c.Listen+";\n"), 0o644); err != nil {
		return nil, err
	}
	p := &Proxy{Name: "nginx", Listen: c.Listen, dir: c.Dir, bin: bin, conf: conf}
	if err := p.writeServers(servers); err != nil {
		return nil, err
	}
	// -e stderr: the error log nginx opens before it has read the
	// configuration, which on Debian is /var/log/nginx/error.log.
	p.Process, err = start("nginx", bin, c.Dir, nil, "-p", c.Dir+"/", "-c", conf, "-e", "stderr", "-g", "daemon off;")
	if err != nil {
		return nil, err
	}
	if err := awaitListening(p); err != nil {
		p.Stop()
		return nil, fmt.Errorf("%w\n%s", err, p.Output())
	}
	return p, nil
}

func (p *Proxy) writeServers(servers []string) error {
	var b strings.Builder
	for _, s := range servers {
		b.WriteString(s + ";\n")
	}
	return os.WriteFile(filepath.Join(p.dir, "servers.conf"), []byte(b.String()), 0o644)
}

// awaitListening waits for the proxy's port to accept a connection.
func awaitListening(p *Proxy) error {
	deadline := time.Now().Add(proc.EventTimeout)
	for {
		c, err := net.Dial("tcp", p.Listen)
		if err == nil {
			c.Close()
			return nil
		}
		if p.HasExited() {
			return fmt.Errorf("%s exited: %s", p.Name, p.exitString())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not answer on %s: %v", p.Name, p.Listen, err)
		}
		time.Sleep(5 * time.Millisecond) // poll interval while waiting for the port
	}
}

func (p *Proxy) exitString() string {
	e, _ := p.Exited()
	return e.String()
}

var (
	workerStarted = regexp.MustCompile(`start worker process (\d+)`)
	workerExited  = regexp.MustCompile(`worker process (\d+) exited`)
)

// Workers returns the pids of the worker processes running now, as nginx's
// notice log tells them.
func (p *Proxy) Workers() map[string]bool {
	lines, _ := p.Watch()
	running := map[string]bool{}
	for _, l := range lines {
		if m := workerStarted.FindStringSubmatch(l.Raw); m != nil {
			running[m[1]] = true
		}
		if m := workerExited.FindStringSubmatch(l.Raw); m != nil {
			delete(running, m[1])
		}
	}
	return running
}

// Reload writes the new upstream list and reloads nginx as a deploy does
// (SIGHUP to the master), then waits until the reload has reached every
// worker: new workers started, and every old one exited. Only from then
// on does no nginx process send anything to a server that left the list.
// It returns how long that took.
func (p *Proxy) Reload(servers []string) (time.Duration, error) {
	if err := p.writeServers(servers); err != nil {
		return 0, err
	}
	old := p.Workers()
	mark := p.Written()
	start := time.Now()
	if _, err := p.Signal(syscall.SIGHUP); err != nil {
		return 0, err
	}
	if _, err := p.AwaitLine("reconfiguring", mark); err != nil {
		return 0, err
	}
	if _, err := p.AwaitLine("start worker process", mark); err != nil {
		return 0, err
	}
	if bad := p.Since(mark, "[emerg]"); len(bad) > 0 {
		return 0, fmt.Errorf("nginx kept its old configuration: %s", bad[0])
	}
	for pid := range old {
		if _, err := p.AwaitLine("worker process "+pid+" exited", mark); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}
