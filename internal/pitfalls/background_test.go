package pitfalls

import (
	"bufio"
	"context"
	"flag"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gracefulgo/walkthrough/internal/demotest"
)

// TestBackgroundGoroutinesNotDrained: Shutdown waits for connections, not
// for goroutines that handlers start. A handler that answers 202 and sends
// the email in a go statement has finished as far as Shutdown knows;
// Shutdown returns nil, main returns, the process exits 0, and the email
// that was being sent is lost, with nothing in the logs to say so.
//
// The child sends its email to a mail server that this test plays: it
// accepts the connection, reads the message and never answers, so the send
// is in progress for as long as the process lives. The program that
// waited for its goroutine (the fix) would never exit here, and the test
// would fail saying so.
func TestBackgroundGoroutinesNotDrained(t *testing.T) {
	mail := mustListen(t)
	defer mail.Close()
	p := startProgram(t, "fire-and-forget", "-mail", mail.Addr().String())
	r, _ := p.PostJSON("/emails", `{"to":["ann@example.com"]}`)
	if r.Err != nil || r.Status != http.StatusAccepted {
		t.Fatalf("POST /emails = %v, want 202", r)
	}
	conn := await(t, acceptAsync(mail), "the email's connection to the mail server")
	defer conn.Close()
	message := bufio.NewReader(conn)
	if line, err := message.ReadString('\n'); err != nil || !strings.HasPrefix(line, "DATA") {
		t.Fatalf("the mail server read %q, %v; want the email", line, err)
	}
	// The email is being sent: the mail server has it and has not answered.
	p.Signal(syscall.SIGTERM)
	exit, exited := p.AwaitExit(demotest.EventTimeout)
	if !exited {
		t.Fatalf("still running %s after SIGTERM: the program waits for its email, so the pitfall is not here", demotest.EventTimeout)
	}
	if _, ok := p.Logged("shutdown finished"); !ok || exit.Code != 0 {
		t.Errorf("%s, shutdown finished logged: %v; want a clean-looking exit 0", exit, ok)
	}
	if _, ok := p.Logged("email sent"); ok {
		t.Error(`"email sent" was logged, but the mail server never answered`)
	}
	// The process is gone: the mail server sees the send end unfinished.
	conn.SetReadDeadline(time.Now().Add(demotest.EventTimeout))
	if rest, err := message.ReadString('\n'); err == nil {
		t.Errorf("the mail server read %q after the exit, want the connection to end", rest)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Errorf("the email's connection is still open %s after the exit", demotest.EventTimeout)
	}
}

// acceptAsync accepts one connection on ln in the background.
func acceptAsync(ln net.Listener) <-chan net.Conn {
	conns := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			conns <- c
		}
	}()
	return conns
}

// mailServer is where fireAndForget sends its emails; declared here, like
// shutdownTimeout, so that it exists before TestMain parses the flags.
var mailServer = flag.String("mail", "", "the mail server fireAndForget sends to")

func init() { programs["fire-and-forget"] = fireAndForget }

// fireAndForget answers POST /emails with 202 and sends the email from a
// bare go statement. On SIGTERM it shuts down as step 05 does, with a
// deadline, and exits 0 when Shutdown returns nil.
func fireAndForget(addr string) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /emails", func(w http.ResponseWriter, r *http.Request) {
		go sendEmail(*mailServer) // untracked: Shutdown cannot know of it
		w.WriteHeader(http.StatusAccepted)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 2 * time.Second}
	ln := listen(addr)
	go srv.Serve(ln)
	<-ctx.Done()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		srv.Close()
		slog.Error("shutdown forced", "err", err)
		os.Exit(1)
	}
	slog.Info("shutdown finished")
}

// sendEmail hands an email to the mail server and waits for its answer.
func sendEmail(server string) {
	conn, err := net.Dial("tcp", server)
	if err != nil {
		slog.Error("email failed", "err", err)
		return
	}
	defer conn.Close()
	slog.Info("email sending")
	if _, err := conn.Write([]byte("DATA Hello, Ann.\n")); err != nil {
		slog.Error("email failed", "err", err)
		return
	}
	reply, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		slog.Error("email failed", "err", err)
		return
	}
	slog.Info("email sent", "reply", strings.TrimSpace(reply))
}
