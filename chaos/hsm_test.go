//go:build chaos

package chaos

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/certmill/certmill/pkg/checkfor"
	"github.com/certmill/certmill/pkg/client"
	"github.com/certmill/certmill/pkg/ledger"
	"github.com/certmill/certmill/pkg/ledger/ledgertest"
	"github.com/certmill/certmill/pkg/softhsm"
)

// rawSubmit posts a batch and returns the status, headers and body.
func rawSubmit(t *testing.T, base, key string, cs []client.CSR) (int, http.Header, []byte) {
	t.Helper()
	type entry struct {
		CSR string `json:"csr"`
	}
	es := make([]entry, len(cs))
	for i, c := range cs {
		es[i] = entry{c.PEM}
	}
	body, _ := json.Marshal(map[string]any{"csrs": es})
	req, _ := http.NewRequest("POST", base+"/v1/issuers/manufacturing/profiles/device/batches", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		return 0, nil, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// TestHSMUnavailable: the token's files go away under a running signer
// (the module fails: every session and every reopen errors). The signer
// answers 503 with Retry-After and a problem document, says not ready,
// issues nothing and does not crash; when the token returns, the same
// request succeeds without a restart and the ledger holds it once.
func TestHSMUnavailable(t *testing.T) {
	node := ledgertest.Single(t, true)
	s := newSite(t, ledger.Config{URL: node.URL(), MonitorURLs: []string{node.MonitorURL()}}, "")
	s.signer.supervise(t)
	defer s.signer.stop()
	if _, err := ready(s.signerURL, time.Minute); err != nil {
		t.Fatal(err)
	}
	if st, _, b := rawSubmit(t, s.signerURL, "before", csrs(t, "HSM-A", 5)); st != 200 {
		t.Fatalf("before the fault: %d %s", st, b)
	}
	pid := s.signer.pid()
	dir, err := softhsm.TokenDir()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(dir, dir+".away"); err != nil {
		t.Fatal(err)
	}
	back := func() { os.Rename(dir+".away", dir) }
	defer back()
	outage := csrs(t, "HSM-B", 5)
	refused := 0
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
		st, h, b := rawSubmit(t, s.signerURL, "during", outage)
		if st != 503 || h.Get("Retry-After") == "" || !strings.HasPrefix(h.Get("Content-Type"), "application/problem+json") {
			t.Fatalf("with the HSM gone: %d Retry-After %q %s %s", st, h.Get("Retry-After"), h.Get("Content-Type"), b)
		}
		if refused == 0 {
			t.Logf("with the HSM gone: %d, Retry-After %s: %s", st, h.Get("Retry-After"), b)
		}
		refused++
	}
	if resp, err := http.Get(s.signerURL + "/readyz"); err != nil || resp.StatusCode != 503 {
		t.Fatalf("readyz with the HSM gone: %v %v", resp.Status, err)
	}
	back()
	t0 := time.Now()
	ok := checkfor.Within(30*time.Second, 50*time.Millisecond, func() bool {
		st, _, b := rawSubmit(t, s.signerURL, "during", outage)
		if st != 200 && st != 503 {
			t.Fatalf("after the HSM came back: %d %s", st, b)
		}
		return st == 200
	})
	recovered := time.Since(t0)
	if !ok {
		t.Fatal("the signer did not recover within 30s of the HSM coming back")
	}
	if _, err := ready(s.signerURL, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if s.signer.pid() != pid || s.signer.exits+s.signer.kills != 0 {
		t.Fatalf("the signer restarted (pid %d, was %d)", s.signer.pid(), pid)
	}
	v := readStream(t, s.openLedger())
	if len(v.batches) != 2 || v.records != 12 {
		t.Errorf("ledger: %d batches, %d records; want 2 batches of 5 (and 2 guards)", len(v.batches), v.records)
	}
	t.Logf(`
chaos: HSM unavailable (token files gone under a running signer)
  requests refused             %d, each 503 with Retry-After and a problem document; readyz 503
  recovery                     first success %s after the token returned, same process
  ledger records checked       %d: %d batches, nothing from the refused requests
`, refused, recovered.Round(time.Millisecond), v.records, len(v.batches))
}
