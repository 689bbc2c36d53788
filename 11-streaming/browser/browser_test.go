// Package browser is step 11's browser test, in a module of its own: chromedp
// and its Chrome DevTools Protocol types are the largest module of the
// repository to compile, and only this test needs them. The test builds step
// 11 with go build and drives the real program from a real headless
// Chromium; make test runs it (go test ./... in this folder).
package browser

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gracefulgo/walkthrough/internal/demotest"
)

func TestMain(m *testing.M) {
	demotest.MainBuilt(m, "../..", "./11-streaming")
}

// browserTimeout bounds each wait for the page: a browser on a busy
// machine takes longer than a program to start and to draw.
const browserTimeout = 15 * time.Second

// TestWatchPageInABrowser: /watch in a real headless Chromium, as a room
// sees it on the projector. The page shows the ticks of the first server;
// at SIGTERM it says the server is going away; when a new server starts on
// the same port, EventSource reconnects by itself and the page shows the
// new pid, counting on from the last tick it saw.
func TestWatchPageInABrowser(t *testing.T) {
	t.Parallel()
	ctx := openBrowser(t)
	addr := demotest.FreeAddr(t)
	first := demotest.StartAt(t, addr, "-tick", "100ms")
	first.WaitListening()
	// The first action starts the browser, which then lives as long as ctx:
	// it must not get a timeout of its own, so the wait for it is bounded
	// here instead.
	navigated := make(chan error, 1)
	go func() { navigated <- chromedp.Do(ctx, chromedp.Navigate("http://"+addr+"/watch")) }()
	select {
	case err := <-navigated:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(browserTimeout):
		t.Fatalf("Chromium did not load /watch within %s", browserTimeout)
	}
	waitForPage(t, ctx, "ticks from the first server",
		fmt.Sprintf(`text("pid") === "%d" && Number(text("tick")) >= 2 && text("state") === "connected to pid %[1]d"`, first.Pid()))

	first.Signal(syscall.SIGTERM)
	waitForPage(t, ctx, "the going-away state", `text("state") === "server going away, reconnecting…"`)
	if exit := first.WaitExit(); exit.Code != 0 {
		t.Errorf("the first server: %s, want exit status 0", exit)
	}

	second := demotest.StartAt(t, addr, "-tick", "100ms")
	second.WaitListening()
	waitForPage(t, ctx, "the page reconnected to the second server",
		fmt.Sprintf(`text("pid") === "%d" && text("state") === "connected to pid %[1]d"`, second.Pid()))
	// EventSource sent the last id it saw: the second server counts on.
	if l := second.WaitLog("event stream opened"); l.Attr("from") == "1" {
		t.Errorf("the reconnected stream started from tick 1: %s", l.Raw)
	}
}

// openBrowser starts a headless Chromium with a profile of its own, for the
// test's lifetime. Without one it skips, but under CI=true it fails: CI
// installs Debian's chromium and must never skip this test.
func openBrowser(t *testing.T) context.Context {
	t.Helper()
	_ = os.Getenv("TOOLS_PRESENT") // so that make test does not replay a skip once chromium is installed (tools/present.sh)
	path := os.Getenv("CHROMIUM")
	if path == "" {
		path, _ = exec.LookPath("chromium")
	}
	if path == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("no chromium on PATH, and CI must run the browser test: install Debian's chromium (.ci/run does)")
		}
		t.Skip("no chromium on PATH: install it (apt-get install chromium) or set CHROMIUM to a Chrome binary to run the browser test")
	}
	// With no UserDataDir, the allocator gives the browser a fresh profile
	// directory of its own, and removes it once the browser and its child
	// processes are gone (allocate.go), which t.TempDir would race with.
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.DisableGPU,
		// Nothing but the page under test: no updates, sync or QUIC probes
		// that would load a shared machine or reach for the network.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses to run as root with its sandbox
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	return ctx
}

// waitForPage waits until the JavaScript condition holds on the page; in
// it, text(id) is the text of the element with that id.
func waitForPage(t *testing.T, ctx context.Context, what, condition string) {
	t.Helper()
	expr := `(() => { const text = (id) => document.getElementById(id).textContent; return ` + condition + `; })()`
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr,
		chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(browserTimeout)))
	if err != nil {
		shows, evalErr := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		if evalErr != nil {
			shows = evalErr.Error()
		}
		t.Fatalf("waiting for %s: %v; the page shows:\n%s", what, err, shows)
	}
}
