package main

import (
	_ "embed"
	"net/http"
)

// watchPage is the page a workshop room watches while someone presses
// Ctrl+C: it follows /events with EventSource, which reconnects by itself.
//
//go:embed watch.html
var watchPage []byte

// watch serves /watch.
func watch(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(watchPage)
}
