package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/gracefulgo/walkthrough/internal/demotest"
)

// A raw HTTP/2 client, just enough to see on the wire what the server
// sends: the connection preface, SETTINGS, a GET in one HEADERS frame
// (RFC 9113 §3.4, §6), and frames read back with their 9-byte header. It
// is written here rather than taken from golang.org/x/net/http2, which
// the repository does not depend on, so that a reader sees every byte.

// The frame types and flags it uses (RFC 9113 §6).
const (
	frameData     = 0x0
	frameHeaders  = 0x1
	frameSettings = 0x4
	framePing     = 0x6
	frameGoAway   = 0x7

	flagEndStream  = 0x1
	flagAck        = 0x1 // on SETTINGS and PING
	flagEndHeaders = 0x4

	errCodeNo = 0x0 // NO_ERROR: a graceful GOAWAY
)

type frame struct {
	Type, Flags byte
	Stream      uint32
	Payload     []byte
}

// goAway is a GOAWAY frame's payload: the last stream the server will
// process, and why it goes away.
func (f frame) goAway() (lastStream, code uint32) {
	return binary.BigEndian.Uint32(f.Payload[0:4]) & 0x7fffffff, binary.BigEndian.Uint32(f.Payload[4:8])
}

type rawH2 struct {
	conn net.Conn
	r    *bufio.Reader
}

// dialH2 opens a connection and sends the preface and an empty SETTINGS.
func dialH2(t *testing.T, addr string) *rawH2 {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(demotest.EventTimeout))
	c := &rawH2{conn: conn, r: bufio.NewReader(conn)}
	if _, err := io.WriteString(conn, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	c.write(t, frameSettings, 0, 0, nil)
	return c
}

func (c *rawH2) write(t *testing.T, typ, flags byte, stream uint32, payload []byte) {
	t.Helper()
	var h [9]byte
	h[0], h[1], h[2] = byte(len(payload)>>16), byte(len(payload)>>8), byte(len(payload))
	h[3], h[4] = typ, flags
	binary.BigEndian.PutUint32(h[5:], stream)
	if _, err := c.conn.Write(append(h[:], payload...)); err != nil {
		t.Fatalf("write frame: %v", err)
	}
}

// get sends GET path on stream, its headers in HPACK without Huffman and
// without indexing (RFC 7541): :method GET and :scheme http are entries 2
// and 6 of the static table; :path and :authority are literals whose
// names are entries 4 and 1.
func (c *rawH2) get(t *testing.T, stream uint32, path string) {
	t.Helper()
	block := []byte{0x82, 0x86}
	block = append(block, literal(0x04, path)...)
	block = append(block, literal(0x01, "h2-raw")...)
	c.write(t, frameHeaders, flagEndHeaders|flagEndStream, stream, block)
}

func literal(nameIndex byte, value string) []byte {
	if len(value) > 126 {
		panic("literal: value too long for a one-byte length")
	}
	return append([]byte{nameIndex, byte(len(value))}, value...)
}

// next reads one frame, acknowledging the server's SETTINGS and PINGs on
// the way, as a client must for the server to carry on.
func (c *rawH2) next(t *testing.T) frame {
	t.Helper()
	var h [9]byte
	if _, err := io.ReadFull(c.r, h[:]); err != nil {
		t.Fatalf("read frame: %v", err)
	}
	f := frame{Type: h[3], Flags: h[4], Stream: binary.BigEndian.Uint32(h[5:]) & 0x7fffffff}
	f.Payload = make([]byte, int(h[0])<<16|int(h[1])<<8|int(h[2]))
	if _, err := io.ReadFull(c.r, f.Payload); err != nil {
		t.Fatalf("read frame payload: %v", err)
	}
	switch {
	case f.Type == frameSettings && f.Flags&flagAck == 0:
		c.write(t, frameSettings, flagAck, 0, nil)
	case f.Type == framePing && f.Flags&flagAck == 0:
		c.write(t, framePing, flagAck, 0, f.Payload)
	}
	return f
}

// until reads frames until one of type typ, and returns it with the DATA
// that came before it.
func (c *rawH2) until(t *testing.T, typ byte) (frame, string) {
	t.Helper()
	var data string
	for {
		f := c.next(t)
		if f.Type == typ {
			return f, data
		}
		if f.Type == frameData {
			data += string(f.Payload)
		}
	}
}

func (f frame) String() string {
	return fmt.Sprintf("frame type %d flags %#x stream %d, %d bytes", f.Type, f.Flags, f.Stream, len(f.Payload))
}

// untilEnd reads frames until stream's DATA with END_STREAM, and returns
// the last frame and the stream's data.
func (c *rawH2) untilEnd(t *testing.T, stream uint32) (frame, string) {
	t.Helper()
	var data string
	for {
		f := c.next(t)
		if f.Stream != stream {
			continue
		}
		if f.Type == frameData {
			data += string(f.Payload)
		}
		if (f.Type == frameData || f.Type == frameHeaders) && f.Flags&flagEndStream != 0 {
			return f, data
		}
	}
}

// ping sends a PING and reads frames until its ACK. The server writes one
// frame at a time and finishes with each (closing a stream whose last
// frame it was) before it starts the next, so the ACK proves that it is
// done with every frame it wrote before.
func (c *rawH2) ping(t *testing.T) {
	t.Helper()
	payload := []byte("h13-ping")
	c.write(t, framePing, 0, 0, payload)
	for {
		f := c.next(t)
		if f.Type == framePing && f.Flags&flagAck != 0 && string(f.Payload) == string(payload) {
			return
		}
	}
}
