package crlgen_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"github.com/certmill/certmill/pkg/checkfor"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certmill/certmill/crlgen"
	"github.com/certmill/certmill/pkg/ceremony/ceremonytest"
	"github.com/certmill/certmill/pkg/client"
	"github.com/certmill/certmill/pkg/hsm"
	"github.com/certmill/certmill/pkg/ledger"
	"github.com/certmill/certmill/pkg/lint"
	"github.com/certmill/certmill/signer/signertest"
)

type env struct {
	*signertest.Env
	h       *ceremonytest.Hierarchy
	hsm     *hsm.HSM
	ledger  *ledger.Ledger
	issuers string
	client  *client.Client
}

func newEnv(t *testing.T) *env {
	t.Helper()
	se := signertest.Start(t)
	return &env{Env: se, h: se.H, hsm: se.HSM, ledger: se.Ledger, issuers: se.IssuersFile, client: se.Client}
}

func (e *env) generator(t *testing.T, dir string, after func(string, int64) error) *crlgen.Generator {
	t.Helper()
	cfg := &crlgen.Config{Listen: "127.0.0.1:0", Dir: dir, IssuersFile: e.issuers, RootDir: e.h.Config.OutDir, HSM: e.h.Online,
		Ledger: ledger.Config{Dir: "unused"}, FullEvery: time.Hour, FullValidity: 7 * 24 * time.Hour, DeltaEvery: time.Hour, DeltaValidity: 2 * time.Hour, Debounce: 50 * time.Millisecond}
	g, err := crlgen.New(context.Background(), cfg, crlgen.Deps{HSM: e.hsm, Ledger: e.ledger, AfterSign: after})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func (e *env) issue(t *testing.T, n int) ([]string, []string) { return e.IssueDevices(t, n) }

func get(t *testing.T, url string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestFullAndDeltaWithOpenSSL(t *testing.T) {
	e := newEnv(t)
	g := e.generator(t, t.TempDir(), nil)
	defer g.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, 10*time.Second, func() bool { return g.Addr() != nil })
	base := "http://" + g.Addr().String()

	pems, serials := e.issue(t, 3) // good, revoked before the full CRL, revoked after it
	if _, err := e.client.Revoke(context.Background(), serials[1], "keyCompromise", nil); err != nil {
		t.Fatal(err)
	}
	// The revocation reaches crlgen through the ledger and a delta follows.
	sn1, _ := new(big.Int).SetString(serials[1], 16)
	waitFor(t, 10*time.Second, func() bool { return onCRL(t, g, crlgen.Delta, sn1) })
	// The first full CRL, issued at start without sn1, is current for days:
	// a relying party may still hold it when it fetches the newest delta.
	olderDER, _, err := g.Published("manufacturing", crlgen.Full)
	if err != nil {
		t.Fatal(err)
	}
	olderCRL, err := x509.ParseRevocationList(olderDER)
	if err != nil || contains(olderCRL, sn1) {
		t.Fatalf("first full CRL: %v", err)
	}
	res, err := g.Build("manufacturing", crlgen.Full)
	if err != nil {
		t.Fatal(err)
	}
	full, err := x509.ParseRevocationList(res.DER)
	if err != nil {
		t.Fatal(err)
	}
	if !contains(full, sn1) {
		t.Fatal("the full CRL lacks the revoked certificate")
	}
	if _, err := e.client.Revoke(context.Background(), serials[2], "superseded", nil); err != nil {
		t.Fatal(err)
	}
	sn2, _ := new(big.Int).SetString(serials[2], 16)
	start := time.Now()
	waitFor(t, 10*time.Second, func() bool { return onCRL(t, g, crlgen.Delta, sn2) })
	t.Logf("revocation to delta CRL: %s (debounce 50ms)", time.Since(start).Round(time.Millisecond))

	// Over HTTP, as a CDN pulls them.
	resp, fullDER := get(t, base+"/manufacturing.crl", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/pkix-crl" {
		t.Fatalf("full CRL: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	_, deltaDER := get(t, base+"/manufacturing-delta.crl", nil)
	fullCRL, err := x509.ParseRevocationList(fullDER)
	if err != nil {
		t.Fatal(err)
	}
	deltaCRL, err := x509.ParseRevocationList(deltaDER)
	if err != nil {
		t.Fatal(err)
	}
	// The delta names the oldest current full CRL as its base (RFC 5280
	// §5.2.4 (c)), so it lists both revocations made after that one.
	if deltaCRL.Number.Cmp(fullCRL.Number) <= 0 || deltaBase(t, deltaCRL).Cmp(olderCRL.Number) != 0 {
		t.Fatalf("full %d, delta %d naming base %d, want the first full CRL %d", fullCRL.Number, deltaCRL.Number, deltaBase(t, deltaCRL), olderCRL.Number)
	}
	if contains(fullCRL, sn2) || !contains(deltaCRL, sn2) || !contains(deltaCRL, sn1) {
		t.Fatal("the revocation after the full CRL must be on the delta only, and the delta must list all after its base")
	}

	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		return p
	}
	fullPEM := write("full.pem", pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: fullDER}))
	olderPEM := write("older.pem", pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: olderDER}))
	deltaPEM := write("delta.pem", pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: deltaDER}))
	chain := write("chain.pem", mustRead(t, e.h.File("manufacturing.pem")))
	root := e.h.File("root.pem")
	for _, f := range []string{fullPEM, olderPEM, deltaPEM} {
		out, err := exec.Command("openssl", "crl", "-in", f, "-CAfile", chain, "-noout", "-verify").CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("verify OK")) {
			t.Fatalf("openssl crl -verify %s: %v %s", f, err, out)
		}
	}
	verify := func(leaf string, useDelta bool, full string) (bool, string) {
		args := []string{"verify", "-crl_check", "-CAfile", root, "-untrusted", chain, "-CRLfile", full}
		if useDelta {
			args = append(args, "-use_deltas", "-CRLfile", deltaPEM)
		}
		out, err := exec.Command("openssl", append(args, write("leaf.pem", []byte(leaf)))...).CombinedOutput()
		return err == nil && bytes.Contains(out, []byte(": OK")), string(out)
	}
	cases := []struct {
		name     string
		leaf     string
		delta    bool
		full     string
		wantGood bool
	}{
		{"good", pems[0], true, fullPEM, true},
		{"revoked before the full CRL", pems[1], true, fullPEM, false},
		{"revoked after it, with the delta", pems[2], true, fullPEM, false},
		{"revoked after it, full CRL only", pems[2], false, fullPEM, true},
		{"good, older full CRL with the delta", pems[0], true, olderPEM, true},
		{"revoked after the older full CRL, with the delta", pems[1], true, olderPEM, false},
		{"revoked after the newer full CRL, older one with the delta", pems[2], true, olderPEM, false},
	}
	for _, tc := range cases {
		ok, out := verify(tc.leaf, tc.delta, tc.full)
		if ok != tc.wantGood {
			t.Errorf("%s: openssl says good=%v, want %v:\n%s", tc.name, ok, tc.wantGood, out)
		}
		if !tc.wantGood && !strings.Contains(out, "certificate revoked") {
			t.Errorf("%s: %s", tc.name, out)
		}
	}
	v, _ := exec.Command("openssl", "version").Output()
	t.Logf("checked with %s", bytes.TrimSpace(v))

	// e_crl_extensions_validity (CA/B BR §7.2.2) tells publicly trusted TLS
	// CAs not to use the Freshest CRL and delta CRL indicator extensions;
	// this private PKI's delta CRLs are defined by RFC 5280 §5.2.4 and 5.2.6.
	l, _ := lint.New(lint.Options{Exclude: []string{"e_crl_extensions_validity"}})
	for name, der := range map[string][]byte{"full": fullDER, "delta": deltaDER} {
		fs, err := l.RevocationList(der)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fs {
			t.Errorf("zlint %s: %s", name, f)
		}
	}

	// Conditional GETs and HEAD.
	resp, _ = get(t, base+"/manufacturing.crl", map[string]string{"If-None-Match": resp.Header.Get("ETag")})
	if resp.StatusCode != 304 {
		t.Fatalf("If-None-Match: %d", resp.StatusCode)
	}
	r2, _ := get(t, base+"/manufacturing.crl", nil)
	resp, _ = get(t, base+"/manufacturing.crl", map[string]string{"If-Modified-Since": r2.Header.Get("Last-Modified")})
	if resp.StatusCode != 304 {
		t.Fatalf("If-Modified-Since: %d", resp.StatusCode)
	}
	// A later date is no proof that the client holds this CRL (it may
	// have fetched the one before after this one's thisUpdate).
	lm, _ := http.ParseTime(r2.Header.Get("Last-Modified"))
	resp, _ = get(t, base+"/manufacturing.crl", map[string]string{"If-Modified-Since": lm.Add(time.Minute).Format(http.TimeFormat)})
	if resp.StatusCode != 200 {
		t.Fatalf("If-Modified-Since later than Last-Modified: %d, want the CRL", resp.StatusCode)
	}
	var maxAge int
	fmt.Sscanf(r2.Header.Get("Cache-Control"), "public, max-age=%d", &maxAge)
	if maxAge <= 0 || time.Duration(maxAge)*time.Second > min(time.Until(fullCRL.NextUpdate)+time.Second, time.Hour) || r2.Header.Get("Expires") == "" {
		t.Fatalf("Cache-Control %q Expires %q for nextUpdate %s", r2.Header.Get("Cache-Control"), r2.Header.Get("Expires"), fullCRL.NextUpdate)
	}
	hreq, _ := http.NewRequest("HEAD", base+"/manufacturing-delta.crl", nil)
	hresp, err := http.DefaultClient.Do(hreq)
	if err != nil || hresp.StatusCode != 200 || hresp.ContentLength != int64(len(deltaDER)) {
		t.Fatalf("HEAD: %v %+v", err, hresp)
	}
	for _, p := range []string{"/manufacturing.crt", "/root.crl", "/root.crt"} {
		if resp, _ := get(t, base+p, nil); resp.StatusCode != 200 {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
	}
	if resp, _ := get(t, base+"/nope.crl", nil); resp.StatusCode != 404 {
		t.Errorf("unknown issuer: %d", resp.StatusCode)
	}
}

// TestNumbersSurviveCrashBetweenSignAndPublish: crlgen dies after signing a
// CRL and before publishing it; after a restart on the same store the
// numbers keep increasing and the unpublished number is never used again.
func TestNumbersSurviveCrashBetweenSignAndPublish(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	crash := errors.New("simulated crash after signing")
	var lost int64
	var built int
	g := e.generator(t, dir, func(_ string, n int64) error {
		if built++; built == 3 {
			lost = n
			return crash
		}
		return nil
	})
	first, err := g.Build("manufacturing", crlgen.Full) // and its delta
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Build("manufacturing", crlgen.Delta); !errors.Is(err, crash) {
		t.Fatalf("build 3: %v", err)
	}
	g.Close() // the process is gone; Pebble keeps only what was synced
	g = e.generator(t, dir, nil)
	defer g.Close()
	next, err := g.Build("manufacturing", crlgen.Delta)
	if err != nil {
		t.Fatal(err)
	}
	if first.Number <= 0 || lost <= first.Number || next.Number <= lost {
		t.Fatalf("numbers: first %d, lost %d, after restart %d", first.Number, lost, next.Number)
	}
	der, _, _ := g.Published("manufacturing", crlgen.Delta)
	crl, _ := x509.ParseRevocationList(der)
	if crl.Number.Int64() != next.Number || deltaBase(t, crl).Int64() != first.Number || next.Base != first.Number {
		t.Fatalf("published delta %d base %d", crl.Number, deltaBase(t, crl))
	}
	// A replica rebuilt on an empty store must not number backwards.
	fresh := e.generator(t, t.TempDir(), nil)
	defer fresh.Close()
	if r, err := fresh.Build("manufacturing", crlgen.Full); err != nil || r.Number <= next.Number {
		t.Fatalf("rebuilt replica: number %v after %d (%v)", r, next.Number, err)
	}
}

func onCRL(t *testing.T, g *crlgen.Generator, kind crlgen.Kind, sn *big.Int) bool {
	der, _, err := g.Published("manufacturing", kind)
	if err != nil || der == nil {
		return false
	}
	crl, err := x509.ParseRevocationList(der)
	return err == nil && contains(crl, sn)
}

func contains(crl *x509.RevocationList, sn *big.Int) bool {
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(sn) == 0 {
			return true
		}
	}
	return false
}

func deltaBase(t *testing.T, crl *x509.RevocationList) *big.Int {
	for _, e := range crl.Extensions {
		if e.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 27}) {
			if !e.Critical {
				t.Fatal("delta CRL indicator not critical")
			}
			var n *big.Int
			asn1.Unmarshal(e.Value, &n)
			return n
		}
	}
	return big.NewInt(-1)
}

func mustRead(t *testing.T, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	checkfor.True(t, d, cond)
}
