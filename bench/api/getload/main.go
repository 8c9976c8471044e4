// Command getload sends GET requests at a fixed rate (open loop: a slow answer does not slow the
// schedule) to a list of URLs in turn, and reports achieved rate and latency percentiles as JSON.
// Latency is measured from each request's scheduled time, so queueing in the client counts too.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type result struct {
	Label   string  `json:"label"`
	Rate    int     `json:"rate"`
	Seconds float64 `json:"seconds"`
	Sent    int64   `json:"sent"`
	OK      int64   `json:"ok"`
	Failed  int64   `json:"failed"`
	RPS     float64 `json:"rps"`
	P50ms   float64 `json:"p50_ms"`
	P90ms   float64 `json:"p90_ms"`
	P99ms   float64 `json:"p99_ms"`
	MaxMs   float64 `json:"max_ms"`
}

func main() {
	urlsFile := flag.String("urls", "", "file with one URL per line")
	header := flag.String("header", "", "one extra header, \"Name: value\"")
	rate := flag.Int("rate", 500, "requests per second")
	duration := flag.Duration("d", 10*time.Second, "how long to send")
	warmup := flag.Duration("warmup", 2*time.Second, "sent first, not measured")
	conns := flag.Int("c", 64, "most requests in flight")
	label := flag.String("label", "", "label in the JSON result")
	flag.Parse()
	raw, err := os.ReadFile(*urlsFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "getload:", err)
		os.Exit(2)
	}
	var urls []string
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			urls = append(urls, line)
		}
	}
	var hName, hValue string
	if *header != "" {
		parts := strings.SplitN(*header, ":", 2)
		hName, hValue = strings.TrimSpace(parts[0]), strings.TrimSpace(parts[1])
	}
	transport := &http.Transport{MaxIdleConns: *conns, MaxIdleConnsPerHost: *conns, MaxConnsPerHost: *conns}
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}

	var sent, ok, failed int64
	var mu sync.Mutex
	var latencies []time.Duration
	var wg sync.WaitGroup
	interval := time.Second / time.Duration(*rate)
	start := time.Now()
	measureFrom := start.Add(*warmup)
	end := measureFrom.Add(*duration)
	for n := 0; ; n++ {
		due := start.Add(time.Duration(n) * interval)
		if !due.Before(end) {
			break
		}
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait)
		}
		measured := !due.Before(measureFrom)
		url := urls[n%len(urls)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", url, nil)
			if hName != "" {
				req.Header.Set(hName, hValue)
			}
			resp, err := client.Do(req)
			good := err == nil && resp.StatusCode == 200
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			took := time.Since(due)
			if !measured {
				return
			}
			atomic.AddInt64(&sent, 1)
			if !good {
				atomic.AddInt64(&failed, 1)
				return
			}
			atomic.AddInt64(&ok, 1)
			mu.Lock()
			latencies = append(latencies, took)
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	pct := func(p float64) float64 {
		if len(latencies) == 0 {
			return 0
		}
		i := int(p * float64(len(latencies)-1))
		return float64(latencies[i].Microseconds()) / 1000
	}
	secs := duration.Seconds()
	out := result{*label, *rate, secs, sent, ok, failed, float64(ok) / secs, pct(0.5), pct(0.9), pct(0.99), pct(1)}
	json.NewEncoder(os.Stdout).Encode(out)
}
