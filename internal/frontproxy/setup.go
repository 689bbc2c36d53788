package frontproxy

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gracefulgo/walkthrough/internal/noretry"
	"github.com/gracefulgo/walkthrough/internal/proc"
)

// A Setup is one configuration of step 15 in front of two replicas: which
// proxy, which lines of its deploy/ file are replaced, how the deploy
// rolls, and the replicas' flags. make run-15, make measure-15 and the lab
// start theirs with Start.
type Setup struct {
	Proxy  string // "haproxy" or "nginx"
	Deploy string // the folder with nginx.conf and haproxy.cfg
	Dir    string // where the proxy runs and writes
	Listen string // the proxy's address
	Bin    string // the step's program, built
	Args   []string
	// ServerParams are the parameters of each nginx upstream server line.
	ServerParams string
	// H2 makes HAProxy speak HTTP/2 to the replicas (proto h2).
	H2 bool
	// StopFirst: see Fleet.
	StopFirst bool
	Replace   map[string]string
	Log       func(format string, args ...any)
}

// H2ServerLine is ServerLine with proto h2: HAProxy speaks HTTP/2 (h2c,
// prior knowledge) to the replicas; its checks stay HTTP/1.1.
const H2ServerLine = ServerLine + " proto h2"

// Start starts the proxy and two replicas behind it, and returns the
// fleet; on an error it stops what it started.
func (s Setup) Start() (*Fleet, error) {
	f := &Fleet{StopFirst: s.StopFirst, Log: s.Log, Server: func(addr string) string {
		return strings.TrimSpace("server " + addr + " " + s.ServerParams)
	}, Start: s.startReplica}
	config := Config{Dir: s.Dir, Listen: s.Listen, Replace: map[string]string{}}
	for k, v := range s.Replace {
		config.Replace[k] = v
	}
	var err error
	switch s.Proxy {
	case "nginx":
		config.File = filepath.Join(s.Deploy, "nginx.conf")
		for range 2 {
			p, err := f.Start()
			if err != nil {
				// The error that matters is the one that stopped the start.
				_ = f.Stop()
				return nil, err
			}
			f.Replicas = append(f.Replicas, &Replica{Process: p})
		}
		f.Proxy, err = StartNginx(config, f.servers())
	case "haproxy":
		config.File = filepath.Join(s.Deploy, "haproxy.cfg")
		if s.H2 {
			config.Replace[ServerLine] = H2ServerLine
		}
		f.Proxy, err = StartHAProxy(config)
		for i := 0; err == nil && i < 2; i++ {
			_, err = f.Add()
		}
	default:
		return nil, fmt.Errorf("proxy %q: want haproxy or nginx", s.Proxy)
	}
	if err != nil {
		if stopErr := f.Stop(); stopErr != nil {
			err = fmt.Errorf("%w (and stopping: %v)", err, stopErr)
		}
		return nil, err
	}
	return f, nil
}

func (s Setup) startReplica() (*proc.Process, error) {
	addr, err := proc.FreeAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(s.Bin, s.Args...) // proc.Start adds -addr
	// A process group of its own: Ctrl+C in make run-15's terminal reaches
	// that command, which stops each replica with one SIGTERM; reaching
	// the replicas too, it would be their first signal and the SIGTERM
	// their second, which ends a drain at once.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p, err := proc.Start(addr, cmd)
	if err != nil {
		return nil, err
	}
	if _, ok := p.AwaitLog("listening", proc.EventTimeout); !ok {
		p.Kill()
		return nil, fmt.Errorf("%s did not start:\n%s", s.Bin, p.Output())
	}
	return p, p.AwaitAnswer(proc.EventTimeout)
}

// A Measurement is what a no-retry load saw through rolling updates, and
// what the replicas counted.
type Measurement struct {
	Rolls int
	LoadResult
	Count int // the replicas' count= added up: the POSTs they processed
}

// Answered is how many requests of either method got a 200.
func (m Measurement) Answered() int { return m.GETs[noretry.OK] + m.POSTs[noretry.OK] }

// Kind is how many requests of either method ended as k.
func (m Measurement) Kind(k noretry.Kind) int { return m.GETs[k] + m.POSTs[k] }

// ProcessedUnanswered is how many POSTs the replicas processed whose
// client was not told so (a negative number would be answers nobody
// counted).
func (m Measurement) ProcessedUnanswered() int { return m.Count - m.POSTs[noretry.OK] }

// MeasureRolls runs a load of lanes GET and lanes POST lanes through the
// fleet's proxy, rolls the replicas n times, then stops the load and the
// fleet.
func MeasureRolls(f *Fleet, n, lanes int, keepAlive bool) (Measurement, error) {
	load := StartLoad(f.Proxy.Listen, lanes, keepAlive)
	<-load.Answered()
	var err error
	for i := range n {
		if err = f.Roll(); err != nil {
			err = fmt.Errorf("roll %d: %w", i+1, err)
			break
		}
	}
	time.Sleep(200 * time.Millisecond) // a moment of load after the last roll, in a measurement, not a test
	res := load.Stop()
	if stopErr := f.Stop(); err == nil {
		err = stopErr
	}
	return Measurement{Rolls: n, LoadResult: res, Count: f.Count}, err
}
