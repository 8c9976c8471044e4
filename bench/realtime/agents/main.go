// Command agents holds N authenticated agent sockets (Socket.IO v5 over WebSocket to namespace
// /agent, no client library) on one server, the hub or the reference, and checks what arrives:
// every "events" batch is read item by item, each connection's "seq" must rise strictly (nothing
// twice, nothing out of order), and "message.received" items are counted.
//
// It connects every socket, prints {"event":"connected",...}, then reads commands from stdin:
//
//	expect K   wait until every connection has K message.received items (or -drain passes with
//	           none arriving); print {"event":"delivered",...} with the first and last delivery
//	           times (unix ns) and the checks
//	samples    (with -samples FILE) write one line per message.received item to FILE:
//	           "socket sent_ns received_ns occurred_ns" (sent_ns from the load generator's
//	           "sent_ns=" stamp in the text, occurred_ns from the event's occurred_at); print
//	           {"event":"samples",...} with the count per socket
//	quit       close and exit
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

type conn struct {
	received atomic.Int64 // message.received items
	lastSeq  int64
	mu       sync.Mutex
	samples  []sample // with -samples: one per stamped message.received item
}

type sample struct{ sent, received, occurred int64 }

type client struct {
	sampling  bool
	prefix    []byte
	conns     []*conn
	disorder  atomic.Int64 // items whose seq did not rise
	dropped   atomic.Int64 // connections lost after connecting
	frames    atomic.Int64 // "events" frames
	items     atomic.Int64 // items of any type
	bytes     atomic.Int64 // payload bytes of "events" frames
	first     atomic.Int64 // unix ns of the first message.received, any connection
	last      atomic.Int64 // unix ns of the latest message.received, any connection
	badFrames atomic.Int64 // "events" frames that did not parse
}

func main() {
	base := flag.String("url", "", "server base URL, e.g. http://127.0.0.1:8080")
	n := flag.Int("n", 100, "connections")
	token := flag.String("token", "", "the bearer token sent as auth on connecting")
	dialers := flag.Int("dialers", 100, "handshakes in flight at a time")
	drain := flag.Duration("drain", 30*time.Second, "give up after this long without a delivery")
	samplesPath := flag.String("samples", "", "record each message.received item's latency for the samples command")
	flag.Parse()
	if *base == "" {
		fail(errors.New("-url is required"))
	}
	u, err := url.Parse(*base)
	if err != nil {
		fail(err)
	}
	auth, _ := json.Marshal(map[string]string{"token": *token})
	wsURL := "ws://" + u.Host + "/socket.io/?EIO=4&transport=websocket"
	c := &client{prefix: []byte(`42/agent,["events",`), sampling: *samplesPath != ""}
	dialer := websocket.Dialer{ReadBufferSize: 32 << 10, WriteBufferSize: 512, HandshakeTimeout: 30 * time.Second}
	started := time.Now()
	var wg sync.WaitGroup
	var failed atomic.Int64
	var firstErr atomic.Value
	sem := make(chan struct{}, *dialers)
	sockets := make([]*websocket.Conn, *n)
	for i := range *n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			ws, err := connect(&dialer, wsURL, append([]byte("40/agent,"), auth...))
			<-sem
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				return
			}
			sockets[i] = ws
		}()
	}
	wg.Wait()
	out := map[string]any{"event": "connected", "clients": *n - int(failed.Load()),
		"failed": failed.Load(), "seconds": time.Since(started).Seconds()}
	if e := firstErr.Load(); e != nil {
		out["error"] = e
	}
	emit(out)
	for _, ws := range sockets {
		if ws != nil {
			cn := &conn{lastSeq: -1}
			c.conns = append(c.conns, cn)
			go c.read(ws, cn)
		}
	}
	stdin := bufio.NewScanner(os.Stdin)
	for stdin.Scan() {
		fields := strings.Fields(stdin.Text())
		if len(fields) == 2 && fields[0] == "expect" {
			k, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				fail(err)
			}
			emit(c.expect(k, *drain))
		} else if len(fields) == 1 && fields[0] == "samples" && c.sampling {
			emit(c.writeSamples(*samplesPath))
		} else if len(fields) == 1 && fields[0] == "quit" {
			break
		}
	}
	for _, ws := range sockets {
		if ws != nil {
			_ = ws.Close()
		}
	}
}

// connect opens the WebSocket, reads the Engine.IO open packet and joins /agent with the token.
func connect(d *websocket.Dialer, wsURL string, join []byte) (*websocket.Conn, error) {
	ws, _, err := d.Dial(wsURL, nil)
	if err != nil {
		return nil, err
	}
	_, msg, err := ws.ReadMessage()
	if err != nil || len(msg) == 0 || msg[0] != '0' {
		_ = ws.Close()
		return nil, fmt.Errorf("no Engine.IO open packet: %q %v", msg, err)
	}
	if err := ws.WriteMessage(websocket.TextMessage, join); err != nil {
		_ = ws.Close()
		return nil, err
	}
	joined := []byte("40/agent,{")
	for {
		_, msg, err = ws.ReadMessage()
		if err != nil {
			_ = ws.Close()
			return nil, err
		}
		if bytes.HasPrefix(msg, joined) {
			return ws, nil
		}
		if len(msg) == 1 && msg[0] == '2' {
			if err := ws.WriteMessage(websocket.TextMessage, []byte{'3'}); err != nil {
				_ = ws.Close()
				return nil, err
			}
			continue
		}
		if bytes.HasPrefix(msg, []byte("44/agent,")) {
			_ = ws.Close()
			return nil, fmt.Errorf("refused: %.200s", msg)
		}
		// anything else before the join's answer (presence and the like) is not counted
	}
}

// read checks and counts the items of every "events" frame on one connection; answers pings.
// Items are found by scanning for `{"seq":` (both servers write seq first, then type), not by
// decoding the JSON: at 1,000 sockets a full decode made this program the bottleneck.
func (c *client) read(ws *websocket.Conn, cn *conn) {
	pong := []byte{'3'}
	buf := make([]byte, 0, 64<<10)
	for {
		_, r, err := ws.NextReader()
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
			if ws.WriteMessage(websocket.TextMessage, pong) != nil {
				c.dropped.Add(1)
				return
			}
			continue
		}
		if !bytes.HasPrefix(buf, c.prefix) {
			continue
		}
		c.frames.Add(1)
		c.bytes.Add(int64(len(buf)))
		rest := buf[len(c.prefix):]
		var got, items int64
		for {
			at := bytes.Index(rest, seqKey)
			if at < 0 {
				break
			}
			rest = rest[at+len(seqKey):]
			n, width := number(rest)
			if width == 0 || !bytes.HasPrefix(rest[width:], typeKey) {
				c.badFrames.Add(1)
				break
			}
			items++
			if n <= cn.lastSeq {
				c.disorder.Add(1)
			}
			cn.lastSeq = n
			rest = rest[width+len(typeKey):]
			if bytes.HasPrefix(rest, received) {
				got++
				if c.sampling {
					cn.sample(rest, time.Now().UnixNano())
				}
			}
		}
		c.items.Add(items)
		if got > 0 {
			now := time.Now().UnixNano()
			c.first.CompareAndSwap(0, now)
			c.last.Store(now)
			cn.received.Add(got)
		}
	}
}

// sample records the latency of the item at the start of item (up to the next item): the text's
// "sent_ns=" stamp and the event's "occurred_at" (the first of each: the event precedes its context).
func (cn *conn) sample(item []byte, now int64) {
	if end := bytes.Index(item, seqKey); end >= 0 {
		item = item[:end]
	}
	at := bytes.Index(item, sentKey)
	if at < 0 {
		return
	}
	sent, width := number(item[at+len(sentKey):])
	if width == 0 {
		return
	}
	var occurred int64
	if at = bytes.Index(item, occurredKey); at >= 0 {
		value := item[at+len(occurredKey):]
		if end := bytes.IndexByte(value, '"'); end > 0 {
			if t, err := time.Parse(time.RFC3339Nano, string(value[:end])); err == nil {
				occurred = t.UnixNano()
			}
		}
	}
	cn.mu.Lock()
	cn.samples = append(cn.samples, sample{sent, now, occurred})
	cn.mu.Unlock()
}

func (c *client) writeSamples(path string) map[string]any {
	f, err := os.Create(path)
	if err != nil {
		fail(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	perSocket := make([]int, len(c.conns))
	for i, cn := range c.conns {
		cn.mu.Lock()
		for _, s := range cn.samples {
			fmt.Fprintf(w, "%d %d %d %d\n", i, s.sent, s.received, s.occurred)
		}
		perSocket[i] = len(cn.samples)
		cn.mu.Unlock()
	}
	if err := w.Flush(); err != nil {
		fail(err)
	}
	if err := f.Close(); err != nil {
		fail(err)
	}
	return map[string]any{"event": "samples", "per_socket": perSocket}
}

var (
	sentKey     = []byte("sent_ns=")
	occurredKey = []byte(`"occurred_at":"`)
	seqKey      = []byte(`{"seq":`)
	typeKey     = []byte(`,"type":"`)
	received    = []byte(`message.received"`)
)

// number reads the decimal at the start of b: its value and how many bytes it took.
func number(b []byte) (int64, int) {
	var v int64
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		v = v*10 + int64(b[i]-'0')
		i++
	}
	return v, i
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

// expect waits until every connection has k message.received items, or until drain passes
// without any arriving.
func (c *client) expect(k int64, drain time.Duration) map[string]any {
	quiet := time.Now()
	var seen int64 = -1
	complete := false
	for {
		var total, behind int64
		for _, cn := range c.conns {
			got := cn.received.Load()
			total += got
			if got < k {
				behind++
			}
		}
		if behind == 0 {
			complete = true
			break
		}
		if total != seen {
			seen, quiet = total, time.Now()
		} else if time.Since(quiet) > drain {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	var total, over int64
	for _, cn := range c.conns {
		got := cn.received.Load()
		total += got
		if got > k {
			over += got - k
		}
	}
	frames := c.frames.Load()
	return map[string]any{
		"event": "delivered", "clients": len(c.conns), "expected": k, "complete": complete,
		"deliveries": total, "extra": over, "out_of_order": c.disorder.Load(),
		"dropped": c.dropped.Load(), "bad_frames": c.badFrames.Load(),
		"frames": frames, "items": c.items.Load(),
		"bytes_per_frame": float64(c.bytes.Load()) / float64(max(frames, 1)),
		"first_ns":        c.first.Load(), "last_ns": c.last.Load(),
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
	fmt.Fprintln(os.Stderr, "agents:", err)
	os.Exit(2)
}
