package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/certmill/certmill/pkg/serial"
)

// fake is a signer and an OCSP responder in one loopback server, with
// knobs that break the properties the storm checks.
type fake struct {
	ca  *x509.Certificate
	key *ecdsa.PrivateKey
	// visibleAfter is how long after the revocation API answers OCSP
	// starts to say revoked.
	visibleAfter time.Duration
	// forgetAfter, when positive, makes OCSP say good again this long
	// after it started to say revoked: the regression the storm must catch.
	forgetAfter time.Duration

	mu    sync.Mutex
	certs map[string]*fakeCert // serial hex
	keys  map[string]bool      // Idempotency-Keys seen
}

type fakeCert struct {
	der     []byte
	revoked time.Time
}

func newFake(t *testing.T) *fake {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fake manufacturing CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	return &fake{ca: ca, key: k, certs: map[string]*fakeCert{}, keys: map[string]bool{}}
}

// issue signs a CSR and records the certificate.
func (f *fake) issue(csr *x509.CertificateRequest) (*x509.Certificate, error) {
	sn := make([]byte, 16)
	rand.Read(sn)
	sn[0] = sn[0]&0x7f | 0x40
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: new(big.Int).SetBytes(sn), Subject: csr.Subject, URIs: csr.URIs,
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour)}, f.ca, csr.PublicKey, f.key)
	if err != nil {
		return nil, err
	}
	c, _ := x509.ParseCertificate(der)
	f.mu.Lock()
	f.certs[serial.Hex(c.SerialNumber)] = &fakeCert{der: der}
	f.mu.Unlock()
	return c, nil
}

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/ocsp") {
		f.ocsp(w, r)
		return
	}
	if r.Header.Get("Authorization") != "Bearer tok" {
		http.Error(w, "{}", 401)
		return
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case len(parts) == 6 && parts[5] == "batches" && r.Method == "POST":
		f.batch(w, r)
	case len(parts) == 3 && parts[1] == "certificates" && r.Method == "GET":
		f.mu.Lock()
		c := f.certs[parts[2]]
		f.mu.Unlock()
		if c == nil {
			http.Error(w, "{}", 404)
			return
		}
		st := "good"
		if !c.revoked.IsZero() {
			st = "revoked"
		}
		json.NewEncoder(w).Encode(map[string]string{"serial": parts[2], "status": st})
	case len(parts) == 4 && parts[3] == "revoke" && r.Method == "POST":
		f.mu.Lock()
		c := f.certs[parts[2]]
		if c != nil && c.revoked.IsZero() {
			c.revoked = time.Now()
		}
		f.mu.Unlock()
		if c == nil {
			http.Error(w, "{}", 404)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"serial": parts[2], "status": "revoked"})
	default:
		http.Error(w, "{}", 404)
	}
}

func (f *fake) batch(w http.ResponseWriter, r *http.Request) {
	var req struct {
		CSRs []struct {
			CSR string `json:"csr"`
		} `json:"csrs"`
	}
	key := r.Header.Get("Idempotency-Key")
	if json.NewDecoder(r.Body).Decode(&req) != nil || key == "" || r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "{}", 400)
		return
	}
	f.mu.Lock()
	replayed := f.keys[key]
	f.keys[key] = true
	f.mu.Unlock()
	type result struct {
		Index       int    `json:"index"`
		Serial      string `json:"serial"`
		Certificate string `json:"certificate"`
	}
	out := struct {
		BatchID  string   `json:"batch_id"`
		Issued   int      `json:"issued"`
		Replayed bool     `json:"replayed"`
		Results  []result `json:"results"`
	}{BatchID: key, Replayed: replayed}
	for i, c := range req.CSRs {
		blk, _ := pem.Decode([]byte(c.CSR))
		if blk == nil {
			http.Error(w, "{}", 400)
			return
		}
		csr, err := x509.ParseCertificateRequest(blk.Bytes)
		if err != nil {
			http.Error(w, "{}", 400)
			return
		}
		cert, err := f.issue(csr)
		if err != nil {
			http.Error(w, "{}", 500)
			return
		}
		out.Results = append(out.Results, result{Index: i, Serial: serial.Hex(cert.SerialNumber),
			Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))})
		out.Issued++
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

func (f *fake) ocsp(w http.ResponseWriter, r *http.Request) {
	var der []byte
	if r.Method == "POST" {
		if r.Header.Get("Content-Type") != "application/ocsp-request" {
			w.Write(ocsp.MalformedRequestErrorResponse)
			return
		}
		der, _ = io.ReadAll(r.Body)
	} else {
		seg, _ := url.PathUnescape(strings.TrimPrefix(r.URL.EscapedPath(), "/ocsp/"))
		der, _ = base64.StdEncoding.DecodeString(seg)
	}
	w.Header().Set("Content-Type", "application/ocsp-response")
	req, err := ocsp.ParseRequest(der)
	if err != nil {
		w.Write(ocsp.MalformedRequestErrorResponse)
		return
	}
	tmpl := ocsp.Response{SerialNumber: req.SerialNumber, ThisUpdate: time.Now().Add(-time.Minute), NextUpdate: time.Now().Add(time.Hour), Status: ocsp.Unknown}
	f.mu.Lock()
	if c := f.certs[serial.Hex(req.SerialNumber)]; c != nil {
		tmpl.Status = ocsp.Good
		if !c.revoked.IsZero() {
			since := time.Since(c.revoked) - f.visibleAfter
			if since >= 0 && (f.forgetAfter == 0 || since < f.forgetAfter) {
				tmpl.Status, tmpl.RevokedAt, tmpl.RevocationReason = ocsp.Revoked, c.revoked, ocsp.KeyCompromise
			}
		}
	}
	f.mu.Unlock()
	b, err := ocsp.CreateResponse(f.ca, f.ca, tmpl, f.key)
	if err != nil {
		w.WriteHeader(500)
		return
	}
	w.Write(b)
}

// start serves f on loopback and writes the files a scenario file names:
// the token, the issuer's certificate and a folder of issued certificates.
func (f *fake) start(t *testing.T) Target {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "token"), []byte("tok\n"), 0o600))
	must(os.WriteFile(filepath.Join(dir, "ca.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.ca.Raw}), 0o644))
	must(os.Mkdir(filepath.Join(dir, "certs"), 0o755))
	devs, err := makeDevices("fleet", 20)
	must(err)
	for i, d := range devs {
		blk, _ := pem.Decode([]byte(d.csr))
		csr, _ := x509.ParseCertificateRequest(blk.Bytes)
		c, err := f.issue(csr)
		must(err)
		if i%5 == 0 { // some of the fleet was revoked long ago
			f.mu.Lock()
			f.certs[serial.Hex(c.SerialNumber)].revoked = time.Now().Add(-time.Hour)
			f.mu.Unlock()
		}
		must(os.WriteFile(filepath.Join(dir, "certs", d.id+".pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}), 0o644))
	}
	return Target{OCSP: srv.URL + "/ocsp", Signer: srv.URL, TokenFile: filepath.Join(dir, "token"),
		IssuerCert: filepath.Join(dir, "ca.pem"), CertsDir: filepath.Join(dir, "certs")}
}
