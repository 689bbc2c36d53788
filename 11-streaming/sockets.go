package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"

	"github.com/coder/websocket"
)

// netConnKey is the context key under which the server's ConnContext keeps
// each connection, so that the echo can cut the one its WebSocket hijacked.
type netConnKey struct{}

// sockets keeps the open WebSockets. net/http does not: Accept hijacks the
// connection, and from then on Shutdown neither waits for it nor closes it.
type sockets struct {
	goingAway context.Context // cancelled when the shutdown begins

	mu       sync.Mutex
	open     map[*socket]struct{}
	closing  bool           // wait has begun: no new handler may be counted
	gaveUp   int            // sockets whose Close timed out, and so closed them unanswered
	handlers sync.WaitGroup // every echo handler still running
	cutting  chan struct{}  // closed by cut
}

// socket is one WebSocket, and the token that keeps its close frame from
// overtaking an echo.
type socket struct {
	conn    *websocket.Conn
	netConn net.Conn      // the hijacked connection, to cut
	turn    chan struct{} // holds a token while a message is echoed, and from the close on
	closed  chan struct{} // closed when goAway has finished with the socket
	// clientFirst is set by goAway, before closed, when the client's close
	// frame came before the shutdown's: echo then logs it, with the
	// client's code, which only its read has.
	clientFirst bool
}

func newSockets(goingAway context.Context) *sockets {
	return &sockets{goingAway: goingAway, open: map[*socket]struct{}{}, cutting: make(chan struct{})}
}

// echo serves /ws: each message comes back as it was, until the client
// closes, the connection is lost, or the shutdown closes it with 1001.
func (s *sockets) echo(w http.ResponseWriter, r *http.Request) {
	// Counted before Accept hijacks the connection: until then Shutdown
	// waits for this handler, so wait, which runs after Shutdown, sees it.
	if !s.add() {
		http.Error(w, "server going away", http.StatusServiceUnavailable)
		return
	}
	defer s.handlers.Done()
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept has answered why, for instance 426 to a plain GET
	}
	defer conn.CloseNow() // frees the connection if nothing closed it
	netConn, _ := r.Context().Value(netConnKey{}).(net.Conn)
	sock := &socket{conn: conn, netConn: netConn, turn: make(chan struct{}, 1), closed: make(chan struct{})}
	s.track(sock, true)
	defer s.track(sock, false)
	slog.Info("websocket opened")

	// At shutdown, goAway closes the socket from a goroutine of its own,
	// while this one goes on reading: it is this read that receives the
	// client's answer to the close.
	stop := context.AfterFunc(s.goingAway, func() { s.goAway(sock) })
	err = sock.echoAll(r.Context())
	if !stop() {
		<-sock.closed // goAway ran: its Close has finished, and said how
		if !sock.clientFirst {
			return
		}
	}
	if code := websocket.CloseStatus(err); code != -1 {
		slog.Info("websocket closed", "status", code, "by", "client")
	} else {
		slog.Info("websocket lost", "err", err)
	}
}

// echoAll echoes every message until a read or a write fails, and returns
// that error: a [websocket.CloseError] once the close handshake is done.
func (sock *socket) echoAll(ctx context.Context) error {
	for {
		typ, msg, err := sock.conn.Reader(ctx)
		if err != nil {
			return err
		}
		select {
		case sock.turn <- struct{}{}:
		default:
			// goAway holds the token: the close frame is out, and this
			// message crossed it. RFC 6455 lets a closing side drop it.
			if _, err := io.Copy(io.Discard, msg); err != nil {
				return err
			}
			continue
		}
		slog.Info("echo started")
		b, err := io.ReadAll(msg)
		if err == nil {
			err = sock.conn.Write(ctx, typ, b)
		}
		<-sock.turn
		if err != nil {
			return err
		}
		slog.Info("echo sent", "bytes", len(b))
	}
}

// goAway closes the socket with 1001, going away, once no echo is under
// way: a close frame sent in the middle would overtake the echo, and the
// client would never get it.
func (s *sockets) goAway(sock *socket) {
	defer close(sock.closed)
	slog.Info("websocket closing", "status", websocket.StatusGoingAway)
	select {
	case sock.turn <- struct{}{}: // kept: no echo starts after this
	case <-s.cutting:
		return
	}
	// Close writes the close frame and waits for the client's, each with
	// a timeout of 5s of its own: cut keeps a shorter budget, and a
	// longer one sees Close give up first (counted in gaveUp).
	err := sock.conn.Close(websocket.StatusGoingAway, "server going away")
	select {
	case <-s.cutting:
		return // cut at the deadline: main is logging that, and exiting
	default:
	}
	switch code := websocket.CloseStatus(err); {
	case err == nil:
		slog.Info("websocket closed", "status", websocket.StatusGoingAway, "by", "server")
	case code != -1:
		slog.Info("websocket closed", "status", code, "by", "server") // the client answered with a code of its own
	case errors.Is(err, net.ErrClosed):
		// Close found the socket closing already, and sent nothing: only
		// the library's answer to a close frame from the client does that
		// (read.go), so the client closed first, as the shutdown began.
		// echo's read got its frame, and logs it.
		sock.clientFirst = true
	default:
		slog.Info("websocket close handshake failed", "err", err)
		if errors.Is(err, context.DeadlineExceeded) {
			// Close's own 5s ran out before the shutdown's budget did: the
			// library cut the client, as cut would have. wait reports it,
			// so that the exit status does not say the shutdown was clean.
			s.mu.Lock()
			s.gaveUp++
			s.mu.Unlock()
		}
	}
}

// add counts a new handler, unless wait has begun.
func (s *sockets) add() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.handlers.Add(1)
	return true
}

func (s *sockets) track(sock *socket, open bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if open {
		s.open[sock] = struct{}{}
	} else {
		delete(s.open, sock)
	}
}

// wait waits until every WebSocket is closed, or ctx ends. It fails if a
// socket is still open then, or if one had to be closed unanswered.
func (s *sockets) wait(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.handlers.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.gaveUp > 0 {
			return fmt.Errorf("websockets cut (%d): no answer to the close frame within coder/websocket's 5s", s.gaveUp)
		}
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		defer s.mu.Unlock()
		return fmt.Errorf("websockets still open (%d): %w", len(s.open), ctx.Err())
	}
}

// cut closes the connection of every WebSocket still open, handshake or
// not: what Server.Close does for the connections it still has. Call it once.
func (s *sockets) cut() {
	close(s.cutting)
	s.mu.Lock()
	defer s.mu.Unlock()
	for sock := range s.open {
		if sock.netConn != nil {
			sock.netConn.Close()
		}
	}
}
