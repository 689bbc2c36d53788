package demotest

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// CheckRouter is a demo test for the steps that put a framework's router in
// front of step 05's server (07-gin, 08-echo). It checks what the router
// must keep from ServeMux: HEAD is answered like GET, another method on a
// known path gets 405 with an Allow header naming GET and HEAD, a bad d a
// 400 that says "bad d=", and an unknown path a 404 with the body
// notFound (the framework's own), /slow/ included (no redirect). It checks the
// request log those steps add: every request, the framework's own error
// answers included, is one slog line with msg=request and its method, path
// and status. And it checks that the program writes nothing but slog lines:
// no banner, no debug route table.
func CheckRouter(t *testing.T, notFound string) {
	t.Helper()
	p := Start(t)
	requests := []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/", http.StatusOK},
		{http.MethodHead, "/", http.StatusOK},
		{http.MethodHead, "/slow?d=0s", http.StatusOK},
		{http.MethodPost, "/", http.StatusMethodNotAllowed},
		{http.MethodGet, "/slow?d=banana", http.StatusBadRequest},
		{http.MethodGet, "/no-such-page", http.StatusNotFound},
		{http.MethodGet, "/slow/", http.StatusNotFound},
	}
	var want []string
	for _, r := range requests {
		got := p.Request(r.method, r.path)
		if got.Err != nil || got.Status != r.status {
			t.Errorf("%s %s = %v, want %d", r.method, r.path, got, r.status)
			continue
		}
		switch body := strings.TrimSpace(got.Body); r.status {
		case http.StatusMethodNotAllowed:
			if allow := strings.Split(got.Header.Get("Allow"), ", "); !slices.Contains(allow, "GET") || !slices.Contains(allow, "HEAD") {
				t.Errorf("%s %s: Allow: %q, want GET and HEAD in it", r.method, r.path, got.Header.Get("Allow"))
			}
		case http.StatusBadRequest:
			if !strings.Contains(body, "bad d=") {
				t.Errorf("%s %s = %v, want a reason that says bad d=", r.method, r.path, got)
			}
		case http.StatusNotFound:
			if body != notFound {
				t.Errorf("%s %s = %v, want the body %q", r.method, r.path, got, notFound)
			}
		}
		path, _, _ := strings.Cut(r.path, "?")
		want = append(want, r.method+" "+path+" "+strconv.Itoa(r.status))
	}
	// The whole output is in once the program has exited.
	p.Signal(syscall.SIGTERM)
	if exit := p.WaitExit(); exit.Code != 0 {
		t.Errorf("%s after SIGTERM, want exit status 0", exit)
	}
	var logged []string
	for _, l := range p.Lines() {
		if l.Attrs == nil {
			t.Errorf("the program wrote a line that is not slog text: %q", l.Raw)
			continue
		}
		if l.Msg() == "request" {
			logged = append(logged, l.Attr("method")+" "+l.Attr("path")+" "+l.Attr("status"))
		}
	}
	if !slices.Equal(logged, want) {
		t.Errorf("msg=request lines, as method path status:\n%s\nwant:\n%s",
			strings.Join(logged, "\n"), strings.Join(want, "\n"))
	}
}

// CheckClientGone is a demo test for the contract's `/slow`: when the
// client hangs up, the handler stops waiting at once and logs "slow request
// cancelled", long before its delay is up; and the shutdown that follows is
// not held by it. A handler that waits on the wrong context (a framework's
// own context type, say) never notices the client leave. The request line
// then says status=0: the client got no answer, though the framework
// reports 200 for a handler that wrote nothing. (A request the deadline cuts
// takes the same path, but its line races the program's exit.)
func CheckClientGone(t *testing.T) {
	t.Helper()
	p := Start(t)
	c, err := p.Dial()
	if err != nil {
		t.Fatal(err)
	}
	answered := make(chan Response, 1)
	go func() { answered <- c.Do("/slow?d=1m") }()
	p.WaitLog("slow request started")
	hungUp := time.Now()
	c.Close()
	<-answered
	line := p.WaitLog("slow request cancelled")
	if line.Attr("cause") == "" {
		t.Errorf("slow request cancelled without a cause: %q", line.Raw)
	}
	if req := p.WaitLog("request"); req.Attr("path") != "/slow" || req.Attr("status") != "0" {
		t.Errorf("logged %q for the request nobody answered, want path=/slow status=0", req.Raw)
	}
	t.Logf("cancelled %s after the client hung up", line.At.Sub(hungUp).Round(time.Millisecond))
	p.Signal(syscall.SIGTERM)
	if exit := p.WaitExit(); exit.Code != 0 {
		t.Errorf("%s after SIGTERM, want exit status 0", exit)
	}
}
