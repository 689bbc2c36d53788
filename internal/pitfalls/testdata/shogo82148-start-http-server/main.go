// The program of shogo82148's post "ぼくのかんがえたさいきょうのGo HTTPサーバー起動方法"
// (2023-09-21), https://shogo82148.github.io/blog/2023/09/21/2023-09-21-start-http-server,
// transcribed exactly as the post prints it, comments and all, so that
// TestSnippetAsPrinted can compile it and show that it does not build. It
// is a quotation kept as evidence, not this repository's code: step 05 is.

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

func main() {
	// シグナルを待ち受ける
	chSignal := make(chan os.Signal, 1)
	signal.Notify(chSignal, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(chSignal)

	// 起動したいサーバーを準備
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "from pid %d.\n", os.Getpid())
	})
	s := &http.Server{
		Addr:    ":8080",
		Handler: mux,
	}
	http.Handle("/", h)

	// 別 goroutine で起動する
	chServe := make(chan error, 1)
	go func() {
		defer close(chServe)
		chServe <- s.ListenAndServe()
	}()

	select {
	case err := <-chServe:
		// ListenAndServe はたまに失敗するので、失敗したら死んでほしい
		// 他のプロセスが使用しているポートを開いたときとか
		log.Fatal(err)
	case <-chSignal:
	}

	signal.Stop(chSignal)

	// Graceful Shutdown 開始
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		log.Fatal(err)
	}

	// HTTPサーバーが完全に終了するのを待つ
	// (OSがリソース閉じてくれるはずだけど、お行儀よく）
	s.Close()
	<-chServe // http.ErrServerClosed が返ってくるのがわかっているので、特に何もしない。
}
