package signer_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"github.com/certmill/certmill/pkg/checkfor"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/certmill/certmill/pkg/ceremony/ceremonytest"
	"github.com/certmill/certmill/pkg/hsm"
	"github.com/certmill/certmill/pkg/ledger"
	"github.com/certmill/certmill/pkg/ledger/ledgertest"
	"github.com/certmill/certmill/pkg/tenant"
	"github.com/certmill/certmill/signer"
)

const (
	acmeToken   = "acme-token-5b2f0c7e"
	globexToken = "globex-token-91aa3d"
)

type env struct {
	h      *ceremonytest.Hierarchy
	ledger *ledger.Ledger
	s      *signer.Signer
	url    string
	logs   *bytes.Buffer
}

// newEnv runs a ceremony, opens an embedded ledger and starts a signer on
// loopback with two tenants: acme may use every profile, globex only
// manufacturing/device.
func newEnv(t testing.TB, mutate func(*signer.Config)) *env {
	t.Helper()
	h := ceremonytest.New(t, fmt.Sprintf("s%d", time.Now().UnixNano()%1e9))
	src, err := os.ReadFile("../configs/issuers.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	issuers := filepath.Join(dir, "issuers.yaml")
	os.WriteFile(issuers, bytes.ReplaceAll(src, []byte("../demo/ceremony/"), []byte(h.Config.OutDir+"/")), 0o600)
	cfg := &signer.Config{
		Listen: "127.0.0.1:0", InsecurePlainHTTP: true, IssuersFile: issuers, HSM: h.Online, Lint: true,
		Ledger: ledger.Config{Dir: filepath.Join(dir, "ledger")}, Index: signer.IndexConfig{Dir: filepath.Join(dir, "index")},
		Tenants: []*tenant.Tenant{
			{Name: "acme", TokenSHA256: tenant.HashToken(acmeToken), Issuers: map[string][]string{
				"manufacturing": {"device"}, "firmware": {"firmware-signer"}, "codeverify": {"gateway"}}},
			{Name: "globex", TokenSHA256: tenant.HashToken(globexToken), Issuers: map[string][]string{"manufacturing": {"device"}}},
		},
	}
	if mutate != nil {
		mutate(cfg)
	}
	logs := &bytes.Buffer{}
	e := &env{h: h, logs: logs}
	e.ledger = ledgertest.Embedded(t)
	hs, err := hsm.Open(cfg.HSM, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hs.Close() })
	s, err := signer.New(context.Background(), cfg, signer.Deps{Log: newLogger(logs), HSM: hs, Ledger: e.ledger})
	if err != nil {
		t.Fatal(err)
	}
	e.s = s
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		s.Close()
	})
	checkfor.True(t, 10*time.Second, func() bool { return s.Addr() != nil })
	e.url = "http://" + s.Addr().String()
	return e
}

func deviceCSR(t testing.TB, key crypto.Signer, id string) string {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: id},
		URIs:    []*url.URL{{Scheme: "urn", Opaque: "dev:ops:" + id}},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func p256(t testing.TB) crypto.Signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

type csrEntry struct {
	CSR      string            `json:"csr"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

func batchBody(csrs ...string) []byte {
	var es []csrEntry
	for i, c := range csrs {
		es = append(es, csrEntry{CSR: c, Metadata: map[string]string{"device_id": fmt.Sprint("MTR-", i)}})
	}
	b, _ := json.Marshal(map[string]any{"metadata": map[string]string{"product_line": "E350", "lot": "L42", "plant": "Zug"}, "csrs": es})
	return b
}

// do sends a request and returns status, headers and body.
func (e *env) do(t testing.TB, method, path, token, ctype, idem string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, e.url+path, bytes.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if idem != "" {
		req.Header.Set("Idempotency-Key", idem)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func (e *env) submit(t testing.TB, issuer, profile, token, idem string, body []byte) signer.BatchResponse {
	t.Helper()
	st, _, b := e.do(t, "POST", "/v1/issuers/"+issuer+"/profiles/"+profile+"/batches", token, "application/json", idem, body)
	if st != 200 {
		t.Fatalf("submit: %d %s", st, b)
	}
	var r signer.BatchResponse
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func lastSeq(t testing.TB, l *ledger.Ledger) uint64 {
	s, err := l.LastSeq(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s
}
