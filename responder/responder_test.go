package responder_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"github.com/certmill/certmill/pkg/checkfor"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/certmill/certmill/pkg/ledger"
	"github.com/certmill/certmill/pkg/serial"
	"github.com/certmill/certmill/responder"
	"github.com/certmill/certmill/signer/signertest"
)

type env struct {
	*signertest.Env
	r   *responder.Responder
	url string
	ca  *x509.Certificate
}

func start(t testing.TB) *env {
	t.Helper()
	return startOn(t, signertest.Start(t), t.TempDir())
}

// startOn starts a responder with its store in dir; the test's end stops it.
func startOn(t testing.TB, se *signertest.Env, dir string) *env {
	t.Helper()
	cfg := &responder.Config{Listen: "127.0.0.1:0", Dir: dir, IssuersFile: se.IssuersFile, HSM: se.H.Online,
		Ledger: ledger.Config{Dir: "unused"}, ExpectedCertificates: 100_000}
	r, err := responder.New(context.Background(), cfg, responder.Deps{HSM: se.HSM, Ledger: se.Ledger})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; r.Close() })
	waitFor(t, 10*time.Second, func() bool { return r.Addr() != nil && r.Ready() })
	b, _ := os.ReadFile(se.H.File("manufacturing.pem"))
	blk, _ := pem.Decode(b)
	ca, _ := x509.ParseCertificate(blk.Bytes)
	return &env{Env: se, r: r, url: "http://" + r.Addr().String() + "/manufacturing", ca: ca}
}

func parsePEM(t testing.TB, s string) *x509.Certificate {
	blk, _ := pem.Decode([]byte(s))
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// query asks by POST or GET and parses the answer, checking its signature.
func (e *env) query(t testing.TB, method string, sn *big.Int, h crypto.Hash) (*ocsp.Response, http.Header) {
	t.Helper()
	leaf := &x509.Certificate{SerialNumber: sn}
	der, err := ocsp.CreateRequest(leaf, e.ca, &ocsp.RequestOptions{Hash: h})
	if err != nil {
		t.Fatal(err)
	}
	var resp *http.Response
	if method == "GET" {
		resp, err = http.Get(e.url + "/" + base64.StdEncoding.EncodeToString(der))
	} else {
		resp, err = http.Post(e.url, "application/ocsp-request", bytes.NewReader(der))
	}
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	r, err := ocsp.ParseResponseForCert(body, leaf, e.ca)
	if err != nil {
		t.Fatalf("%s: %v (%x)", method, err, body)
	}
	return r, resp.Header
}

func TestStatusesOverGETAndPOST(t *testing.T) {
	e := start(t)
	_, serials := e.IssueDevices(t, 3)
	sn := func(i int) *big.Int { n, _ := serial.Parse(serials[i]); return n }
	if _, err := e.Client.Revoke(context.Background(), serials[1], "keyCompromise", nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool {
		r, _ := e.query(t, "POST", sn(1), crypto.SHA1)
		return r.Status == ocsp.Revoked
	})
	never, _ := serial.New()
	for _, method := range []string{"GET", "POST"} {
		for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
			name := fmt.Sprintf("%s/%v", method, h)
			r, hdr := e.query(t, method, sn(0), h)
			// thisUpdate 5 minutes back for slow clocks; byKey (RFC 5019 §2.2.2).
			if r.Status != ocsp.Good || r.Certificate == nil || r.NextUpdate.Sub(r.ProducedAt) != time.Hour || r.ProducedAt.Sub(r.ThisUpdate) != 5*time.Minute ||
				len(r.ResponderKeyHash) != 20 || r.RawResponderName != nil {
				t.Fatalf("%s good: %+v", name, r)
			}
			if !hasNoCheck(r.Certificate) || r.Certificate.ExtKeyUsage[0] != x509.ExtKeyUsageOCSPSigning {
				t.Fatalf("%s: responder certificate lacks ocsp-nocheck or OCSPSigning", name)
			}
			if !strings.Contains(hdr.Get("Cache-Control"), "max-age=") || hdr.Get("ETag") == "" || hdr.Get("Last-Modified") == "" || hdr.Get("Expires") == "" {
				t.Fatalf("%s: caching headers %v", name, hdr)
			}
			if r, _ := e.query(t, method, sn(1), h); r.Status != ocsp.Revoked || r.RevocationReason != ocsp.KeyCompromise {
				t.Fatalf("%s revoked: %+v", name, r)
			}
			if r, _ := e.query(t, method, never, h); r.Status != ocsp.Unknown {
				t.Fatalf("%s never issued: %+v", name, r)
			}
		}
	}
}

func hasNoCheck(c *x509.Certificate) bool {
	for _, x := range c.Extensions {
		if x.Id.Equal(asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 5}) {
			return true
		}
	}
	return false
}

func TestOpenSSL(t *testing.T) {
	e := start(t)
	pems, serials := e.IssueDevices(t, 2)
	if _, err := e.Client.Revoke(context.Background(), serials[1], "superseded", nil); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(s), 0o644)
		return p
	}
	chain, _ := os.ReadFile(e.H.File("manufacturing.pem"))
	root, _ := os.ReadFile(e.H.File("root.pem"))
	issuerFile := write("issuer.pem", string(chain))
	trust := write("trust.pem", string(root)+string(chain))
	// A certificate signed by the CA key but never recorded in the ledger.
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sn, _ := serial.New()
	key, err := e.HSM.Key(e.H.KeyLabel(t, "manufacturing"))
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: sn, Subject: pkix.Name{CommonName: "ghost"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}, e.ca, k.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	ghost := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	url := e.url
	waitFor(t, 5*time.Second, func() bool {
		out, _ := exec.Command("openssl", "ocsp", "-issuer", issuerFile, "-cert", write("l1.pem", pems[1]), "-url", url, "-CAfile", trust, "-no_nonce").CombinedOutput()
		return strings.Contains(string(out), ": revoked")
	})
	cases := []struct{ leaf, want string }{{pems[0], ": good"}, {pems[1], ": revoked"}, {ghost, ": unknown"}}
	for i, tc := range cases {
		out, err := exec.Command("openssl", "ocsp", "-issuer", issuerFile, "-cert", write(fmt.Sprintf("c%d.pem", i), tc.leaf), "-url", url,
			"-CAfile", trust, "-no_nonce", "-resp_text").CombinedOutput()
		s := string(out)
		if err != nil || !strings.Contains(s, "Response verify OK") || !strings.Contains(s, tc.want) {
			t.Fatalf("openssl ocsp, want %s: %v\n%s", tc.want, err, s)
		}
		if tc.want == ": revoked" && !strings.Contains(s, "Reason: superseded") {
			t.Fatalf("revocation reason missing:\n%s", s)
		}
	}
	// A GET as openssl builds it: the request from -reqout, base64 in the path.
	reqFile := filepath.Join(dir, "req.der")
	if out, err := exec.Command("openssl", "ocsp", "-issuer", issuerFile, "-cert", write("g.pem", pems[0]), "-reqout", reqFile, "-no_nonce").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	reqDER, _ := os.ReadFile(reqFile)
	resp, err := http.Get(url + "/" + strings.ReplaceAll(base64.StdEncoding.EncodeToString(reqDER), "/", "%2F"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	respFile := write("resp.der", string(body))
	out, err := exec.Command("openssl", "ocsp", "-respin", respFile, "-issuer", issuerFile, "-cert", write("g2.pem", pems[0]), "-CAfile", trust, "-no_nonce").CombinedOutput()
	if err != nil || !strings.Contains(string(out), ": good") || !strings.Contains(string(out), "Response verify OK") {
		t.Fatalf("openssl on a GET answer: %v\n%s", err, out)
	}
	// Several certificates in one request, as -serial asks: one answer,
	// every status, verified (byKey names the signer, RFC 5019 §2.2.2).
	// Serials of zero and below are unknown (RFC 5280 §4.1.2.2).
	for _, hash := range []string{"-sha1", "-sha256", "-sha384"} {
		args := []string{"ocsp", hash, "-issuer", issuerFile, "-url", url, "-CAfile", trust, "-no_nonce"}
		good, _ := serial.Parse(serials[0])
		revoked, _ := serial.Parse(serials[1])
		for _, s := range []string{"0x" + good.Text(16), "0x" + revoked.Text(16), "0x" + sn.Text(16), "0", "-5"} {
			args = append(args, "-serial", s)
		}
		out, err := exec.Command("openssl", args...).CombinedOutput()
		s := string(out)
		if err != nil || !strings.Contains(s, "Response verify OK") || strings.Count(s, ": good") != 1 || strings.Count(s, ": revoked") != 1 || strings.Count(s, ": unknown") != 3 {
			t.Fatalf("openssl ocsp %s with five -serial: %v\n%s", hash, err, s)
		}
	}
	v, _ := exec.Command("openssl", "version").Output()
	t.Logf("checked with %s", bytes.TrimSpace(v))
}

func TestErrors(t *testing.T) {
	e := start(t)
	post := func(body []byte, ctype string) []byte {
		resp, err := http.Post(e.url, ctype, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.Header.Get("Cache-Control") != "max-age=0, no-cache" {
			t.Errorf("error answer cacheable: %q", resp.Header.Get("Cache-Control"))
		}
		return b
	}
	if b := post([]byte("garbage"), "application/ocsp-request"); !bytes.Equal(b, ocsp.MalformedRequestErrorResponse) {
		t.Fatalf("garbage: %x", b)
	}
	sn, _ := serial.New()
	der, _ := ocsp.CreateRequest(&x509.Certificate{SerialNumber: sn}, e.ca, nil)
	if b := post(der, "text/plain"); !bytes.Equal(b, ocsp.MalformedRequestErrorResponse) {
		t.Fatalf("wrong content type: %x", b)
	}
	// Two CertIDs in one request: one SingleResponse each.
	two := twoCertIDs(t, der)
	tr, err := http.Post(e.url, "application/ocsp-request", bytes.NewReader(two))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(tr.Body)
	tr.Body.Close()
	if r, err := ocsp.ParseResponseForCert(b, &x509.Certificate{SerialNumber: sn}, e.ca); err != nil || r.Status != ocsp.Unknown {
		t.Fatalf("two CertIDs: %v %+v", err, r)
	}
	// An issuer the responder does not serve.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	oc, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, other.Public(), other)
	otherCA, _ := x509.ParseCertificate(oc)
	der2, _ := ocsp.CreateRequest(&x509.Certificate{SerialNumber: sn}, otherCA, nil)
	if b := post(der2, "application/ocsp-request"); !bytes.Equal(b, ocsp.UnauthorizedErrorResponse) {
		t.Fatalf("unknown issuer: %x", b)
	}
	// Above max_request_bytes (16 KiB): an OCSP answer; above four times
	// it, 413 without reading the body.
	if b := post(make([]byte, 20<<10), "application/ocsp-request"); !bytes.Equal(b, ocsp.MalformedRequestErrorResponse) {
		t.Fatalf("oversized: %x", b)
	}
	if resp, err := http.Post(e.url, "application/ocsp-request", bytes.NewReader(make([]byte, 100<<10))); err == nil {
		if resp.Body.Close(); resp.StatusCode != 413 {
			t.Fatalf("far oversized: %d", resp.StatusCode)
		}
	}
	// 405 says what is allowed; HEAD is GET without the body.
	req, _ := http.NewRequest("PUT", e.url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Body.Close(); resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD, POST" {
		t.Fatalf("PUT: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	getURL := e.url + "/" + base64.StdEncoding.EncodeToString(der)
	resp, err = http.Head(getURL)
	if err != nil {
		t.Fatal(err)
	}
	get, err := http.Get(getURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(get.Body)
	get.Body.Close()
	if resp.Body.Close(); resp.StatusCode != 200 || resp.Header.Get("ETag") == "" || resp.Header.Get("ETag") != get.Header.Get("ETag") ||
		resp.Header.Get("Content-Type") != "application/ocsp-response" || resp.ContentLength != int64(len(body)) {
		t.Fatalf("HEAD: %d %v (GET: %v, %d bytes)", resp.StatusCode, resp.Header, get.Header, len(body))
	}
}

// twoCertIDs rewrites a one-CertID request into one with the CertID twice.
func twoCertIDs(t *testing.T, der []byte) []byte {
	var req struct {
		TBS struct {
			RequestList []asn1.RawValue
		}
	}
	if _, err := asn1.Unmarshal(der, &req); err != nil {
		t.Fatal(err)
	}
	req.TBS.RequestList = append(req.TBS.RequestList, req.TBS.RequestList[0])
	out, err := asn1.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestNeverGoodForNeverIssued asks about random serials: none is good.
func TestNeverGoodForNeverIssued(t *testing.T) {
	e := start(t)
	e.IssueDevices(t, 5)
	good := 0
	for range 2000 {
		sn, _ := serial.New()
		if r, _ := e.query(t, "POST", sn, crypto.SHA1); r.Status == ocsp.Good {
			good++
		}
	}
	if good != 0 {
		t.Fatalf("%d of 2000 never-issued serials answered good", good)
	}
}

// TestRevocationFreshness revokes through the signer and polls OCSP.
func TestRevocationFreshness(t *testing.T) {
	p50, p99 := freshness(t, start(t), 50)
	t.Logf("revocation to revoked over OCSP, 50 revocations: p50 %s, p99 %s", p50, p99)
}

// BenchmarkRevocationFreshness: 1,000 revocations through the signer's
// API, each polled over OCSP until it reads revoked.
//
//	go test -run '^$' -bench RevocationFreshness -benchtime 1x ./responder/
func BenchmarkRevocationFreshness(b *testing.B) {
	for range b.N {
		p50, p99 := freshness(b, start(b), 1000)
		b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	}
}

func freshness(t testing.TB, e *env, n int) (p50, p99 time.Duration) {
	var serials []string
	for len(serials) < n {
		_, s := e.IssueDevices(t, min(500, n-len(serials)))
		serials = append(serials, s...)
	}
	var lat []time.Duration
	for _, s := range serials {
		sn, _ := serial.Parse(s)
		e.query(t, "POST", sn, crypto.SHA1) // cache a good answer first
		start := time.Now()
		if _, err := e.Client.Revoke(context.Background(), s, "keyCompromise", nil); err != nil {
			t.Fatal(err)
		}
		for {
			if r, _ := e.query(t, "POST", sn, crypto.SHA1); r.Status == ocsp.Revoked {
				break
			}
			if time.Since(start) > time.Second {
				t.Fatalf("revocation not visible within 1s (invariant 5)")
			}
		}
		lat = append(lat, time.Since(start))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat[len(lat)/2], lat[len(lat)*99/100]
}

// TestRestartResumes: a responder stopped and started on the same store
// resumes from its last applied sequence and still says revoked, and
// learns what was revoked while it was down.
func TestRestartResumes(t *testing.T) {
	se := signertest.Start(t)
	dir := t.TempDir()
	_, serials := se.IssueDevices(t, 2)
	sn := func(i int) *big.Int { n, _ := serial.Parse(serials[i]); return n }
	ctx := context.Background()
	cfg := &responder.Config{Listen: "127.0.0.1:0", Dir: dir, IssuersFile: se.IssuersFile, HSM: se.H.Online, Ledger: ledger.Config{Dir: "unused"}}
	r, err := responder.New(ctx, cfg, responder.Deps{HSM: se.HSM, Ledger: se.Ledger})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { r.Run(rctx); close(done) }()
	if _, err := se.Client.Revoke(ctx, serials[0], "keyCompromise", nil); err != nil {
		t.Fatal(err)
	}
	last, _ := se.Ledger.LastSeq(ctx)
	waitFor(t, 5*time.Second, func() bool { return r.Ready() })
	cancel()
	<-done
	r.Close()
	if _, err := se.Client.Revoke(ctx, serials[1], "superseded", nil); err != nil { // while it is down
		t.Fatal(err)
	}
	e := startOn(t, se, dir)
	for i, want := range []int{ocsp.KeyCompromise, ocsp.Superseded} {
		if got, _ := e.query(t, "POST", sn(i), crypto.SHA256); got.Status != ocsp.Revoked || got.RevocationReason != want {
			t.Fatalf("after restart, certificate %d: status %d reason %d", i, got.Status, got.RevocationReason)
		}
	}
	t.Logf("restarted after sequence %d", last)
}

func waitFor(t testing.TB, d time.Duration, cond func() bool) {
	t.Helper()
	checkfor.True(t, d, cond)
}

// TestUnknownAnswerForgottenWhenIssued: an "unknown" answer is kept in the
// bounded cache, and dropped as soon as the serial's issuance record is
// applied: the next answer is good, not the kept unknown.
func TestUnknownAnswerForgottenWhenIssued(t *testing.T) {
	e := start(t)
	sn, _ := serial.New()
	for range 3 { // signed once, then from the cache
		if r, _ := e.query(t, "POST", sn, crypto.SHA1); r.Status != ocsp.Unknown {
			t.Fatalf("never issued: status %d", r.Status)
		}
	}
	notAfter := time.Now().Add(time.Hour).Unix()
	_, err := e.Ledger.CommitChunk(context.Background(), ledger.Chunk{
		Guard:  ledger.Batch{Tenant: "acme", Issuer: "manufacturing", Profile: "device", Key: "unknown-then-issued", Indexes: []int{0}, Serials: [][]byte{sn.Bytes()}, NotAfter: notAfter},
		Issued: []ledger.Issued{{Issuer: "manufacturing", Serial: sn.Bytes(), NotAfter: notAfter, Tenant: "acme", Profile: "device", BatchID: "unknown-then-issued"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool {
		r, _ := e.query(t, "POST", sn, crypto.SHA1)
		return r.Status == ocsp.Good
	})
}
