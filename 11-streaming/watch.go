package main

import (
	"bytes"
	_ "embed"
	"net/http"
	"time"
)

// watchPage is the page a workshop room watches while someone presses
// Ctrl+C: it follows /events with EventSource, which reconnects by itself.
//
//go:embed watch.html
var watchPage []byte

// watch serves /watch.
func watch(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	http.ServeContent(w, r, "watch.html", time.Time{}, bytes.NewReader(watchPage))
}
