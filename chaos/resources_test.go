//go:build chaos

package chaos

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certmill/certmill/pkg/checkfor"
	"github.com/certmill/certmill/pkg/ledger"
	"github.com/certmill/certmill/pkg/ledger/ledgertest"
)

// usage is what one process holds.
type usage struct {
	fds, goroutines int
	rssMiB          float64
}

func measure(t *testing.T, pid int, base string) usage {
	t.Helper()
	var u usage
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	u.fds = len(ents)
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			u.rssMiB = kb / 1024
		}
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(base + "/metrics")
	if err != nil {
		t.Fatalf("chaos: %s/metrics: %v", base, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			u.goroutines, _ = strconv.Atoi(v)
		}
	}
	return u
}

// attack opens slow and idle connections and sends oversized requests to
// the server at addr; it returns, with the slow connections still open,
// those connections (the server must close them) and the statuses of the
// oversized requests.
func attack(t *testing.T, addr, path string, slow, oversized int, big int) ([]net.Conn, map[string]int) {
	var conns []net.Conn
	statuses := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range slow {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			statuses["dial: "+err.Error()]++
			continue
		}
		conns = append(conns, c)
		switch i % 3 {
		case 0: // slowloris: the headers, a byte at a time, never finished
			go func() {
				fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\n", path)
				for j := 0; j < 60; j++ {
					if _, err := c.Write([]byte("X")); err != nil {
						return
					}
					pause(500 * time.Millisecond)
				}
			}()
		case 1: // a body announced and never sent
			fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\nContent-Length: 1000\r\n\r\nab", path)
		case 2: // connected, silent
		}
	}
	for range oversized {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", "http://"+addr+path, strings.NewReader(strings.Repeat("A", big)))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Idempotency-Key", "oversized")
			resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				statuses["error (connection closed)"]++
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			statuses[resp.Status]++
		}()
	}
	wg.Wait()
	return conns, statuses
}

// TestSlowClientsAndOversized: against each HTTP server (signer API,
// responder, CRL origin), connections that trickle headers, announce a
// body and never send it, or stay silent, and requests far above the body
// limit. Each server refuses the oversized requests, keeps answering its
// normal clients meanwhile, and closes the slow connections by itself:
// open files, goroutines and RSS come back near where they were.
func TestSlowClientsAndOversized(t *testing.T) {
	p := prof(t)
	node := ledgertest.Single(t, true)
	s := newSite(t, ledger.Config{URL: node.URL(), MonitorURLs: []string{node.MonitorURL()}}, "")
	for _, x := range []*proc{s.signer, s.responder, s.crlgen} {
		x.supervise(t)
		defer x.stop()
	}
	servers := []struct {
		name, base, path string
		p                *proc
		big              int
	}{
		{"signer", s.signerURL, "/v1/issuers/manufacturing/profiles/device/batches", s.signer, 4 << 20},
		{"responder", s.responderURL, "/manufacturing", s.responder, 1 << 20},
		{"crlgen", s.crlgenURL, "/manufacturing.crl", s.crlgen, 1 << 20},
	}
	report := "\nchaos: slow clients and oversized requests (profile " + *profileName + ")\n"
	for _, sv := range servers {
		if _, err := ready(sv.base, time.Minute); err != nil {
			t.Fatal(err)
		}
		pid := sv.p.pid()
		starts := sv.p.startCount() // a start refused before readiness is not the attack's doing
		before := measure(t, pid, sv.base)
		t0 := time.Now()
		conns, statuses := attack(t, strings.TrimPrefix(sv.base, "http://"), sv.path, p.slowConns, p.oversized, sv.big)
		during := measure(t, pid, sv.base)
		// Normal clients are still served while the slow ones hang on.
		if resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(sv.base + "/healthz"); err != nil || resp.StatusCode != 200 {
			t.Errorf("%s: a normal request during the attack: %v", sv.name, err)
		}
		for st := range statuses {
			if !strings.HasPrefix(st, "413") && !strings.HasPrefix(st, "400") && !strings.HasPrefix(st, "error") {
				t.Errorf("%s: an oversized request got %s", sv.name, st)
			}
		}
		// The server closes the slow connections itself.
		closed := 0
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, c := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.SetReadDeadline(time.Now().Add(90 * time.Second))
				io.Copy(io.Discard, c)
				mu.Lock()
				closed++
				mu.Unlock()
			}()
		}
		wg.Wait()
		closedIn := time.Since(t0)
		for _, c := range conns {
			c.Close()
		}
		var after usage
		checkfor.Within(20*time.Second, 200*time.Millisecond, func() bool {
			after = measure(t, pid, sv.base)
			return after.fds <= before.fds+10 && after.goroutines <= before.goroutines+20
		})
		if after.fds > before.fds+10 || after.goroutines > before.goroutines+20 || after.rssMiB > before.rssMiB+64 {
			t.Errorf("%s: not back: before %+v, after %+v", sv.name, before, after)
		}
		if n := sv.p.startCount(); n != starts {
			t.Errorf("%s restarted during the attack (%d starts, %d before it)", sv.name, n, starts)
		}
		if starts > 1 {
			report += fmt.Sprintf("  %-10s started %d times before it was ready (see its log with CHAOS_LOGS)\n", sv.name, starts)
		}
		report += fmt.Sprintf("  %-10s %d slow connections closed by the server within %s; %d oversized: %v\n"+
			"             open files %d -> %d -> %d, goroutines %d -> %d -> %d, RSS %.0f -> %.0f -> %.0f MiB (before -> during -> after)\n",
			sv.name, closed, closedIn.Round(time.Second), p.oversized, statuses,
			before.fds, during.fds, after.fds, before.goroutines, during.goroutines, after.goroutines, before.rssMiB, during.rssMiB, after.rssMiB)
	}
	t.Log(report)
}
