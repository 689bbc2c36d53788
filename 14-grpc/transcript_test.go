package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/gracefulgo/walkthrough/14-grpc/slowpb"
	"github.com/gracefulgo/walkthrough/internal/demotest"
)

// TestTranscripts runs the sessions this step's README shows and checks
// that a real run still goes that way, line for line. To rewrite
// testdata/*.transcript after a change: DEMOTEST_UPDATE=1 go test -run
// 'TestTranscripts' ./14-grpc, then make docs. make demo-14 narrates the
// first live.
func TestTranscripts(t *testing.T) {
	t.Parallel()
	demotest.Transcripts{
		Scripts:   []demotest.Script{{Name: "drain", Title: "a Ticks stream and a Sleep call, then SIGTERM", Run: drainSession}},
		Normalize: normalizeTicks,
	}.Run(t)
}

// TestTranscriptsGrpcurl records the session with the real grpcurl, the
// version tools/go.mod pins. grpcurl brings grpc-go's xDS and Google Cloud
// credentials with it: its first build downloads about 640 MB of modules,
// more than everything else make test needs. So on a machine where those
// are not in the module cache yet, the test skips and says how to fetch
// them; under CI=true it fetches them.
func TestTranscriptsGrpcurl(t *testing.T) {
	t.Parallel()
	_ = os.Getenv("TOOLS_PRESENT") // so that make test does not replay a skip once grpcurl is fetched (tools/present.sh)
	grpcurl, err := demotest.GoTool("grpcurl", os.Getenv("CI") != "true")
	if err != nil {
		if errors.Is(err, demotest.ErrNotDownloaded) {
			t.Skip("grpcurl's modules are not downloaded, so its transcript is not checked: go tool -modfile=tools/go.mod grpcurl -version fetches and builds it, then make test-14")
		}
		t.Fatal(err)
	}
	demotest.Transcripts{
		Scripts:   []demotest.Script{{Name: "grpcurl", Title: "what grpcurl shows during a drain", Run: grpcurlSession(grpcurl)}},
		Normalize: normalizeTicks,
	}.Run(t)
}

// normalizeTicks: how many ticks a stream got before the end depends on
// timing.
func normalizeTicks(line string) string { return ticksSent.ReplaceAllString(line, "sent=<n>") }

var ticksSent = regexp.MustCompile(`\bsent=\d+`)

// drainSession: one grpc-go client holds a Ticks stream open, another
// waits on a Sleep; SIGTERM ends the stream on purpose and lets the Sleep
// finish.
func drainSession(s *demotest.Session) {
	s.Start()
	conn, err := grpc.NewClient(s.P.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		s.Note(err.Error())
		return
	}
	defer conn.Close()
	client := slowpb.NewSlowClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), demotest.EventTimeout)
	defer cancel()

	s.Note("One client reads Ticks every 100ms, a stream that never ends by itself.")
	s.As("ticks", "Slow/Ticks 100ms")
	ticks, err := client.Ticks(ctx, durationpb.New(100*time.Millisecond))
	if err != nil {
		s.As("ticks", describe(err))
		return
	}
	s.Expect("ticks started")
	for range 2 {
		if _, err := ticks.Recv(); err != nil {
			s.As("ticks", describe(err))
			return
		}
	}
	s.As("ticks", "2 ticks received")
	s.Note("Another calls Sleep for 1s.")
	s.As("sleep", "Slow/Sleep 1s")
	slept := make(chan string, 1)
	go func() {
		answer, err := client.Sleep(ctx, durationpb.New(time.Second))
		if err != nil {
			slept <- describe(err)
			return
		}
		slept <- fmt.Sprintf("OK %q", answer.GetValue())
	}()
	s.Expect("sleep started")
	s.Note("While both are open, a deploy sends SIGTERM.")
	s.Signal(syscall.SIGTERM)
	s.Expect("shutdown started")
	s.Expect("ticks ended")
	for {
		if _, err := ticks.Recv(); err != nil {
			s.As("ticks", describe(err))
			break
		}
	}
	s.Expect("sleep finished")
	s.As("sleep", <-slept)
	if e := s.WaitExit(); e.Code == 0 {
		s.Note("The stream was told to go elsewhere, the call finished, and the server exited 0.")
	}
}

// describe is a status as a client sees it: its code and message.
func describe(err error) string {
	if errors.Is(err, io.EOF) {
		return "the stream ended with OK"
	}
	st := status.Convert(err)
	return fmt.Sprintf("%s: %s", st.Code(), st.Message())
}

// grpcurlSession runs the real grpcurl at path, as a reader would in a
// second and a third terminal: it lists the services, watches health,
// calls Sleep, and SIGTERM comes.
func grpcurlSession(grpcurl string) func(s *demotest.Session) {
	return func(s *demotest.Session) {
		s.Start()
		addr := s.P.Addr
		s.Note("Reflection tells grpcurl what the server serves; no .proto needed.")
		list := startTool(s, "list", grpcurl, "-plaintext", addr, "list")
		list.rest(s)
		s.Note("One terminal watches the server's health, as a load balancer would.")
		watch := startTool(s, "watch", grpcurl, "-plaintext", "-d", `{}`, addr, "grpc.health.v1.Health/Watch")
		watch.upTo(s, "}")
		s.Note("Another calls Sleep for 1s.")
		sleep := startTool(s, "sleep", grpcurl, "-plaintext", "-d", `"1s"`, addr, "walkthrough.v1.Slow/Sleep")
		s.Expect("sleep started")
		s.Signal(syscall.SIGTERM)
		s.Expect("shutdown started")
		watch.rest(s)
		s.Expect("sleep finished")
		sleep.rest(s)
		s.WaitExit()
	}
}

// tool is a client program running in the background, its output read a
// line at a time, so that a session records each line where it waits for it.
type tool struct {
	who   string
	cmd   *exec.Cmd
	lines chan string // closed at the end of the output
}

func startTool(s *demotest.Session, who, path string, args ...string) *tool {
	shown := append([]string{"grpcurl"}, args...)
	for i, a := range shown {
		if strings.ContainsAny(a, `"{} `) {
			shown[i] = "'" + a + "'"
		}
	}
	s.As(who, "$ "+strings.Join(shown, " "))
	cmd := exec.Command(path, args...)
	out, w := io.Pipe()
	cmd.Stdout, cmd.Stderr = w, w
	tl := &tool{who: who, cmd: cmd, lines: make(chan string, 64)}
	if err := cmd.Start(); err != nil {
		panic(err)
	}
	go func() { w.CloseWithError(cmd.Wait()) }()
	go func() {
		defer close(tl.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			tl.lines <- sc.Text()
		}
	}()
	return tl
}

// upTo records the tool's lines up to and including the first that is
// exactly last, or to the end of its output.
func (tl *tool) upTo(s *demotest.Session, last string) {
	timeout := time.After(demotest.EventTimeout)
	for {
		select {
		case line, ok := <-tl.lines:
			if !ok {
				return
			}
			s.As(tl.who, line)
			if line == last {
				return
			}
		case <-timeout:
			s.As(tl.who, fmt.Sprintf("(nothing more within %s)", demotest.EventTimeout))
			return
		}
	}
}

// rest records the tool's remaining lines and how it exited.
func (tl *tool) rest(s *demotest.Session) {
	tl.upTo(s, "\x00") // no line is NUL: read to the end
	if st := tl.cmd.ProcessState; st != nil {
		s.As(tl.who, fmt.Sprintf("exit status %d", st.ExitCode()))
	} else {
		s.As(tl.who, "still running")
	}
}
