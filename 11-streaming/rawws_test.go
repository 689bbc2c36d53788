package main

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gracefulgo/walkthrough/internal/demotest"
)

// rawSocket is a WebSocket client written by hand, frame by frame, for what
// a library client will not do: send half a message and wait, or read the
// server's close frame and never answer it.
type rawSocket struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

// WebSocket opcodes (RFC 6455, section 5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opClose        = 0x8
)

// frame is one frame the server sent.
type frame struct {
	fin     bool
	opcode  byte
	payload []byte
}

// closeCode is the status code of a close frame, or 0.
func (f frame) closeCode() int {
	if f.opcode != opClose || len(f.payload) < 2 {
		return 0
	}
	return int(binary.BigEndian.Uint16(f.payload))
}

func (f frame) String() string {
	if f.opcode == opClose {
		return fmt.Sprintf("close %d %q", f.closeCode(), f.payload[min(2, len(f.payload)):])
	}
	return fmt.Sprintf("opcode %d fin=%v %q", f.opcode, f.fin, f.payload)
}

// dialRaw opens /ws and does the opening handshake.
func dialRaw(t *testing.T, p *demotest.Process) *rawSocket {
	t.Helper()
	conn, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	key := make([]byte, 16)
	rand.Read(key)
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", p.Addr, base64.StdEncoding.EncodeToString(key))
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("websocket handshake: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("websocket handshake: %s, want 101", resp.Status)
	}
	return &rawSocket{t: t, conn: conn, r: r}
}

// send writes one masked frame, as a client must.
func (ws *rawSocket) send(fin bool, opcode byte, payload []byte) {
	ws.t.Helper()
	if len(payload) > 125 {
		ws.t.Fatal("rawSocket sends short frames only")
	}
	b0 := opcode
	if fin {
		b0 |= 0x80
	}
	mask := make([]byte, 4)
	rand.Read(mask)
	buf := append([]byte{b0, 0x80 | byte(len(payload))}, mask...)
	for i, c := range payload {
		buf = append(buf, c^mask[i%4])
	}
	if _, err := ws.conn.Write(buf); err != nil {
		ws.t.Fatalf("send: %v", err)
	}
}

// next reads the next frame, waiting up to timeout.
func (ws *rawSocket) next(timeout time.Duration) (frame, error) {
	ws.conn.SetReadDeadline(time.Now().Add(timeout))
	defer ws.conn.SetReadDeadline(time.Time{})
	var head [2]byte
	if _, err := io.ReadFull(ws.r, head[:]); err != nil {
		return frame{}, err
	}
	n := int(head[1] & 0x7f)
	switch n {
	case 126:
		var ext [2]byte
		if _, err := io.ReadFull(ws.r, ext[:]); err != nil {
			return frame{}, err
		}
		n = int(binary.BigEndian.Uint16(ext[:]))
	case 127:
		return frame{}, fmt.Errorf("frame too long for this client")
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(ws.r, payload); err != nil {
		return frame{}, err
	}
	return frame{fin: head[0]&0x80 != 0, opcode: head[0] & 0x0f, payload: payload}, nil
}
