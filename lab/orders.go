package main

// The lab's scenario for step 16, the order service: how many orders a
// second go through end to end (POST, JetStream, the consumer, the
// database) on its embedded defaults, on PostgreSQL when
// TEST_POSTGRES_URL names one, and on a standalone nats-server (the go
// tool tools/go.mod pins) when its modules are downloaded; how long each shutdown phase takes under
// load, drawn as a Mermaid gantt from the phase log lines; and what three
// SIGTERMs and three kill -9s under load lose or store twice.

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gracefulgo/walkthrough/internal/proc"
	"github.com/gracefulgo/walkthrough/internal/slogline"
	"github.com/jackc/pgx/v5"
)

const (
	ordersStep       = "16"
	ordersRateOrders = 2000 // orders through the service for the throughput
	ordersClients    = 8    // POSTs at once
	ordersRounds     = 6    // SIGTERM, kill -9, SIGTERM, kill -9, SIGTERM, kill -9
	ordersPerRound   = 150  // answered before each round's signal
	ordersAckWait    = 2 * time.Second
	ordersWorkTime   = 5 * time.Millisecond // so that the consumer has messages in hand at the signal
)

// ordersRate is one database's throughput.
type ordersRate struct {
	Database         string
	Orders           int
	Accepted, Stored time.Duration // first POST to the last 202; to the last order stored
	Err              error
}

// phaseTook is one phase of the shutdown, from its log line.
type phaseTook struct {
	Name        string
	Start, Took time.Duration // Start counted from "shutdown started"
	Overran     bool
}

// ordersRun is the scenario's figures for step 16.
type ordersRun struct {
	Step    string
	Rates   []ordersRate
	Phases  []phaseTook // one SIGTERM under load, defaults otherwise
	Signals []string    // the rounds' signals, in order
	// Accepted orders through the rounds; those not stored once the last
	// process ran (Lost), stored more than once (Twice), and deliveries
	// that were not a message's first (Redelivered, from the processes
	// that logged their counts).
	Accepted, Lost, Twice, Redelivered int
	Err                                error
}

// runOrdersLab runs the scenario on step 16, if it ran.
func runOrdersLab(steps []*step) *ordersRun {
	for _, s := range steps {
		if s.BuildErr != "" || s.Name[:2] != ordersStep {
			continue
		}
		run := &ordersRun{Step: s.Name}
		base := os.Getenv("TEST_POSTGRES_URL")
		run.Rates = append(run.Rates, ordersThroughput(s, "SQLite", "", ""))
		if base != "" {
			run.Rates = append(run.Rates, ordersThroughput(s, "PostgreSQL", base, ""))
		}
		// A nats-server of its own for each run: the stream and its
		// durable consumer live on the server, and the next run's order
		// ids would be turned away as the last run's duplicates.
		standalone := []struct{ name, database string }{{"SQLite, with a standalone nats-server", ""}}
		if base != "" {
			standalone = append(standalone, struct{ name, database string }{"PostgreSQL, with a standalone nats-server", base})
		}
		for _, r := range standalone {
			natsURL, stop, err := startNATSServer()
			if err != nil {
				fmt.Fprintf(os.Stderr, "%s / no standalone nats-server: %v\n", s.Name, err)
				break
			}
			run.Rates = append(run.Rates, ordersThroughput(s, r.name, r.database, natsURL))
			stop()
		}
		var phasesErr, roundsErr error
		run.Phases, phasesErr = ordersPhases(s)
		roundsErr = ordersRoundsUnderLoad(s, run)
		run.Err = errors.Join(phasesErr, roundsErr)
		for _, r := range run.Rates {
			fmt.Fprintf(os.Stderr, "%s / orders on %s: %d orders/s end to end (%v)\n", s.Name, r.Database, jobsPerSecond(r.Orders, r.Stored), r.Err)
		}
		fmt.Fprintf(os.Stderr, "%s / %s under load: %d accepted, %d lost, %d stored twice, %d redelivered\n",
			s.Name, strings.Join(run.Signals, ", "), run.Accepted, run.Lost, run.Twice, run.Redelivered)
		if run.Err != nil {
			fmt.Fprintf(os.Stderr, "  %v\n", run.Err)
		}
		return run
	}
	return nil
}

// ordersThroughput posts ordersRateOrders orders from ordersClients
// clients and times them until the last is stored. database is "" for
// the default SQLite file, or the URL of a PostgreSQL server, on which the
// run gets a schema of its own; natsURL is "" for the embedded NATS
// server, or a standalone one's URL.
func ordersThroughput(s *step, name, database, natsURL string) ordersRate {
	rate := ordersRate{Database: name, Orders: ordersRateOrders}
	dir, err := os.MkdirTemp("", "lab-"+s.Name+"-")
	if err != nil {
		rate.Err = err
		return rate
	}
	defer os.RemoveAll(dir)
	args := []string{"-store", dir, "-drain-delay", "0s"}
	if database != "" {
		schemaURL, drop, err := postgresSchema(database)
		if err != nil {
			rate.Err = err
			return rate
		}
		defer drop()
		args = append(args, "-database", schemaURL)
	}
	if natsURL != "" {
		args = append(args, "-nats-url", natsURL)
	}
	p, err := start(s.Bin, dir, args...)
	if err != nil {
		rate.Err = err
		return rate
	}
	defer p.Kill()
	began := time.Now()
	ids, _, err := postOrders(p.Addr, "rate", ordersRateOrders, nil)
	rate.Accepted = time.Since(began)
	if err == nil {
		err = awaitStored(p.Addr, ids, proc.EventTimeout)
	}
	rate.Stored = time.Since(began)
	if err != nil {
		rate.Err = err
	}
	if _, err := p.Signal(syscall.SIGTERM); err != nil && rate.Err == nil {
		rate.Err = err
	}
	if err := p.awaitExit(proc.EventTimeout); err != nil && rate.Err == nil {
		rate.Err = err
	}
	return rate
}

// startNATSServer starts the nats-server that tools/go.mod pins, with
// JetStream on a loopback port, once go tool can build it without the
// network; stop ends it and removes its store.
func startNATSServer() (natsURL string, stop func(), err error) {
	out, err := exec.Command("go", "tool", "-modfile=tools/go.mod", "-n", "nats-server").Output()
	if err != nil {
		return "", nil, fmt.Errorf("go tool -modfile=tools/go.mod -n nats-server: %v", err)
	}
	dir, err := os.MkdirTemp("", "lab-nats-")
	if err != nil {
		return "", nil, err
	}
	addr, err := proc.FreeAddr()
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	host, port, _ := net.SplitHostPort(addr)
	server, err := proc.Start("", exec.Command(strings.TrimSpace(string(out)), "-a", host, "-p", port, "-js", "-sd", dir))
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	stop = func() { server.Kill(); os.RemoveAll(dir) }
	timeout := time.After(proc.EventTimeout)
	for seen := 0; ; {
		lines, grew := server.Watch()
		for ; seen < len(lines); seen++ {
			if strings.Contains(lines[seen].Raw, "Server is ready") {
				return "nats://" + addr, stop, nil
			}
		}
		select {
		case <-grew:
		case <-server.Done():
			stop()
			return "", nil, fmt.Errorf("nats-server exited before it was ready: %s", server.Output())
		case <-timeout:
			stop()
			return "", nil, fmt.Errorf("nats-server not ready within %s", proc.EventTimeout)
		}
	}
}

// postgresSchema creates a schema of its own on the server base names, and
// returns the URL that puts the step's table there.
func postgresSchema(base string) (string, func(), error) {
	schema := "lab_" + strings.ToLower(rand.Text())
	run := func(statement string) error {
		conn, err := pgx.Connect(context.Background(), base)
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		_, err = conn.Exec(context.Background(), statement)
		return err
	}
	if err := run("CREATE SCHEMA " + schema); err != nil {
		return "", nil, err
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), func() { _ = run("DROP SCHEMA " + schema + " CASCADE") }, nil
}

// postOrders posts orders with ids prefix-0, prefix-1, … from
// ordersClients clients, n in all, or until stop is closed or the server
// refuses. It returns the ids answered 202, and those whose answer never
// came (stored or not).
func postOrders(addr, prefix string, n int, stop <-chan struct{}) (accepted, unknown []string, err error) {
	var (
		mu   sync.Mutex
		next int
		wg   sync.WaitGroup
		errs []string
	)
	for range ordersClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Transport: &http.Transport{}, Timeout: proc.EventTimeout}
			defer client.CloseIdleConnections()
			for {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				if next == n {
					mu.Unlock()
					return
				}
				id := fmt.Sprintf("%s-%d", prefix, next)
				next++
				mu.Unlock()
				status, err := postOrder(client, addr, id)
				mu.Lock()
				switch {
				case err != nil:
					unknown = append(unknown, id)
				case status == http.StatusAccepted:
					accepted = append(accepted, id)
				default:
					errs = append(errs, fmt.Sprintf("%s: %d", id, status))
				}
				mu.Unlock()
				if err != nil {
					return // refused: the server is going or gone
				}
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		err = fmt.Errorf("answers other than 202: %s", strings.Join(errs[:min(3, len(errs))], ", "))
	}
	return accepted, unknown, err
}

func postOrder(client *http.Client, addr, id string) (int, error) {
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/orders", strings.NewReader(`{"item":"book","quantity":1}`))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Idempotency-Key", id)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, err
}

// awaitStored waits until GET /orders/{id} answers 200 for every id.
func awaitStored(addr string, ids []string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for _, id := range ids {
		for {
			resp, err := http.Get("http://" + addr + "/orders/" + id)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("order %s not stored within %s", id, within)
			}
			time.Sleep(5 * time.Millisecond) // poll interval while the consumer catches up
		}
	}
	return nil
}

// ordersPhases sends SIGTERM to the step on its defaults (a 2s drain
// delay, a 10s budget) while clients post, and reads each phase's start
// and duration from its log line: the line's time less its took.
func ordersPhases(s *step) ([]phaseTook, error) {
	dir, err := os.MkdirTemp("", "lab-"+s.Name+"-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	p, err := start(s.Bin, dir, "-store", dir, "-work-time", ordersWorkTime.String())
	if err != nil {
		return nil, err
	}
	defer p.Kill()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _, _ = postOrders(p.Addr, "phases", 1_000_000, stop) // refused at the end, as expected
	}()
	if err := p.awaitLog("storing order", ordersPerRound); err != nil {
		close(stop)
		return nil, err
	}
	if _, err := p.Signal(syscall.SIGTERM); err != nil {
		close(stop)
		return nil, err
	}
	err = p.awaitExit(proc.EventTimeout)
	close(stop)
	<-done
	if err != nil {
		return nil, err
	}
	return phasesFromLog(p.Lines())
}

// phasesFromLog reads the phase lines of one shutdown.
func phasesFromLog(lines []slogline.Line) ([]phaseTook, error) {
	var started time.Time
	var phases []phaseTook
	for _, l := range lines {
		switch l.Msg() {
		case "shutdown started":
			t, err := time.Parse(time.RFC3339Nano, l.Attr("time"))
			if err != nil {
				return nil, fmt.Errorf("shutdown started time=%q: %v", l.Attr("time"), err)
			}
			started = t
		case "phase finished", "phase overran":
			t, err1 := time.Parse(time.RFC3339Nano, l.Attr("time"))
			took, err2 := time.ParseDuration(l.Attr("took"))
			if err1 != nil || err2 != nil || started.IsZero() {
				return nil, fmt.Errorf("a phase line without its time or took, or before shutdown started: %s", l.Raw)
			}
			phases = append(phases, phaseTook{Name: l.Attr("phase"), Start: t.Add(-took).Sub(started), Took: took, Overran: l.Msg() == "phase overran"})
		}
	}
	if len(phases) == 0 {
		return nil, errors.New("no phase line")
	}
	return phases, nil
}

// ordersRoundsUnderLoad runs the step ordersRounds times on one -store,
// each time with clients posting 2*ordersPerRound orders, and sends it
// SIGTERM or kill -9 in turn once it has begun storing ordersPerRound; a last process stores what is left. Every
// order answered 202 must then be in the table exactly once.
func ordersRoundsUnderLoad(s *step, run *ordersRun) error {
	dir, err := os.MkdirTemp("", "lab-"+s.Name+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	args := []string{"-store", dir, "-drain-delay", "0s", "-ack-wait", ordersAckWait.String(), "-work-time", ordersWorkTime.String()}
	var accepted []string
	for round := range ordersRounds {
		sig := syscall.SIGTERM
		if round%2 == 1 {
			sig = syscall.SIGKILL
		}
		run.Signals = append(run.Signals, map[syscall.Signal]string{syscall.SIGTERM: "SIGTERM", syscall.SIGKILL: "kill -9"}[sig])
		p, err := start(s.Bin, dir, args...)
		if err != nil {
			return err
		}
		stop := make(chan struct{})
		results := make(chan []string, 1)
		go func() {
			// The orders whose answer never came may or may not be
			// stored: only those answered 202 are counted.
			a, _, _ := postOrders(p.Addr, fmt.Sprintf("round%d", round), 2*ordersPerRound, stop)
			results <- a
		}()
		if err := p.awaitLog("storing order", ordersPerRound); err != nil {
			close(stop)
			p.Kill()
			return err
		}
		if _, err := p.Signal(sig); err != nil {
			close(stop)
			p.Kill()
			return err
		}
		err = p.awaitExit(proc.EventTimeout)
		close(stop)
		accepted = append(accepted, <-results...)
		run.Redelivered += loggedCount(p, "redelivered")
		if err != nil {
			return err
		}
	}
	run.Accepted = len(accepted)
	last, err := start(s.Bin, dir, args...)
	if err != nil {
		return err
	}
	defer last.Kill()
	storedErr := awaitStored(last.Addr, accepted, 2*proc.EventTimeout)
	if _, err := last.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	if err := last.awaitExit(proc.EventTimeout); err != nil {
		return err
	}
	run.Redelivered += loggedCount(last, "redelivered")
	rows, err := orderRows(filepath.Join(dir, "orders.db"))
	if err != nil {
		return err
	}
	for _, id := range accepted {
		switch n := rows[id]; {
		case n == 0:
			run.Lost++
		case n > 1:
			run.Twice++
		}
	}
	return storedErr
}

// loggedCount is a figure of the process's "shutdown finished" line, or 0
// if it has none (killed).
func loggedCount(p *process, key string) int {
	l, ok := p.Logged("shutdown finished")
	if !ok {
		return 0
	}
	n, _ := strconv.Atoi(l.Attr(key)) // 0 if the line lacks it
	return n
}

// orderRows reads how many rows each id has in the step's SQLite file.
func orderRows(path string) (map[string]int, error) {
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.Query(`SELECT id, COUNT(*) FROM orders GROUP BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	counts := map[string]int{}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			return nil, err
		}
		counts[id] = n
	}
	return counts, rows.Err()
}

// tables is the scenario's Markdown: the throughput, the phases and the
// rounds' counts.
func (r *ordersRun) tables() string {
	var b strings.Builder
	b.WriteString("| database | orders | POSTs → last 202 | POSTs → last stored | orders/s end to end |\n|---|--:|--:|--:|--:|\n")
	for _, rate := range r.Rates {
		if rate.Err != nil {
			fmt.Fprintf(&b, "| %s | %d | | | %s |\n", rate.Database, rate.Orders, oneLine(rate.Err.Error()))
			continue
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %d |\n", rate.Database, rate.Orders, formatDuration(rate.Accepted), formatDuration(rate.Stored), jobsPerSecond(rate.Orders, rate.Stored))
	}
	b.WriteString("\n| phase | began after the signal | took |\n|---|--:|--:|\n")
	for _, p := range r.Phases {
		took := formatDuration(p.Took)
		if p.Overran {
			took += " (overran)"
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", p.Name, formatDuration(p.Start), took)
	}
	fmt.Fprintf(&b, "\n| signals, under load | orders accepted (202) | lost | stored twice | deliveries again |\n|---|--:|--:|--:|--:|\n| %s | %d | %d | %d | %d |\n",
		strings.Join(r.Signals, ", "), r.Accepted, r.Lost, r.Twice, r.Redelivered)
	if r.Err != nil {
		fmt.Fprintf(&b, "\n- %s\n", oneLine(r.Err.Error()))
	}
	return b.String()
}

// gantt is the shutdown's phases as a Mermaid gantt chart, in
// milliseconds from the signal's "shutdown started" line.
func (r *ordersRun) gantt() string {
	var b strings.Builder
	b.WriteString("gantt\n    title The shutdown's phases under load, from their log lines\n    dateFormat x\n    axisFormat %S.%L s\n    section shutdown\n")
	for _, p := range r.Phases {
		end := p.Start + max(p.Took, time.Millisecond) // a phase of 0 ms still shows
		tag := ""
		if p.Overran {
			tag = "crit, "
		}
		fmt.Fprintf(&b, "    %s (%s) : %s%d, %d\n", p.Name, formatDuration(p.Took), tag, p.Start.Milliseconds(), end.Milliseconds())
	}
	return b.String()
}

// write puts the tables and the gantt chart in dir, for step 16's README
// to include (make docs): 16-dependencies.md and 16-dependencies-phases.mmd.
func (r *ordersRun) write(dir string) error {
	if r == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, r.Step+".md"), []byte(r.tables()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, r.Step+"-phases.mmd"), []byte(r.gantt()), 0o644)
}
