// TestSnippetAsPrinted compiles this file. It is not shogo82148's program
// ("ぼくのかんがえたさいきょうのGo HTTPサーバー起動方法", 2023-09-21,
// https://shogo82148.github.io/blog/2023/09/21/2023-09-21-start-http-server):
// it keeps only the two facts the test checks. The program the post prints
// imports exactly the packages below, and two of its lines, quoted in main,
// use fmt, which is not among them, and h, which the program never declares.
// Step 05 is this repository's version of it.
package main

import (
	"context"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// The post's program uses every other package it imports.
var (
	_ = context.Background
	_ = log.Fatal
	_ = signal.Notify
	_ = syscall.SIGTERM
	_ = time.Second
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "from pid %d.\n", os.Getpid()) // quoted from the post
	})
	http.Handle("/", h) // quoted from the post
}
