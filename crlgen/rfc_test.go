package crlgen

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/certmill/certmill/pkg/ledger"
	"github.com/certmill/certmill/pkg/serial"
)

// clock is a settable Deps.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// withClock gives g a clock stopped at the current second.
func withClock(g *Generator) (*clock, time.Time) {
	t0 := time.Now().UTC().Truncate(time.Second)
	c := &clock{t: t0}
	g.d.Now = c.Now
	return c, t0
}

// revokeAt applies one revocation of the bench issuer as the ledger's
// entry seq.
func revokeAt(t *testing.T, g *Generator, seq uint64, sn *big.Int, at, notAfter time.Time) {
	t.Helper()
	r := &ledger.Revoked{Issuer: "bench", Serial: sn.Bytes(), Time: at.UnixNano(), Reason: 1, NotAfter: notAfter.Unix()}
	if err := g.st.Apply([]ledger.Entry{{Seq: seq, Record: ledger.Record{Kind: ledger.KindRevoked, Revoked: r}}}, seq); err != nil {
		t.Fatal(err)
	}
}

func build(t *testing.T, g *Generator, kind Kind) *x509.RevocationList {
	t.Helper()
	res, err := g.Build("bench", kind)
	if err != nil {
		t.Fatal(err)
	}
	return parseCRL(t, res.DER)
}

func publishedCRL(t *testing.T, g *Generator, kind Kind) *x509.RevocationList {
	t.Helper()
	der, _, err := g.Published("bench", kind)
	if err != nil || der == nil {
		t.Fatalf("no published %s CRL: %v", kind, err)
	}
	return parseCRL(t, der)
}

func parseCRL(t *testing.T, der []byte) *x509.RevocationList {
	t.Helper()
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	return crl
}

func lists(crl *x509.RevocationList, sn *big.Int) bool {
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(sn) == 0 {
			return true
		}
	}
	return false
}

// baseNumber is a delta CRL's BaseCRLNumber, -1 for a full CRL.
func baseNumber(t *testing.T, crl *x509.RevocationList) int64 {
	t.Helper()
	for _, e := range crl.Extensions {
		if e.Id.Equal(oidDeltaCRLIndicator) {
			var n *big.Int
			if _, err := asn1.Unmarshal(e.Value, &n); err != nil {
				t.Fatal(err)
			}
			return n.Int64()
		}
	}
	return -1
}

// leafCert is a certificate of the bench issuer, as PEM.
func leafCert(t *testing.T, ca *x509.Certificate, caKey crypto.Signer, notBefore, notAfter time.Time) (*big.Int, []byte) {
	t.Helper()
	sn, _ := serial.New()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: sn, Subject: pkix.Name{CommonName: "MTR-1"},
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature}, ca, k.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	return sn, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// opensslVerify runs openssl verify -crl_check -use_deltas at a given time
// with the CRLs given, and says whether the certificate was accepted.
func opensslVerify(t *testing.T, at time.Time, ca *x509.Certificate, leaf []byte, crls ...*x509.RevocationList) (bool, string) {
	t.Helper()
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	args := []string{"verify", "-attime", strconv.FormatInt(at.Unix(), 10), "-crl_check", "-use_deltas",
		"-CAfile", write("ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}))}
	for i, c := range crls {
		args = append(args, "-CRLfile", write("crl"+strconv.Itoa(i)+".pem", pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: c.Raw})))
	}
	out, err := exec.Command("openssl", append(args, write("leaf.pem", leaf))...).CombinedOutput()
	return err == nil && bytes.Contains(out, []byte(": OK")), string(out)
}

// TestOlderCurrentFullCombinesWithNewestDelta: full CRL F1 (empty), a
// revocation, full CRL F2 listing it, and the delta D3 issued with F2. A
// relying party still holding F1, which is current until its nextUpdate,
// fetches D3: RFC 5280 §5.2.4 (c) lets it combine them only if F1's number
// is at least D3's BaseCRLNumber, so D3 must name F1 and list the
// revocation, or openssl accepts the revoked certificate on F1 alone.
func TestOlderCurrentFullCombinesWithNewestDelta(t *testing.T) {
	g, _, ca, caKey := benchGenerator(t, 0)
	clk, t0 := withClock(g)
	sn, leaf := leafCert(t, ca, caKey, t0.Add(-time.Hour), t0.Add(30*24*time.Hour))
	f1 := build(t, g, Full)
	revokeAt(t, g, 1, sn, t0, t0.Add(30*24*time.Hour))
	clk.Set(t0.Add(time.Hour))
	f2 := build(t, g, Full)
	d3 := publishedCRL(t, g, Delta)
	if !lists(f2, sn) || lists(f1, sn) {
		t.Fatal("F2 must list the revocation, F1 not")
	}
	if got := baseNumber(t, d3); got != f1.Number.Int64() || !lists(d3, sn) || d3.Number.Cmp(f2.Number) <= 0 {
		t.Fatalf("D3 %d names base %d (F1 %d, F2 %d), lists the revocation: %v", d3.Number, got, f1.Number, f2.Number, lists(d3, sn))
	}
	at := t0.Add(time.Hour + 10*time.Second)
	for name, crls := range map[string][]*x509.RevocationList{"F1+D3": {f1, d3}, "F2+D3": {f2, d3}} {
		if ok, out := opensslVerify(t, at, ca, leaf, crls...); ok || !bytes.Contains([]byte(out), []byte("certificate revoked")) {
			t.Errorf("%s: openssl accepted a revoked certificate:\n%s", name, out)
		}
	}
	// Once F1 is past its nextUpdate, the oldest current full CRL is F2:
	// the delta names it and no longer repeats what F2 lists.
	clk.Set(f1.NextUpdate.Add(time.Minute))
	d := build(t, g, Delta)
	if baseNumber(t, d) != f2.Number.Int64() || lists(d, sn) {
		t.Fatalf("after F1 expired: delta base %d (F2 %d), lists the revocation %v", baseNumber(t, d), f2.Number, lists(d, sn))
	}
	if ok, out := opensslVerify(t, clk.Now().Add(time.Second), ca, leaf, f2, d); ok {
		t.Errorf("F2+delta: openssl accepted a revoked certificate:\n%s", out)
	}
	v, _ := exec.Command("openssl", "version").Output()
	t.Logf("checked with %s", bytes.TrimSpace(v))
}

// TestExpiryNeedsAFullCRLAfterNotAfter: a certificate revoked 2 s before
// its notAfter. RFC 5280 §3.3: "An entry MUST NOT be removed from the CRL
// until it appears on one regularly scheduled CRL issued beyond the revoked
// certificate's validity period"; §5.2.4: a revocation first on a delta
// "MUST be included in all subsequent delta CRLs until the revocation
// notice is included on at least one explicitly issued complete CRL".
func TestExpiryNeedsAFullCRLAfterNotAfter(t *testing.T) {
	g, _, _, _ := benchGenerator(t, 0)
	clk, t0 := withClock(g)
	f1 := build(t, g, Full)
	sn, _ := serial.New()
	notAfter := t0.Add(100 * time.Second)
	clk.Set(t0.Add(98 * time.Second))
	revokeAt(t, g, 1, sn, clk.Now(), notAfter)
	if d := build(t, g, Delta); !lists(d, sn) {
		t.Fatal("the delta before notAfter lacks the revocation")
	}
	clk.Set(t0.Add(102 * time.Second))
	if d := build(t, g, Delta); !lists(d, sn) {
		t.Fatal("the delta after notAfter dropped a revocation that no full CRL has listed")
	}
	clk.Set(t0.Add(103 * time.Second))
	if f := build(t, g, Full); !lists(f, sn) {
		t.Fatal("the first full CRL after notAfter dropped the entry")
	}
	// F1 is still current: the delta issued with the new full CRL names F1
	// as its base and must still list the revocation.
	if d := publishedCRL(t, g, Delta); baseNumber(t, d) != f1.Number.Int64() || !lists(d, sn) {
		t.Fatalf("delta with base %d (F1 %d) lists the revocation: %v", baseNumber(t, d), f1.Number, lists(d, sn))
	}
	clk.Set(t0.Add(104 * time.Second))
	if f := build(t, g, Full); lists(f, sn) {
		t.Fatal("a full CRL after one that listed the expired entry past notAfter still lists it")
	}
}

// TestThisUpdateStrictlyIncreases: two CRLs of a kind within one second
// (debounce under 1 s) must not share thisUpdate, nor Last-Modified, or
// If-Modified-Since answers 304 for a CRL the cache has not seen.
func TestThisUpdateStrictlyIncreases(t *testing.T) {
	g, _, _, _ := benchGenerator(t, 0)
	withClock(g) // stopped: every CRL in the same second
	for _, kind := range []Kind{Full, Delta} {
		a := build(t, g, kind)
		_, lastMod := serve(t, g, "GET", "/bench"+suffix(kind), nil)
		b := build(t, g, kind)
		if !b.ThisUpdate.After(a.ThisUpdate) {
			t.Fatalf("%s CRLs %d and %d: thisUpdate %s then %s", kind, a.Number, b.Number, a.ThisUpdate, b.ThisUpdate)
		}
		resp, lastMod2 := serve(t, g, "GET", "/bench"+suffix(kind), map[string]string{"If-Modified-Since": lastMod})
		if resp.StatusCode() != 200 || lastMod2 == lastMod {
			t.Fatalf("%s: If-Modified-Since %s: %d, Last-Modified %s", kind, lastMod, resp.StatusCode(), lastMod2)
		}
	}
}

func suffix(kind Kind) string {
	if kind == Delta {
		return "-delta.crl"
	}
	return ".crl"
}

// serve runs one request through the origin's handler and returns the
// response and its Last-Modified.
func serve(t *testing.T, g *Generator, method, path string, hdr map[string]string) (*fasthttp.Response, string) {
	t.Helper()
	var req fasthttp.Request
	req.Header.SetMethod(method)
	req.SetRequestURI("http://origin" + path)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, nil, nil)
	g.srv.handle(&ctx)
	resp := &fasthttp.Response{}
	ctx.Response.CopyTo(resp)
	return resp, string(resp.Header.Peek("Last-Modified"))
}

// TestMethodNotAllowed: a 405 says which methods are (RFC 9110 §15.5.6:
// "The origin server MUST generate an Allow header field in a 405").
func TestMethodNotAllowed(t *testing.T) {
	g, _, _, _ := benchGenerator(t, 0)
	build(t, g, Full)
	resp, _ := serve(t, g, "POST", "/bench.crl", nil)
	if resp.StatusCode() != 405 || string(resp.Header.Peek("Allow")) != "GET, HEAD" {
		t.Fatalf("POST: %d, Allow %q", resp.StatusCode(), resp.Header.Peek("Allow"))
	}
}

// TestLookupDoesNotCacheAReplacedCRL: a request reads the published delta,
// Build publishes the next one and invalidates the cache, then the request
// caches what it read: the origin must not serve the replaced CRL after.
func TestLookupDoesNotCacheAReplacedCRL(t *testing.T) {
	g, _, _, _ := benchGenerator(t, 0)
	clk, t0 := withClock(g)
	build(t, g, Full)
	var next *x509.RevocationList
	g.srv.afterRead = func() {
		g.srv.afterRead = nil
		clk.Set(t0.Add(time.Second))
		next = build(t, g, Delta)
	}
	if _, err := g.srv.lookup("/bench-delta.crl"); err != nil {
		t.Fatal(err)
	}
	obj, err := g.srv.lookup("/bench-delta.crl")
	if err != nil || obj == nil {
		t.Fatal(err)
	}
	if got := parseCRL(t, obj.body); got.Number.Cmp(next.Number) != 0 {
		t.Fatalf("origin serves delta %d after delta %d was published", got.Number, next.Number)
	}
}

// TestCacheControl: caches may keep a full CRL up to full_every and a
// delta up to delta_every, CDN edges a delta up to a minute (a delta
// follows a revocation within the debounce), never past nextUpdate; past
// their freshness they may serve them on an origin error until nextUpdate.
func TestCacheControl(t *testing.T) {
	g, _, _, _ := benchGenerator(t, 0)
	g.cfg.FullEvery, g.cfg.DeltaEvery = 6*time.Hour, 15*time.Minute
	_, t0 := withClock(g)
	build(t, g, Full)
	for _, tc := range []struct {
		path, want string
		maxAge     time.Duration
	}{
		{"/bench.crl", "public, max-age=21600, stale-if-error=583200, no-transform", 6 * time.Hour},
		{"/bench-delta.crl", "public, max-age=900, s-maxage=60, stale-if-error=2700, no-transform", 15 * time.Minute},
	} {
		resp, _ := serve(t, g, "GET", tc.path, nil)
		if got := string(resp.Header.Peek("Cache-Control")); got != tc.want {
			t.Errorf("%s: Cache-Control %q, want %q", tc.path, got, tc.want)
		}
		if got := string(resp.Header.Peek("Expires")); got != t0.Add(tc.maxAge).Format(http1123) {
			t.Errorf("%s: Expires %q, want %s", tc.path, got, t0.Add(tc.maxAge).Format(http1123))
		}
	}
}

const http1123 = "Mon, 02 Jan 2006 15:04:05 GMT"

// TestScheduleWaitsForTheNextSecond: with a debounce under a second, the
// schedule owes a delta in the second of the last one; it issues it in the
// next second rather than dating it ahead of the clock.
func TestScheduleWaitsForTheNextSecond(t *testing.T) {
	g, _, _, _ := benchGenerator(t, 0)
	g.cfg.FullEvery, g.cfg.DeltaEvery = 6*time.Hour, 15*time.Minute
	clk, t0 := withClock(g)
	if done, err := g.schedule("bench", false); err != nil || !done {
		t.Fatalf("first full CRL: %v %v", done, err)
	}
	d0 := publishedCRL(t, g, Delta)
	if done, err := g.schedule("bench", true); err != nil || done || publishedCRL(t, g, Delta).Number.Cmp(d0.Number) != 0 {
		t.Fatalf("a delta was issued in the second of the last one (done %v, %v)", done, err)
	}
	clk.Set(t0.Add(time.Second))
	if done, err := g.schedule("bench", true); err != nil || !done {
		t.Fatalf("next second: %v %v", done, err)
	}
	if d := publishedCRL(t, g, Delta); d.Number.Cmp(d0.Number) <= 0 || !d.ThisUpdate.Equal(t0.Add(time.Second)) {
		t.Fatalf("delta %d dated %s, want after %d dated %s", d.Number, d.ThisUpdate, d0.Number, t0.Add(time.Second))
	}
	if done, err := g.schedule("bench", false); err != nil || !done {
		t.Fatalf("nothing due: %v %v", done, err)
	}
}

// TestScheduleReissuesAMissingDelta: Build fails between a full CRL and
// its delta (a crash after signing the delta): the origin serves the new
// full CRL, and the schedule issues the delta at once instead of after
// delta_every.
func TestScheduleReissuesAMissingDelta(t *testing.T) {
	g, _, _, _ := benchGenerator(t, 0)
	g.cfg.FullEvery, g.cfg.DeltaEvery = 6*time.Hour, 15*time.Minute
	clk, t0 := withClock(g)
	build(t, g, Full)
	if _, err := g.srv.lookup("/bench.crl"); err != nil { // cached
		t.Fatal(err)
	}
	crash := errors.New("crash")
	var calls int
	g.d.AfterSign = func(string, int64) error {
		if calls++; calls == 2 { // the delta after the full CRL
			return crash
		}
		return nil
	}
	clk.Set(t0.Add(time.Second))
	if _, err := g.Build("bench", Full); !errors.Is(err, crash) {
		t.Fatalf("Build: %v", err)
	}
	full := publishedCRL(t, g, Full)
	if obj, err := g.srv.lookup("/bench.crl"); err != nil || parseCRL(t, obj.body).Number.Cmp(full.Number) != 0 {
		t.Fatalf("origin serves an older full CRL than %d (%v)", full.Number, err)
	}
	if d := publishedCRL(t, g, Delta); d.Number.Cmp(full.Number) > 0 {
		t.Fatal("the delta was published")
	}
	clk.Set(t0.Add(2 * time.Second))
	if done, err := g.schedule("bench", false); err != nil || !done {
		t.Fatalf("schedule: %v %v", done, err)
	}
	if d := publishedCRL(t, g, Delta); d.Number.Cmp(full.Number) <= 0 {
		t.Fatalf("delta %d after full CRL %d: not reissued", d.Number, full.Number)
	}
}
