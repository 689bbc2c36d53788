// Package goclient is net/http's own client, set to speak one protocol,
// for the measurements where what the transport sends again by itself is
// the point (step 13's tests, the lab's POST race). The caller never
// retries; the outcome of each request has the kinds of
// [noretry.Kind], so "refused" and "EOF" mean what they mean everywhere.
//
// For a load that must see every failure as it happened, use
// internal/noretry instead: net/http's transport hides some of them.
package goclient

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"

	"github.com/gracefulgo/walkthrough/internal/noretry"
)

// New returns net/http's client speaking HTTP/1.1 only, or HTTP/2
// without TLS only (h2c with prior knowledge). dial, when set, makes its
// connections.
func New(h2c bool, dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Client {
	protocols := new(http.Protocols)
	if h2c {
		protocols.SetUnencryptedHTTP2(true)
	} else {
		protocols.SetHTTP1(true)
	}
	tr := &http.Transport{Protocols: protocols, DialContext: dial}
	return &http.Client{Transport: tr, Timeout: noretry.Timeout}
}

// Post sends POST path to addr, with an Idempotency-Key header when key
// is set, and reads the whole answer. Its body is a strings.Reader, so
// http.NewRequest sets GetBody and the transport may send the request
// again when it judges it may.
func Post(c *http.Client, addr, path, key string) (body string, kind noretry.Kind, err error) {
	r := PostOn(c, addr, path, key)
	return r.Body, r.Kind, r.Err
}

// A Result is what became of one POST.
type Result struct {
	Body string
	Kind noretry.Kind
	Err  error
	// Fresh: the last connection the request went out on had carried no
	// request before. net/http sends a request again only after a failure
	// on a connection it had used (persistConn.shouldRetryRequest: "This
	// was a fresh connection"), so a failure on a fresh one is final,
	// Idempotency-Key or not.
	Fresh bool
}

// PostOn is Post, and also says whether the request's last connection was
// fresh.
func PostOn(c *http.Client, addr, path, key string) Result {
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+path, strings.NewReader("one more"))
	if err != nil {
		return Result{Kind: noretry.Other, Err: err}
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	var r Result
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) { r.Fresh = !info.Reused },
	}))
	resp, err := c.Do(req)
	if err != nil {
		r.Kind, r.Err = noretry.KindOf(err), err
		return r
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	r.Body = string(b)
	switch {
	case err != nil:
		r.Kind, r.Err = noretry.KindOf(err), err
	case resp.StatusCode != http.StatusOK:
		r.Kind = noretry.Status
	default:
		r.Kind = noretry.OK
	}
	return r
}
