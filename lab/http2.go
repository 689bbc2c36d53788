package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/gracefulgo/walkthrough/internal/goclient"
	"github.com/gracefulgo/walkthrough/internal/noretry"
	"github.com/gracefulgo/walkthrough/internal/proc"
)

// The POST race: step 13 under a load of POST /count through SIGTERM, once
// per client (HTTP/1.1 with HTTP/2 off, the same with an Idempotency-Key,
// h2c), with net/http's own client and no retry in the caller: what the
// transport sends again, it sends by itself.
const (
	postClients = 16
	postDrains  = 3
	// postBefore is how many answers the load has had, in each run, when
	// the lab sends SIGTERM.
	postBefore = 2000
)

var postAbout = fmt.Sprintf("%d clients, each with a net/http client of its own, send `POST /count` in a loop with no retry of their own; once %d have been answered, SIGTERM. Each client stops at its first refused dial; then the process exits and its `shutdown finished` line gives `count`, how many POSTs its handler processed. Three runs (drains) per row, summed.", postClients, postBefore)

type postClient struct {
	Name string
	Args []string // the step's flags
	H2C  bool
	Key  bool
}

var postClientsTried = []postClient{
	{Name: "HTTP/1.1, `POST`", Args: []string{"-http2=false"}},
	{Name: "HTTP/1.1, `POST` with an `Idempotency-Key` header", Args: []string{"-http2=false"}, Key: true},
	{Name: "h2c, `POST`", H2C: true},
}

type postRun struct {
	Client            postClient
	Answered, Refused int
	Ambiguous         int // every other failure: reset, EOF, status, other
	Processed         int // the sum of the count= of the runs
	Err               error
}

// runPOSTRaces runs the scenario on step 13, if it built.
func runPOSTRaces(steps []*step) []postRun {
	var s13 *step
	for _, s := range steps {
		if s.BuildErr == "" && strings.HasPrefix(s.Name, "13-") {
			s13 = s
		}
	}
	if s13 == nil {
		return nil
	}
	var runs []postRun
	for _, c := range postClientsTried {
		run := postRun{Client: c}
		for range postDrains {
			if err := postDrain(s13, &run); err != nil {
				run.Err = err
				break
			}
		}
		fmt.Fprintf(os.Stderr, "%s / POST race (%s): answered %d, refused %d, ambiguous %d, processed %d\n",
			s13.Name, c.Name, run.Answered, run.Refused, run.Ambiguous, run.Processed)
		runs = append(runs, run)
	}
	return runs
}

// postDrain is one run: a process, the load, SIGTERM, the exit.
func postDrain(s *step, run *postRun) error {
	dir, err := os.MkdirTemp("", "lab-post-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := start(s.Bin, dir, run.Client.Args...)
	if err != nil {
		return err
	}
	defer p.Kill()
	var (
		mu       sync.Mutex
		counts   = noretry.Counts{}
		enough   = make(chan struct{})
		once     sync.Once
		finished sync.WaitGroup
	)
	for lane := range postClients {
		finished.Add(1)
		go func() {
			defer finished.Done()
			c := goclient.New(run.Client.H2C, nil)
			defer c.CloseIdleConnections()
			for i := 0; ; i++ {
				key := ""
				if run.Client.Key {
					key = fmt.Sprintf("lab-%d-%d", lane, i)
				}
				_, kind, _ := goclient.Post(c, p.Addr, "/count", key)
				mu.Lock()
				counts[kind]++
				if counts[noretry.OK] >= postBefore {
					once.Do(func() { close(enough) })
				}
				mu.Unlock()
				if kind == noretry.Refused {
					return
				}
			}
		}()
	}
	select {
	case <-enough:
	case <-p.Done():
		return errors.New("the step exited under the load")
	}
	if _, err := p.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	finished.Wait()
	if err := p.awaitExit(proc.EventTimeout); err != nil {
		return err
	}
	l, ok := p.Logged("shutdown finished")
	if !ok {
		return fmt.Errorf("no shutdown finished line: %s", p.lastLines())
	}
	n, err := strconv.Atoi(l.Attr("count"))
	if err != nil {
		return fmt.Errorf("shutdown finished count=%q: %v", l.Attr("count"), err)
	}
	run.Answered += counts[noretry.OK]
	run.Refused += counts[noretry.Refused]
	run.Ambiguous += counts.Failed() - counts[noretry.Refused]
	run.Processed += n
	return nil
}

// POSTTable is the scenario's table, for the doc; empty if it did not run.
func (r *report) POSTTable() string {
	if len(r.POSTRaces) == 0 {
		return ""
	}
	var b, notes strings.Builder
	b.WriteString("| client | answered | failed, provably never processed (dial refused) | failed, ambiguous (EOF, reset) | processed by the server |\n")
	b.WriteString("|---|--:|--:|--:|--:|\n")
	for _, run := range r.POSTRaces {
		if run.Err != nil {
			fmt.Fprintf(&notes, "- %s: %s\n", run.Client.Name, oneLine(run.Err.Error()))
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d |\n", run.Client.Name, run.Answered, run.Refused, run.Ambiguous, run.Processed)
	}
	if notes.Len() > 0 {
		b.WriteString("\n" + notes.String())
	}
	return b.String()
}

// POSTAbout describes the scenario, for the doc.
func (r *report) POSTAbout() string { return postAbout }

// writePOSTSVG draws, per client, its failures (refused and ambiguous)
// and how far the server's count ran from the answers, to dir/post-race.svg.
func (r *report) writePOSTSVG(dir string) error {
	if len(r.POSTRaces) == 0 {
		return nil
	}
	const (
		left, barMax, rowH, top = 330, 360, 26, 40
	)
	most := 1
	for _, run := range r.POSTRaces {
		most = max(most, run.Refused, run.Ambiguous)
	}
	height := top + len(r.POSTRaces)*3*rowH + 20
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", left+barMax+80, height)
	fmt.Fprintf(&b, `<text x="10" y="20" font-weight="bold">POST /count through SIGTERM, %d clients, %d drains: the failures</text>`+"\n", postClients, postDrains)
	y := top
	for _, run := range r.POSTRaces {
		name := strings.ReplaceAll(run.Client.Name, "`", "")
		fmt.Fprintf(&b, `<text x="10" y="%d" font-weight="bold">%s</text>`+"\n", y+13, esc(name))
		y += rowH
		for _, bar := range []struct {
			label, colour string
			n             int
		}{
			{"refused: provably never processed", outcomeColour[TurnedAway], run.Refused},
			{"ambiguous: EOF or reset", outcomeColour[Dropped], run.Ambiguous},
		} {
			w := float64(barMax) * float64(bar.n) / float64(most)
			fmt.Fprintf(&b, `<text x="30" y="%d">%s</text>`+"\n", y+13, bar.label)
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="16" fill="%s"/>`+"\n", left, y+2, w, bar.colour)
			fmt.Fprintf(&b, `<text x="%.1f" y="%d">%d</text>`+"\n", float64(left)+w+6, y+14, bar.n)
			y += rowH
		}
	}
	b.WriteString("</svg>\n")
	return os.WriteFile(filepath.Join(dir, "post-race.svg"), []byte(b.String()), 0o644)
}
