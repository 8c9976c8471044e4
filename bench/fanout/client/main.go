// Command client holds N Socket.IO connections (Engine.IO v4 / Socket.IO v5 over WebSocket, no
// client library) to one server and counts the events that server fans out to all of them. It is
// the same program for our hub server and for the reference socket.io@4 server, so the two are
// measured with the same clients.
//
// It connects every socket to the namespace, prints one JSON line {"event":"connected",...}, then
// reads commands from stdin:
//
//	run K   trigger K events (POST <url>/run?count=K&size=S) and wait until every connection has
//	        received all K; print {"event":"round",...} with the elapsed time and checks
//	quit    close and exit
//
// Every event carries {"seq":i,...}; each connection checks that it sees 0..K-1 in order.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// round is the state of the current "run K", shared by every connection's reader.
type round struct {
	start    int64 // events each connection had received before the round
	goal     int64 // events each connection has received when the round is complete
	done     atomic.Int64
	complete chan struct{}
	first    atomic.Int64 // unix nanoseconds of the first event of the round, any connection
}

type client struct {
	namespace []byte
	eventPfx  []byte
	conns     int
	round     atomic.Pointer[round]
	received  atomic.Int64 // events, all connections, all rounds
	disorder  atomic.Int64 // events whose seq was not the next expected one on their connection
	extra     atomic.Int64 // events beyond the round's goal
	dropped   atomic.Int64 // connections lost after connecting
	frameSize atomic.Int64 // WebSocket payload bytes of the first event seen
}

func main() {
	base := flag.String("url", "", "server base URL, e.g. http://127.0.0.1:8080")
	n := flag.Int("n", 100, "connections")
	namespace := flag.String("namespace", "/bench", "Socket.IO namespace")
	event := flag.String("event", "bench", "event name to count")
	size := flag.Int("size", 1024, "payload bytes per event (passed to the server's /run)")
	dialers := flag.Int("dialers", 200, "handshakes in flight at a time")
	readBuf := flag.Int("read-buffer", 32<<10, "read buffer per connection, bytes")
	timeout := flag.Duration("timeout", 10*time.Minute, "give up on a round after this long")
	drain := flag.Duration("drain", time.Minute, "give up this long after the server has sent all")
	flag.Parse()
	if *base == "" {
		fail(errors.New("-url is required"))
	}
	u, err := url.Parse(*base)
	if err != nil {
		fail(err)
	}
	wsURL := "ws://" + u.Host + "/socket.io/?EIO=4&transport=websocket"
	c := &client{
		namespace: []byte("40" + *namespace + ","),
		eventPfx:  []byte("42" + *namespace + `,["` + *event + `",`),
		conns:     *n,
	}
	c.round.Store(&round{complete: make(chan struct{})})
	dialer := websocket.Dialer{
		ReadBufferSize:   *readBuf,
		WriteBufferSize:  512,
		HandshakeTimeout: 30 * time.Second,
	}

	started := time.Now()
	var wg sync.WaitGroup
	var failed atomic.Int64
	var firstErr atomic.Value
	sem := make(chan struct{}, *dialers)
	conns := make([]*websocket.Conn, *n)
	for i := range *n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			conn, err := c.connect(&dialer, wsURL)
			<-sem
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				return
			}
			conns[i] = conn
		}()
	}
	wg.Wait()
	connected := map[string]any{
		"event": "connected", "clients": *n - int(failed.Load()), "failed": failed.Load(),
		"seconds": time.Since(started).Seconds(),
	}
	if e := firstErr.Load(); e != nil {
		connected["error"] = e
	}
	emit(connected)
	c.conns = *n - int(failed.Load())
	for _, conn := range conns {
		if conn != nil {
			go c.read(conn)
		}
	}

	httpc := &http.Client{Timeout: *timeout}
	stdin := bufio.NewScanner(os.Stdin)
	for stdin.Scan() {
		fields := strings.Fields(stdin.Text())
		if len(fields) == 2 && fields[0] == "run" {
			k, err := strconv.Atoi(fields[1])
			if err != nil {
				fail(err)
			}
			emit(c.run(httpc, *base, k, *size, *timeout, *drain))
		} else if len(fields) == 1 && fields[0] == "quit" {
			break
		}
	}
	for _, conn := range conns {
		if conn != nil {
			_ = conn.Close()
		}
	}
}

// connect opens the WebSocket, reads the Engine.IO open packet and joins the namespace.
func (c *client) connect(d *websocket.Dialer, wsURL string) (*websocket.Conn, error) {
	conn, _, err := d.Dial(wsURL, nil)
	if err != nil {
		return nil, err
	}
	_, msg, err := conn.ReadMessage()
	if err != nil || len(msg) == 0 || msg[0] != '0' {
		_ = conn.Close()
		return nil, fmt.Errorf("no Engine.IO open packet: %q %v", msg, err)
	}
	if err := conn.WriteMessage(websocket.TextMessage, c.namespace); err != nil {
		_ = conn.Close()
		return nil, err
	}
	for {
		_, msg, err = conn.ReadMessage()
		if err != nil {
			_ = conn.Close()
			return nil, err
		}
		if bytes.HasPrefix(msg, c.namespace) && len(msg) > len(c.namespace) && msg[len(c.namespace)] == '{' {
			return conn, nil
		}
		if len(msg) == 1 && msg[0] == '2' {
			if err := conn.WriteMessage(websocket.TextMessage, []byte{'3'}); err != nil {
				_ = conn.Close()
				return nil, err
			}
			continue
		}
		_ = conn.Close()
		return nil, fmt.Errorf("unexpected packet while joining %s: %.80q", c.namespace, msg)
	}
}

// read counts events on one connection and answers Engine.IO pings; it reuses one buffer.
func (c *client) read(conn *websocket.Conn) {
	buf := make([]byte, 0, 4096)
	var got int64 // events received on this connection, all rounds
	pong := []byte{'3'}
	for {
		_, r, err := conn.NextReader()
		if err != nil {
			c.dropped.Add(1)
			return
		}
		buf, err = readAll(r, buf[:0])
		if err != nil {
			c.dropped.Add(1)
			return
		}
		if len(buf) == 1 && buf[0] == '2' {
			if conn.WriteMessage(websocket.TextMessage, pong) != nil {
				c.dropped.Add(1)
				return
			}
			continue
		}
		if !bytes.HasPrefix(buf, c.eventPfx) {
			continue
		}
		rd := c.round.Load()
		if got == rd.start {
			rd.first.CompareAndSwap(0, time.Now().UnixNano())
			c.frameSize.CompareAndSwap(0, int64(len(buf)))
		}
		if seq(buf[len(c.eventPfx):]) != got-rd.start {
			c.disorder.Add(1)
		}
		got++
		c.received.Add(1)
		switch {
		case got == rd.goal:
			if rd.done.Add(1) == int64(c.conns) {
				close(rd.complete)
			}
		case got > rd.goal:
			c.extra.Add(1)
		}
	}
}

// run triggers one round of k events and waits until every connection has them all.
func (c *client) run(httpc *http.Client, base string, k, size int, timeout, drain time.Duration) map[string]any {
	prev := c.round.Load()
	rd := &round{start: prev.goal, goal: prev.goal + int64(k), complete: make(chan struct{})}
	c.round.Store(rd)
	before := c.received.Load()
	type reply struct {
		body map[string]any
		err  error
	}
	replied := make(chan reply, 1)
	t0 := time.Now()
	go func() {
		var rp reply
		resp, err := httpc.Post(fmt.Sprintf("%s/run?count=%d&size=%d", base, k, size), "", nil)
		if err != nil {
			replied <- reply{err: err}
			return
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("trigger: HTTP %d: %s", resp.StatusCode, raw)
		}
		if err == nil {
			err = json.Unmarshal(raw, &rp.body)
		}
		rp.err = err
		replied <- rp
	}()
	complete := true
	var rp reply
	waiting := replied
	deadline := time.After(timeout)
wait:
	for {
		select {
		case <-rd.complete:
			break wait
		case rp = <-waiting:
			waiting = nil
			if rp.err != nil {
				complete = false
				break wait
			}
			deadline = time.After(drain) // the server wrote everything: the rest must arrive soon
		case <-deadline:
			complete = false
			break wait
		}
	}
	elapsed := time.Since(t0).Seconds()
	out := map[string]any{
		"event": "round", "clients": c.conns, "events": k, "complete": complete,
		"frames": c.received.Load() - before, "seconds": elapsed,
		"frames_per_s":        float64(c.received.Load()-before) / elapsed,
		"first_event_s":       float64(rd.first.Load()-t0.UnixNano()) / 1e9,
		"frame_payload_bytes": c.frameSize.Load(), "out_of_order": c.disorder.Load(),
		"extra": c.extra.Load(), "dropped": c.dropped.Load(),
	}
	if waiting != nil {
		rp = <-waiting
	}
	if rp.err != nil {
		out["trigger_error"] = rp.err.Error()
	} else {
		out["server"] = rp.body
	}
	return out
}

// seq reads the number after `{"seq":` at the start of an event's data; -1 when absent.
func seq(data []byte) int64 {
	const key = `{"seq":`
	if !bytes.HasPrefix(data, []byte(key)) {
		return -1
	}
	var v int64
	digits := 0
	for _, b := range data[len(key):] {
		if b < '0' || b > '9' {
			break
		}
		v = v*10 + int64(b-'0')
		digits++
	}
	if digits == 0 {
		return -1
	}
	return v
}

func readAll(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

func emit(v map[string]any) {
	line, err := json.Marshal(v)
	if err != nil {
		fail(err)
	}
	fmt.Println(string(line))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "client:", err)
	os.Exit(2)
}
