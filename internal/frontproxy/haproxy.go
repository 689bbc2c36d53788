package frontproxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gracefulgo/walkthrough/internal/proc"
)

// StartHAProxy runs HAProxy with c's configuration, every server slot in
// maintenance as the configuration leaves them, and returns once it
// accepts connections on c.Listen. Put replicas in slots with SetServer.
func StartHAProxy(c Config) (*Proxy, error) {
	bin, err := Lookup("haproxy")
	if err != nil {
		return nil, err
	}
	conf, err := c.copyConfig()
	if err != nil {
		return nil, err
	}
	p := &Proxy{Name: "haproxy", Listen: c.Listen, dir: c.Dir, bin: bin, conf: conf}
	if err := p.startHAProxy(); err != nil {
		return nil, err
	}
	return p, nil
}

// startHAProxy starts a HAProxy process with the proxy's configuration,
// after the one running now if there is one: -sf tells the new process to
// have the old one finish (stop listening, end its idle connections, exit
// once its requests are done). It returns once the new one answers.
func (p *Proxy) startHAProxy(finish ...int) error {
	// -db: stay in the foreground, logging to stderr.
	args := []string{"-f", p.conf, "-db"}
	if len(finish) > 0 {
		args = append(args, "-sf")
		for _, pid := range finish {
			args = append(args, strconv.Itoa(pid))
		}
	}
	started, err := start("haproxy", p.bin, p.dir, []string{"FRONT_ADDR=" + p.Listen}, args...)
	if err != nil {
		return err
	}
	p.Process = started
	if err := awaitListening(p); err != nil {
		p.Stop()
		return fmt.Errorf("%w\n%s", err, p.Output())
	}
	// The frontend's port can answer before the runtime API's socket
	// exists (HAProxy binds it under a temporary name, then renames it):
	// wait for the socket too.
	if err := awaitRuntimeAPI(p); err != nil {
		p.Stop()
		return fmt.Errorf("%w\n%s", err, p.Output())
	}
	return nil
}

// ReloadHAProxy reloads HAProxy as a deploy does outside master-worker
// mode (SwapHAProxy), and waits until the old process has exited. It
// returns how long that took, and the old process, for what it wrote.
func (p *Proxy) ReloadHAProxy() (time.Duration, *proc.Process, error) {
	start := time.Now()
	old, err := p.SwapHAProxy()
	if err != nil {
		return 0, old, err
	}
	if _, ok := old.AwaitExit(proc.EventTimeout); !ok {
		return 0, old, fmt.Errorf("the old haproxy (pid %d) did not exit within %s of -sf", old.Pid(), proc.EventTimeout)
	}
	return time.Since(start), old, nil
}

// SwapHAProxy saves what the runtime API changed (show servers state,
// into deploy/haproxy.cfg's server-state-file), starts a new process with
// -sf and the old one's pid, and returns the old one once the new one
// answers. The old one is finishing: it has stopped listening, and exits
// once its connections are done (or hard-stop-after cuts them).
func (p *Proxy) SwapHAProxy() (*proc.Process, error) {
	state, err := p.Command("show servers state")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(p.dir, "haproxy.state"), []byte(state+"\n"), 0o644); err != nil {
		return nil, err
	}
	old := p.Process
	if err := p.startHAProxy(old.Pid()); err != nil {
		p.Process = old
		return old, err
	}
	return old, nil
}

func awaitRuntimeAPI(p *Proxy) error {
	deadline := time.Now().Add(proc.EventTimeout)
	for {
		_, err := p.Command("show info")
		if err == nil {
			return nil
		}
		if p.HasExited() {
			return fmt.Errorf("haproxy exited: %s", p.exitString())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("haproxy's runtime API does not answer: %v", err)
		}
		time.Sleep(5 * time.Millisecond) // poll interval while waiting for the socket
	}
}

// Backend is the backend of deploy/haproxy.cfg.
const Backend = "app"

// ServerLine is deploy/haproxy.cfg's server line, for a Config.Replace
// that changes it (a check's timing, proto h2).
const ServerLine = "server-template s 4 127.0.0.1:9 check inter 100ms fall 2 rise 1 disabled pool-purge-delay 5s"

// Command sends one command to HAProxy's runtime API and returns its
// answer. HAProxy answers and closes the connection.
func (p *Proxy) Command(cmd string) (string, error) {
	c, err := net.DialTimeout("unix", filepath.Join(p.dir, "admin.sock"), proc.EventTimeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(proc.EventTimeout))
	if _, err := io.WriteString(c, cmd+"\n"); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	out := strings.TrimSpace(string(b))
	if err != nil {
		return out, err
	}
	return out, nil
}

// SetServer points slot (s1, s2, ...) at addr and makes it ready: HAProxy
// checks it, and sends it requests once it is UP.
func (p *Proxy) SetServer(slot, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	for _, cmd := range []string{
		fmt.Sprintf("set server %s/%s addr %s port %s", Backend, slot, host, port),
		fmt.Sprintf("set server %s/%s state ready", Backend, slot),
	} {
		out, err := p.Command(cmd)
		if err != nil {
			return fmt.Errorf("%s: %w", cmd, err)
		}
		// Success is silent or says what changed; a refusal names itself.
		if strings.Contains(out, "No such") || strings.Contains(out, "Require") || strings.Contains(out, "ncorrect") {
			return fmt.Errorf("%s: %s", cmd, out)
		}
	}
	return nil
}

// Maint puts slot back in maintenance: HAProxy sends it nothing and stops
// checking it.
func (p *Proxy) Maint(slot string) error {
	_, err := p.Command(fmt.Sprintf("set server %s/%s state maint", Backend, slot))
	return err
}

// The operational states of show servers state (management.txt, 9.3).
const (
	Stopped = "0" // DOWN: the check failed fall times
	Running = "2" // UP
)

// ServerState is one row of show servers state.
type ServerState struct {
	Name, Addr, Port string
	OpState          string // Stopped, Running, or another state
	AdminState       string // a mask: 0x01 forced maintenance
}

// ServerStates reads show servers state for the backend.
func (p *Proxy) ServerStates() (map[string]ServerState, error) {
	out, err := p.Command("show servers state " + Backend)
	if err != nil {
		return nil, err
	}
	states := map[string]ServerState{}
	var header []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "# ") {
			header = strings.Fields(line[2:])
			continue
		}
		fields := strings.Fields(line)
		if header == nil || len(fields) < len(header) {
			continue // the format version, or a blank line
		}
		row := map[string]string{}
		for i, h := range header {
			row[h] = fields[i]
		}
		states[row["srv_name"]] = ServerState{Name: row["srv_name"], Addr: row["srv_addr"], Port: row["srv_port"],
			OpState: row["srv_op_state"], AdminState: row["srv_admin_state"]}
	}
	if header == nil {
		return nil, fmt.Errorf("show servers state: no header in %q", out)
	}
	return states, nil
}

// AwaitState polls show servers state until slot is in the operational
// state want, and returns the time it saw it.
func (p *Proxy) AwaitState(slot, want string) (time.Time, error) {
	deadline := time.Now().Add(proc.EventTimeout)
	for {
		states, err := p.ServerStates()
		if err != nil {
			return time.Time{}, err
		}
		if s, ok := states[slot]; ok && s.OpState == want {
			return time.Now(), nil
		} else if !ok {
			return time.Time{}, fmt.Errorf("no server %s in %s", slot, Backend)
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("%s/%s not in state %s within %s: %+v", Backend, slot, want, proc.EventTimeout, states[slot])
		}
		time.Sleep(10 * time.Millisecond) // poll interval of the runtime API
	}
}
