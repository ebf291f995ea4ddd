// Package signertest starts the real thing for tests of the ledger's
// readers: a root ceremony on SoftHSM2, an embedded ledger and a signer on
// loopback, with a client of tenant "acme" that may use every profile.
package signertest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/certmill/certmill/pkg/ceremony/ceremonytest"
	"github.com/certmill/certmill/pkg/client"
	"github.com/certmill/certmill/pkg/hsm"
	"github.com/certmill/certmill/pkg/ledger"
	"github.com/certmill/certmill/pkg/ledger/ledgertest"
	"github.com/certmill/certmill/pkg/tenant"
	"github.com/certmill/certmill/signer"
)

// Token is tenant acme's bearer token.
const Token = "signertest-token-77"

// Env is a running hierarchy, ledger and signer.
type Env struct {
	H           *ceremonytest.Hierarchy
	HSM         *hsm.HSM
	Ledger      *ledger.Ledger
	IssuersFile string // configs/issuers.yaml pointing at this ceremony
	Client      *client.Client
}

// Start starts everything and stops it when the test ends.
func Start(t testing.TB) *Env {
	t.Helper()
	h := ceremonytest.New(t, fmt.Sprintf("e%d", time.Now().UnixNano()%1e9))
	dir := t.TempDir()
	_, self, _, _ := runtime.Caller(0)
	src, err := os.ReadFile(filepath.Join(filepath.Dir(self), "../../configs/issuers.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	e := &Env{H: h, Ledger: ledgertest.Embedded(t), IssuersFile: filepath.Join(dir, "issuers.yaml")}
	os.WriteFile(e.IssuersFile, bytes.ReplaceAll(src, []byte("../demo/ceremony/"), []byte(h.Config.OutDir+"/")), 0o600)
	if e.HSM, err = hsm.Open(h.Online, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.HSM.Close() })
	cfg := &signer.Config{Listen: "127.0.0.1:0", InsecurePlainHTTP: true, IssuersFile: e.IssuersFile, HSM: h.Online, Lint: true,
		Ledger: ledger.Config{Dir: filepath.Join(dir, "unused")},
		Tenants: []*tenant.Tenant{{Name: "acme", TokenSHA256: tenant.HashToken(Token), Issuers: map[string][]string{
			"manufacturing": {"device"}, "firmware": {"firmware-signer"}, "codeverify": {"gateway"}}}}}
	s, err := signer.New(context.Background(), cfg, signer.Deps{HSM: e.HSM, Ledger: e.Ledger})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(10 * time.Second)
	for s.Addr() == nil {
		if time.Now().After(deadline) {
			t.Fatal("signertest: the signer did not start")
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.Client, _ = client.New("http://"+s.Addr().String(), Token, "")
	return e
}

// IssueDevices issues n device certificates; it returns their PEM and serials.
func (e *Env) IssueDevices(t testing.TB, n int) (pems, serials []string) {
	t.Helper()
	var csrs []client.CSR
	for i := range n {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		id := fmt.Sprintf("MTR-%d-%d", time.Now().UnixNano()%1e6, i)
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: id},
			URIs: []*url.URL{{Scheme: "urn", Opaque: "dev:ops:" + id}}}, k)
		if err != nil {
			t.Fatal(err)
		}
		csrs = append(csrs, client.CSR{Name: id, PEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))})
	}
	r, err := e.Client.SubmitBatch(context.Background(), "manufacturing", "device", fmt.Sprint("k", time.Now().UnixNano()), nil, csrs)
	if err != nil || r.Issued != n {
		t.Fatalf("signertest: issue: %v %+v", err, r)
	}
	for _, x := range r.Results {
		pems = append(pems, x.Certificate)
		serials = append(serials, x.Serial)
	}
	return pems, serials
}
