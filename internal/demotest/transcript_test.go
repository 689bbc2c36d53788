package demotest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/gracefulgo/walkthrough/internal/proc"
)

func TestTranscriptNormalizes(t *testing.T) {
	// The transcript takes the pid and port to replace from the program.
	// Any child will do: this test binary exits at once on the -addr flag
	// it does not know.
	child, err := proc.Start("127.0.0.1:43210", exec.Command(os.Args[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer child.Kill()
	pid := strconv.Itoa(child.Pid())
	s := &Session{
		t: t,
		P: &Process{Process: child, t: t},
		normalize: func(line string) string {
			return strings.ReplaceAll(line, "/tmp/TestX123", "$TMP")
		},
	}
	s.record("", "$ 04-notifycontext -addr 127.0.0.1:43210 -data /tmp/TestX123")
	s.record("server", `time=2026-11-22T15:56:00.656Z level=INFO msg=listening addr=127.0.0.1:43210 pid=`+pid)
	s.record("you", "kill -TERM "+pid)
	s.record("server", `time=2026-11-22T15:56:03.857Z level=INFO msg="shutdown finished" took=1.002s port=432101 pid2=`+pid+`0`)
	want := `$ 04-notifycontext -addr 127.0.0.1:8080 -data $TMP
server | level=INFO msg=listening addr=127.0.0.1:8080 pid=4242
   you | kill -TERM 4242
server | level=INFO msg="shutdown finished" took=<duration> port=432101 pid2=` + pid + `0
`
	if got := s.Transcript(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// What the client saw must not depend on how the connection ended: a
// killed server may leave a FIN (EOF) or a reset.
func TestDescribeResponse(t *testing.T) {
	reset := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	closed := "no response: the server closed the connection"
	for _, tt := range []struct {
		r    Response
		want string
	}{
		{Response{Status: 200, Body: "slow request finished after 1s\n"}, "200 OK: slow request finished after 1s"},
		{Response{Status: 400, Body: "bad d\n"}, "400 Bad Request: bad d"},
		{Response{Err: fmt.Errorf("Get %q: %w", "http://x/slow", io.EOF)}, closed},
		{Response{Err: fmt.Errorf("Get: %w", reset)}, closed},
		{Response{Err: errors.New("no answer within 5s")}, "error: no answer within 5s"},
	} {
		if got := describeResponse(tt.r); got != tt.want {
			t.Errorf("describeResponse(%v) = %q, want %q", tt.r, got, tt.want)
		}
	}
}
