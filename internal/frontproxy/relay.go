package frontproxy

import (
	"io"
	"net"
	"sync"
	"time"

	"github.com/gracefulgo/walkthrough/internal/proc"
)

// A Relay sits between a proxy and one program: the proxy's upstream
// list names the relay's address, and each connection the proxy opens to
// it is relayed to the program. When the program closes a connection, the
// relay holds that close from the proxy until the proxy writes on the
// connection again: the proxy believes its idle connection open, sends its
// next request on it, and only then learns that it was closed. That is the
// keep-alive race made to happen every time, as step 13's finHolder makes
// it between a client and the program. The request the proxy wrote is
// never seen by the program, which had closed its side.
type Relay struct {
	Addr   string // where the proxy connects
	target string
	ln     net.Listener
	goAway bool // HTTP/2: hold the program's GOAWAY, not only its close

	mu    sync.Mutex
	conns []*RelayConn
	grew  chan struct{}
	hold  <-chan struct{} // see HoldDials
}

// A RelayConn is one connection the proxy opened through the relay.
type RelayConn struct {
	// ClosedByProgram is closed when the program closed the connection (and
	// the relay began to hold that close); ClosedByProxy when the proxy did.
	ClosedByProgram, ClosedByProxy chan struct{}
	programOnce, proxyOnce         sync.Once
	// GoAwayHeld, on a relay made by NewGoAwayRelay, is closed when the
	// program sent a GOAWAY (and the relay began to hold it).
	GoAwayHeld chan struct{}
}

// NewRelay listens on a loopback port the kernel picks and relays to
// target. The relay runs in the caller's process, so it can listen on :0
// and read its address back, and no other process can take the port
// between a check and the bind (proc.FreeAddr is for a child that must be
// told its address in advance: that gap once failed a run here with
// "address already in use").
func NewRelay(target string) (*Relay, error) { return newRelay(target, false) }

// NewGoAwayRelay is NewRelay for a proxy that speaks HTTP/2 to the
// program (HAProxy's proto h2): there the program's Shutdown first sends
// a GOAWAY naming the last stream it will process, and only later closes.
// The relay holds that GOAWAY, and everything after it, from the proxy
// until the proxy opens a new stream (a HEADERS frame) on the connection,
// which it passes on: the proxy sends a request on a connection it
// believes open, the program, which has begun to go away, drops that
// stream unread (its id is above the GOAWAY's last stream), and only then
// does the proxy read the GOAWAY that refused it. That is the race
// HTTP/2 leaves: a stream already on its way when the GOAWAY was sent.
func NewGoAwayRelay(target string) (*Relay, error) { return newRelay(target, true) }

func newRelay(target string, goAway bool) (*Relay, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &Relay{Addr: ln.Addr().String(), target: target, ln: ln, goAway: goAway, grew: make(chan struct{})}
	go r.accept()
	return r, nil
}

// HoldDials makes the relay accept each later connection of the proxy at
// once, as the kernel does for a listening socket (the handshake completes
// before the program calls accept), and dial the program for it only once
// release is closed: the connection waits in the relay as in the
// listener's accept queue. If the program's listener has closed by then,
// the dial is refused and the relay closes the proxy's connection, with
// the request the proxy wrote in it unread: what the kernel does to the
// connections still in the queue of a listener that closes.
func (r *Relay) HoldDials(release <-chan struct{}) {
	r.mu.Lock()
	r.hold = release
	r.mu.Unlock()
}

// Close stops accepting; connections relayed so far end with their ends.
func (r *Relay) Close() { r.ln.Close() }

// Conns returns the connections relayed so far, in the order they came.
func (r *Relay) Conns() []*RelayConn {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*RelayConn(nil), r.conns...)
}

// AwaitConn waits for the nth connection (0 the first) and returns it.
func (r *Relay) AwaitConn(n int) (*RelayConn, bool) {
	deadline := time.NewTimer(proc.EventTimeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		if n < len(r.conns) {
			c := r.conns[n]
			r.mu.Unlock()
			return c, true
		}
		grew := r.grew
		r.mu.Unlock()
		select {
		case <-grew:
		case <-deadline.C:
			return nil, false
		}
	}
}

func (r *Relay) accept() {
	for {
		proxySide, err := r.ln.Accept()
		if err != nil {
			return
		}
		c := &RelayConn{ClosedByProgram: make(chan struct{}), ClosedByProxy: make(chan struct{}), GoAwayHeld: make(chan struct{})}
		r.mu.Lock()
		r.conns = append(r.conns, c)
		close(r.grew)
		r.grew = make(chan struct{})
		hold := r.hold
		r.mu.Unlock()
		go r.dial(c, proxySide, hold)
	}
}

func (r *Relay) dial(c *RelayConn, proxySide net.Conn, hold <-chan struct{}) {
	if hold != nil {
		<-hold
	}
	programSide, err := net.Dial("tcp", r.target)
	if err != nil {
		// The program refuses: so does the relay, by closing at once
		// (the proxy sees the connection end before any answer).
		c.programOnce.Do(func() { close(c.ClosedByProgram) })
		proxySide.Close()
		return
	}
	if r.goAway {
		c.relayGoAway(proxySide, programSide)
		return
	}
	c.relay(proxySide, programSide)
}

func (c *RelayConn) relay(proxySide, programSide net.Conn) {
	wroteAfterClose := make(chan struct{})
	var wroteOnce sync.Once
	// The proxy's bytes go to the program as they come.
	go func() {
		buf := make([]byte, 32*1024)
		for {
			n, err := proxySide.Read(buf)
			if n > 0 {
				select {
				case <-c.ClosedByProgram:
					// The request the race is about: the program has closed
					// its side and will never read it. Now the proxy may
					// learn of the close.
					wroteOnce.Do(func() { close(wroteAfterClose) })
				default:
					// A failed write is the program's close, which the
					// copy below reads.
					_, _ = programSide.Write(buf[:n])
				}
			}
			if err != nil {
				c.proxyOnce.Do(func() { close(c.ClosedByProxy) })
				wroteOnce.Do(func() { close(wroteAfterClose) })
				programSide.Close()
				return
			}
		}
	}()
	// The program's bytes go to the proxy as they come; its close is held.
	// However the copy ends (the program's close, or the proxy's), the
	// relay's part is what follows.
	_, _ = io.Copy(proxySide, programSide)
	select {
	case <-c.ClosedByProxy:
		// The proxy closed first, and the copy ended because its goroutine
		// closed the program's side: nothing to hold.
	default:
		c.programOnce.Do(func() { close(c.ClosedByProgram) })
	}
	<-wroteAfterClose
	proxySide.Close()
	programSide.Close()
}

// HTTP/2 framing (RFC 9113, section 4.1): a 9-byte header, whose first
// three bytes are the payload's length and fourth the frame's type; a
// client's connection starts with a 24-byte preface.
const (
	frameHeaderLen = 9
	frameHeaders   = 0x1
	frameGoAway    = 0x7
	clientPreface  = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
)

// readFrame reads one whole frame, header and payload.
func readFrame(r io.Reader) (typ byte, frame []byte, err error) {
	header := make([]byte, frameHeaderLen)
	if _, err := io.ReadFull(r, header); err != nil {
		return 0, nil, err
	}
	length := int(header[0])<<16 | int(header[1])<<8 | int(header[2])
	frame = append(header, make([]byte, length)...)
	if _, err := io.ReadFull(r, frame[frameHeaderLen:]); err != nil {
		return 0, nil, err
	}
	return header[3], frame, nil
}

func (c *RelayConn) relayGoAway(proxySide, programSide net.Conn) {
	newStream := make(chan struct{}) // a HEADERS the proxy sent after the GOAWAY was held
	var newStreamOnce sync.Once
	// The proxy's frames go to the program as they come.
	go func() {
		defer func() {
			c.proxyOnce.Do(func() { close(c.ClosedByProxy) })
			newStreamOnce.Do(func() { close(newStream) })
			programSide.Close()
		}()
		preface := make([]byte, len(clientPreface))
		if _, err := io.ReadFull(proxySide, preface); err != nil {
			return
		}
		if _, err := programSide.Write(preface); err != nil {
			return
		}
		for {
			typ, frame, err := readFrame(proxySide)
			if err != nil {
				return
			}
			// A failed write is the program's close, which the copy
			// below reads.
			_, _ = programSide.Write(frame)
			select {
			case <-c.GoAwayHeld:
				if typ == frameHeaders {
					newStreamOnce.Do(func() { close(newStream) })
				}
			default:
			}
		}
	}()
	// The program's frames go to the proxy as they come, up to its
	// GOAWAY, which waits for the proxy's next stream.
	for {
		typ, frame, err := readFrame(programSide)
		if err != nil {
			break
		}
		if typ == frameGoAway {
			select {
			case <-c.GoAwayHeld:
			default:
				close(c.GoAwayHeld)
				<-newStream
			}
		}
		if _, err := proxySide.Write(frame); err != nil {
			break
		}
	}
	c.programOnce.Do(func() { close(c.ClosedByProgram) })
	proxySide.Close()
	programSide.Close()
}
