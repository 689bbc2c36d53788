package demotest

import (
	"io"
	"net/http"
	"strings"
	"time"
)

// PostJSON sends POST path with body as application/json, on a connection of
// its own, as `curl -d body` would. It returns the answer and its headers,
// such as Retry-After.
func (p *Process) PostJSON(path, body string) (Response, http.Header) {
	transport := &http.Transport{}
	defer transport.CloseIdleConnections()
	resp, err := (&http.Client{Transport: transport}).Post("http://"+p.Addr+path, "application/json", strings.NewReader(body))
	if err != nil {
		return Response{Err: err, At: time.Now()}, nil
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	return Response{Status: resp.StatusCode, Body: string(answer), Err: err, At: time.Now()}, resp.Header
}
