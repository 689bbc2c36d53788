module github.com/gracefulgo/walkthrough/11-streaming/browser

go 1.26.0

require (
	github.com/chromedp/chromedp v0.23.0
	github.com/gracefulgo/walkthrough v0.0.0
)

require (
	github.com/chromedp/cdproto v0.159.0 // indirect
	github.com/go-json-experiment/json v0.0.0-20260213210345-44df1a37e875 // indirect
)

// The repository itself: step 11's program and internal/demotest, from the
// working tree.
replace github.com/gracefulgo/walkthrough => ../..
