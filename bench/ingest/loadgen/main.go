// Command loadgen posts signed API-channel messages to a URL from many keep-alive connections and
// reports throughput and time-to-2xx percentiles as JSON. Every message has a fresh provider id, so
// every accepted request is a new stored message.
package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

type result struct {
	Label       string  `json:"label"`
	Concurrency int     `json:"concurrency"`
	Seconds     float64 `json:"seconds"`
	Sent        int64   `json:"sent"`
	OK          int64   `json:"ok"`
	Failed      int64   `json:"failed"`
	RPS         float64 `json:"rps"`
	P50ms       float64 `json:"p50_ms"`
	P90ms       float64 `json:"p90_ms"`
	P99ms       float64 `json:"p99_ms"`
	P999ms      float64 `json:"p999_ms"`
	MaxMs       float64 `json:"max_ms"`
}

func main() {
	url := flag.String("url", "", "webhook URL")
	secret := flag.String("secret", "", "inbox signing secret")
	concurrency := flag.Int("c", 64, "concurrent connections")
	duration := flag.Duration("d", 10*time.Second, "how long to send")
	prefix := flag.String("prefix", "bench", "provider message id prefix (unique per run)")
	contacts := flag.Int("contacts", 1000, "distinct senders")
	label := flag.String("label", "", "label in the JSON result")
	quiet := flag.Bool("quiet", false, "no progress lines")
	rate := flag.Int("rate", 0, "requests per second in all (0: as fast as the connections go)")
	flag.Parse()
	if *url == "" {
		fmt.Fprintln(os.Stderr, "loadgen: -url is required")
		os.Exit(2)
	}
	transport := &http.Transport{MaxIdleConns: *concurrency, MaxIdleConnsPerHost: *concurrency, MaxConnsPerHost: *concurrency}
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}

	var seq, sent, ok, failed int64
	latencies := make([][]time.Duration, *concurrency)
	deadline := time.Now().Add(*duration)
	start := time.Now()
	stopProgress := make(chan struct{})
	if !*quiet {
		go func() {
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			var last int64
			for {
				select {
				case <-stopProgress:
					return
				case <-tick.C:
					now := atomic.LoadInt64(&ok)
					fmt.Fprintf(os.Stderr, "  %s %5.1fs  %8d ok  %6d/s  %d failed\n", *label, time.Since(start).Seconds(), now, now-last, atomic.LoadInt64(&failed))
					last = now
				}
			}
		}()
	}
	// with -rate, a ticker hands out send slots: an open-loop load at a fixed rate
	var slots chan struct{}
	if *rate > 0 {
		slots = make(chan struct{}, *concurrency)
		go func() {
			interval := time.Second / time.Duration(*rate)
			next := time.Now()
			for time.Now().Before(deadline) {
				next = next.Add(interval)
				time.Sleep(time.Until(next))
				select {
				case slots <- struct{}{}:
				default: // every connection is busy: the slot is lost, and reported as such
					atomic.AddInt64(&failed, 1)
				}
			}
			close(slots)
		}()
	}
	var wg sync.WaitGroup
	for w := 0; w < *concurrency; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			mac := hmac.New(sha256.New, []byte(*secret))
			local := make([]time.Duration, 0, 1<<16)
			for time.Now().Before(deadline) {
				if slots != nil {
					if _, open := <-slots; !open {
						break
					}
				}
				n := atomic.AddInt64(&seq, 1)
				body := []byte(fmt.Sprintf(`{"message_id":"%s-%d","contact":{"identifier":"+9477%07d","name":"Bench %d"},"text":"order %d: ආයුබෝවන්, when will it arrive? sent_ns=%d"}`, *prefix, n, n%int64(*contacts), n%int64(*contacts), n, time.Now().UnixNano()))
				mac.Reset()
				mac.Write(body)
				req, _ := http.NewRequest("POST", *url, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
				t0 := time.Now()
				resp, err := client.Do(req)
				atomic.AddInt64(&sent, 1)
				if err != nil {
					atomic.AddInt64(&failed, 1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode/100 == 2 {
					local = append(local, time.Since(t0))
					atomic.AddInt64(&ok, 1)
				} else {
					atomic.AddInt64(&failed, 1)
				}
			}
			latencies[w] = local
		}(w)
	}
	wg.Wait()
	close(stopProgress)
	elapsed := time.Since(start).Seconds()
	var all []time.Duration
	for _, l := range latencies {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		i := int(p * float64(len(all)-1))
		return float64(all[i].Microseconds()) / 1000
	}
	out := result{Label: *label, Concurrency: *concurrency, Seconds: elapsed, Sent: sent, OK: ok, Failed: failed,
		RPS: float64(ok) / elapsed, P50ms: pct(0.50), P90ms: pct(0.90), P99ms: pct(0.99), P999ms: pct(0.999), MaxMs: pct(1)}
	json.NewEncoder(os.Stdout).Encode(out)
}
