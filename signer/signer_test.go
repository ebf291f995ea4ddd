package signer_test

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"github.com/certmill/certmill/pkg/checkfor"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certmill/certmill/pkg/ledger"
	"github.com/certmill/certmill/pkg/lint"
	"github.com/certmill/certmill/pkg/problem"
	"github.com/certmill/certmill/pkg/serial"
	"github.com/certmill/certmill/signer"
)

func TestIssueEveryProfileVerifiesAndLints(t *testing.T) {
	e := newEnv(t, nil)
	rsa3072, _ := rsa.GenerateKey(rand.Reader, 3072)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	mk := func(key crypto.Signer, req x509.CertificateRequest) string {
		der, err := x509.CreateCertificateRequest(rand.Reader, &req, key)
		if err != nil {
			t.Fatal(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	}
	cases := []struct{ issuer, profile, csr string }{
		{"manufacturing", "device", deviceCSR(t, p256(t), "MTR-0001")},
		{"firmware", "firmware-signer", mk(rsa3072, x509.CertificateRequest{Subject: pkix.Name{CommonName: "Jane Doe"}})},
		{"codeverify", "gateway", mk(p384, x509.CertificateRequest{Subject: pkix.Name{CommonName: "gw-north-1"}, DNSNames: []string{"gw-north-1.grid.acme-meters.example"}})},
	}
	l, _ := lint.New(lint.Options{})
	for _, tc := range cases {
		t.Run(tc.profile, func(t *testing.T) {
			r := e.submit(t, tc.issuer, tc.profile, acmeToken, "k-"+tc.profile, batchBody(tc.csr))
			if r.Issued != 1 || r.Results[0].Problem != nil {
				t.Fatalf("%+v", r.Results[0])
			}
			dir := t.TempDir()
			leaf := filepath.Join(dir, "leaf.pem")
			os.WriteFile(leaf, []byte(r.Results[0].Certificate), 0o644)
			chain := filepath.Join(dir, "chain.pem")
			os.WriteFile(chain, []byte(r.Chain), 0o644)
			out, err := exec.Command("openssl", "verify", "-x509_strict", "-CAfile", e.h.File("root.pem"), "-untrusted", chain, leaf).CombinedOutput()
			if err != nil || !bytes.Contains(out, []byte(": OK")) {
				t.Fatalf("openssl verify: %v\n%s", err, out)
			}
			blk, _ := pem.Decode([]byte(r.Results[0].Certificate))
			fs, err := l.Certificate(blk.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range fs {
				t.Errorf("zlint: %s", f)
			}
		})
	}
}

// TestRetryAfterCutOff: a client sends a batch and drops the connection
// before reading the answer; its retry with the same Idempotency-Key gets
// byte-identical certificates and the ledger records nothing new.
func TestRetryAfterCutOff(t *testing.T) {
	e := newEnv(t, nil)
	var csrs []string
	for i := range 20 {
		csrs = append(csrs, deviceCSR(t, p256(t), fmt.Sprintf("MTR-%04d", i)))
	}
	body := batchBody(csrs...)
	conn, err := net.Dial("tcp", e.s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /v1/issuers/manufacturing/profiles/device/batches HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nIdempotency-Key: cut-1\r\nContent-Length: %d\r\n\r\n", acmeToken, len(body))
	conn.Write(body)
	conn.Close() // cut off before the answer
	// The signer finishes the batch anyway; wait until its records are in.
	checkfor.True(t, 20*time.Second, func() bool { return lastSeq(t, e.ledger) >= 2 }) // one serial set and the guard
	before := lastSeq(t, e.ledger)
	r1 := e.submit(t, "manufacturing", "device", acmeToken, "cut-1", body)
	r2 := e.submit(t, "manufacturing", "device", acmeToken, "cut-1", body)
	if after := lastSeq(t, e.ledger); after != before {
		t.Fatalf("retries wrote %d records", after-before)
	}
	if !r1.Replayed || r1.Issued != 20 {
		t.Fatalf("retry: replayed=%v issued=%d", r1.Replayed, r1.Issued)
	}
	for i := range r1.Results {
		if r1.Results[i].Certificate != r2.Results[i].Certificate || r1.Results[i].Serial == "" {
			t.Fatalf("result %d differs between retries", i)
		}
	}
	// The same key with another body is refused.
	st, _, b := e.do(t, "POST", "/v1/issuers/manufacturing/profiles/device/batches", acmeToken, "application/json", "cut-1", batchBody(csrs[:3]...))
	if st != 422 || !bytes.Contains(b, []byte(problem.Prefix+problem.IdempotencyReused)) {
		t.Fatalf("reused key: %d %s", st, b)
	}
}

func TestBadInput(t *testing.T) {
	e := newEnv(t, func(c *signer.Config) {
		c.Limits.MaxCSRs = 5
		c.Limits.MaxBodyBytes = 64 << 10
		c.Limits.ReadTimeout = time.Second
	})
	good := deviceCSR(t, p256(t), "MTR-1")
	blk, _ := pem.Decode([]byte(good))
	bad := append([]byte{}, blk.Bytes...)
	bad[len(bad)-5] ^= 0xff // break the signature
	badSig := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: bad}))
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsaCSR := deviceCSR(t, rsaKey, "MTR-2")
	dupKey := p256(t)

	// Per-CSR problems inside a 200 answer.
	mixed := batchBody(good, "-----BEGIN CERTIFICATE REQUEST-----\nnot base64\n-----END CERTIFICATE REQUEST-----", badSig, rsaCSR,
		deviceCSR(t, dupKey, "MTR-3"))
	r := e.submit(t, "manufacturing", "device", acmeToken, "mixed", mixed)
	want := []string{"", problem.BadCSR, problem.BadCSRSignature, problem.Rejected, ""}
	for i, w := range want {
		p := r.Results[i].Problem
		switch {
		case w == "" && p != nil:
			t.Errorf("csr %d: unexpected problem %+v", i, p)
		case w != "" && (p == nil || p.Type != problem.Prefix+w || *p.Index != i):
			t.Errorf("csr %d: problem %+v, want %s", i, p, w)
		}
	}
	if r.Issued != 2 || r.Failed != 3 {
		t.Fatalf("issued %d failed %d", r.Issued, r.Failed)
	}
	if !strings.Contains(r.Results[3].Problem.Detail, "rsa-2048 is not allowed") {
		t.Errorf("key size detail: %s", r.Results[3].Problem.Detail)
	}
	// A retry answers exactly the same, refusals included: the guard
	// records them.
	again := e.submit(t, "manufacturing", "device", acmeToken, "mixed", mixed)
	if !again.Replayed || again.Issued != r.Issued || again.Failed != r.Failed {
		t.Fatalf("retry: replayed %v issued %d failed %d, want %d and %d", again.Replayed, again.Issued, again.Failed, r.Issued, r.Failed)
	}
	for i := range r.Results {
		a, b := r.Results[i], again.Results[i]
		if a.Certificate != b.Certificate || (a.Problem == nil) != (b.Problem == nil) ||
			a.Problem != nil && (a.Problem.Type != b.Problem.Type || a.Problem.Status != b.Problem.Status || a.Problem.Detail != b.Problem.Detail || *b.Problem.Index != i) {
			t.Errorf("csr %d: first %+v, retry %+v", i, a, b)
		}
	}
	r = e.submit(t, "manufacturing", "device", acmeToken, "dups", batchBody(deviceCSR(t, dupKey, "MTR-4"), deviceCSR(t, dupKey, "MTR-5")))
	if r.Results[1].Problem == nil || r.Results[1].Problem.Type != problem.Prefix+problem.DuplicateKey {
		t.Errorf("duplicate key: %+v", r.Results[1])
	}

	big := batchBody(good, good, good, good, good, good)
	huge := bytes.Repeat([]byte("x"), 100<<10)
	cases := []struct {
		name                     string
		path, token, ctype, idem string
		body                     []byte
		status                   int
		typ                      string
	}{
		{"no token", "/v1/issuers/manufacturing/profiles/device/batches", "", "application/json", "k", batchBody(good), 401, problem.Unauthorized},
		{"wrong token", "/v1/issuers/manufacturing/profiles/device/batches", "nope", "application/json", "k", batchBody(good), 401, problem.Unauthorized},
		{"unknown issuer", "/v1/issuers/nope/profiles/device/batches", acmeToken, "application/json", "k", batchBody(good), 404, problem.NotFound},
		{"unknown profile", "/v1/issuers/manufacturing/profiles/nope/batches", acmeToken, "application/json", "k", batchBody(good), 404, problem.NotFound},
		{"another tenant's issuer", "/v1/issuers/firmware/profiles/firmware-signer/batches", globexToken, "application/json", "k", batchBody(good), 403, problem.Forbidden},
		{"wrong content type", "/v1/issuers/manufacturing/profiles/device/batches", acmeToken, "text/plain", "k", batchBody(good), 415, problem.UnsupportedMedia},
		{"no idempotency key", "/v1/issuers/manufacturing/profiles/device/batches", acmeToken, "application/json", "", batchBody(good), 400, problem.IdempotencyNeeded},
		{"not JSON", "/v1/issuers/manufacturing/profiles/device/batches", acmeToken, "application/json", "k", []byte("{"), 400, problem.BadRequest},
		{"too many CSRs", "/v1/issuers/manufacturing/profiles/device/batches", acmeToken, "application/json", "k", big, 413, problem.TooManyCSRs},
		{"oversized body", "/v1/issuers/manufacturing/profiles/device/batches", acmeToken, "application/json", "k", huge, 413, problem.TooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, h, b := e.do(t, "POST", tc.path, tc.token, tc.ctype, tc.idem, tc.body)
			var p problem.Problem
			json.Unmarshal(b, &p)
			if st != tc.status || p.Type != problem.Prefix+tc.typ || h.Get("Content-Type") != problem.ContentType || p.Detail == "" {
				t.Fatalf("got %d %s %s, want %d %s", st, h.Get("Content-Type"), b, tc.status, tc.typ)
			}
		})
	}

	t.Run("another tenant's certificate", func(t *testing.T) {
		st, _, b := e.do(t, "GET", "/v1/certificates/"+r.Results[0].Serial, globexToken, "", "", nil)
		if st != 404 {
			t.Fatalf("globex reads acme's certificate: %d %s", st, b)
		}
		st, _, _ = e.do(t, "POST", "/v1/certificates/"+r.Results[0].Serial+"/revoke", globexToken, "application/json", "", []byte(`{"reason":"keyCompromise"}`))
		if st != 404 {
			t.Fatalf("globex revokes acme's certificate: %d", st)
		}
	})

	t.Run("slow client", func(t *testing.T) {
		conn, err := net.Dial("tcp", e.s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST /v1/issuers/manufacturing/profiles/device/batches HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
		start := time.Now()
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, _ := bufio.NewReader(conn).ReadString('\n')
		if time.Since(start) > 5*time.Second {
			t.Fatalf("a client that stopped sending held the connection %s (read timeout 1s)", time.Since(start))
		}
		t.Logf("after %s: %q", time.Since(start).Round(time.Millisecond), strings.TrimSpace(line))
	})
}

// TestHTTPRules: RFC 9110's Allow on 405, RFC 6750's Bearer challenge,
// revocation reasons by name or code, and a body is one JSON value.
func TestHTTPRules(t *testing.T) {
	e := newEnv(t, nil)
	r := e.submit(t, "manufacturing", "device", acmeToken, "rules", batchBody(deviceCSR(t, p256(t), "MTR-1"), deviceCSR(t, p256(t), "MTR-2"), deviceCSR(t, p256(t), "MTR-3")))
	for _, tc := range []struct{ method, path, allow string }{
		{"GET", "/v1/issuers/manufacturing/profiles/device/batches", "POST"},
		{"DELETE", "/v1/certificates/" + r.Results[0].Serial, "GET, HEAD"},
		{"PUT", "/v1/certificates", "GET, HEAD"},
		{"GET", "/v1/certificates/" + r.Results[0].Serial + "/revoke", "POST"},
	} {
		st, h, b := e.do(t, tc.method, tc.path, acmeToken, "", "", nil)
		var p problem.Problem
		json.Unmarshal(b, &p)
		if st != 405 || h.Get("Allow") != tc.allow || p.Type != problem.Prefix+problem.MethodNotAllowed || p.Status != 405 {
			t.Errorf("%s %s: %d Allow %q %s, want 405 Allow %q", tc.method, tc.path, st, h.Get("Allow"), b, tc.allow)
		}
	}

	auth := func(header string) (int, string) {
		req, _ := http.NewRequest("GET", e.url+"/v1/certificates/"+r.Results[0].Serial, nil)
		if header != "" {
			req.Header.Set("Authorization", header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
	}
	if st, ch := auth(""); st != 401 || ch != `Bearer realm="certmill"` {
		t.Errorf("no credentials: %d %q", st, ch)
	}
	if st, ch := auth("Bearer wrong"); st != 401 || !strings.Contains(ch, `error="invalid_token"`) {
		t.Errorf("wrong token: %d %q", st, ch)
	}
	for _, h := range []string{"bearer " + acmeToken, "BEARER   " + acmeToken} {
		if st, _ := auth(h); st != 200 {
			t.Errorf("%q: %d, the scheme is case-insensitive", strings.Fields(h)[0], st)
		}
	}

	revoke := func(i int, body string) (int, signer.CertificateJSON, problem.Problem) {
		st, _, b := e.do(t, "POST", "/v1/certificates/"+r.Results[i].Serial+"/revoke", acmeToken, "application/json", "", []byte(body))
		var cj signer.CertificateJSON
		var p problem.Problem
		json.Unmarshal(b, &cj)
		json.Unmarshal(b, &p)
		return st, cj, p
	}
	for _, tc := range []struct {
		body   string
		status int
		want   string // problem type, or the reason recorded
	}{
		{`{"reason":7}`, 400, problem.BadReason},
		{`{"reason":6}`, 400, problem.BadReason},
		{`{"reason":"removeFromCRL"}`, 400, problem.BadReason},
		{`{"reason":"1"}`, 400, problem.BadReason},
		{`{"reason":1.5}`, 400, problem.BadReason},
		{`{"reason":"keyCompromise"}}`, 400, problem.BadRequest},
		{`{"reason":"keyCompromise"} {}`, 400, problem.BadRequest},
		{`{"reason":"keyCompromise","invalidity_date":"2999-01-01T00:00:00Z"}`, 400, problem.BadRequest},
		{`{"reason":1}`, 200, "keyCompromise"},
	} {
		st, cj, p := revoke(0, tc.body)
		got := p.Type
		if st == 200 {
			got = cj.Reason
		} else if p.Detail == "" {
			t.Errorf("%s: no detail", tc.body)
		}
		if st != tc.status || (st == 200 && got != tc.want) || (st != 200 && got != problem.Prefix+tc.want) {
			t.Errorf("%s: %d %s, want %d %s", tc.body, st, got, tc.status, tc.want)
		}
	}
	if st, cj, _ := revoke(1, `{}`); st != 200 || cj.Status != "revoked" || cj.Reason != "unspecified" {
		t.Errorf("no reason: %d %+v, want revoked, unspecified", st, cj)
	}
	if st, cj, _ := revoke(2, `{"reason":5}`); st != 200 || cj.Reason != "cessationOfOperation" {
		t.Errorf("reason 5: %d %+v", st, cj)
	}
}

func TestLookupAndRevoke(t *testing.T) {
	e := newEnv(t, nil)
	r := e.submit(t, "manufacturing", "device", acmeToken, "lr", batchBody(deviceCSR(t, p256(t), "MTR-9")))
	sn := r.Results[0].Serial
	st, h, b := e.do(t, "GET", "/v1/certificates/"+sn, acmeToken, "", "", nil)
	var cj signer.CertificateJSON
	json.Unmarshal(b, &cj)
	if st != 200 || cj.Status != "good" || cj.Metadata["device_id"] != "MTR-0" || cj.Metadata["lot"] != "L42" || cj.Certificate != r.Results[0].Certificate {
		t.Fatalf("lookup: %d %s %s", st, h.Get("Content-Type"), b)
	}
	req, _ := pem.Decode([]byte(r.Results[0].Certificate))
	st, h, b = e.do(t, "GET", "/v1/certificates/"+sn, acmeToken, "", "", nil)
	_ = h
	// DER by Accept.
	hreq := func(accept string) ([]byte, string) {
		rq, _ := httpNewRequest("GET", e.url+"/v1/certificates/"+sn, accept, acmeToken)
		return rq()
	}
	der, ct := hreq("application/pkix-cert")
	if ct != "application/pkix-cert" || !bytes.Equal(der, req.Bytes) {
		t.Fatalf("DER lookup: %s", ct)
	}
	for i, reason := range []string{"keyCompromise", "superseded"} {
		st, _, b = e.do(t, "POST", "/v1/certificates/"+sn+"/revoke", acmeToken, "application/json", "", []byte(`{"reason":"`+reason+`"}`))
		json.Unmarshal(b, &cj)
		if st != 200 || cj.Status != "revoked" || cj.Reason != "keyCompromise" {
			t.Fatalf("revoke %d: %d %s", i, st, b)
		}
	}
	st, _, b = e.do(t, "POST", "/v1/certificates/"+sn+"/revoke", acmeToken, "application/json", "", []byte(`{"reason":"certificateHold"}`))
	if st != 400 || !bytes.Contains(b, []byte(problem.BadReason)) {
		t.Fatalf("certificateHold: %d %s", st, b)
	}
	st, _, _ = e.do(t, "GET", "/readyz", "", "", "", nil)
	if st != 200 {
		t.Fatalf("readyz %d", st)
	}
	st, _, b = e.do(t, "GET", "/metrics", "", "", "", nil)
	if st != 200 || !bytes.Contains(b, []byte("certmill_signer_certificates_total")) {
		t.Fatalf("metrics: %d", st)
	}
	if strings.Contains(e.logs.String(), acmeToken) {
		t.Fatal("a token reached the log")
	}
}

// TestMultiChunkBatch: a batch larger than one ledger chunk commits chunk
// by chunk, and a retry replays all of them.
func TestMultiChunkBatch(t *testing.T) {
	e := newEnv(t, nil)
	var csrs []string
	for i := range 1500 {
		csrs = append(csrs, deviceCSR(t, p256(t), fmt.Sprintf("MTR-%05d", i)))
	}
	body := batchBody(csrs...)
	r1 := e.submit(t, "manufacturing", "device", acmeToken, "multi", body)
	if r1.Issued != 1500 || r1.Replayed {
		t.Fatalf("issued %d, replayed %v", r1.Issued, r1.Replayed)
	}
	before := lastSeq(t, e.ledger)
	// Chunks of 999 and 501 certificates, each in serial sets (one message
	// each) of at most ledger.SetSize, and 2 guards; device certificates
	// with a little metadata fill the sets: 2 and 1 (3 and 2 if the
	// estimate of their size were a little larger).
	if sets := setsOf(t, r1); before != uint64(sets)+2 || sets > 5 {
		t.Fatalf("ledger at %d for %d serial sets, want %d", before, sets, sets+2)
	}
	replayedSame(t, e, "multi", body, r1, before)
}

// replayedSame resubmits body with key: the answer is a replay of r1 with
// the same certificates, and the ledger did not grow from before.
func replayedSame(t *testing.T, e *env, key string, body []byte, r1 signer.BatchResponse, before uint64) {
	t.Helper()
	r2 := e.submit(t, "manufacturing", "device", acmeToken, key, body)
	if !r2.Replayed || r2.Issued != r1.Issued || lastSeq(t, e.ledger) != before {
		t.Fatalf("retry: replayed %v, issued %d of %d, ledger %d, was %d", r2.Replayed, r2.Issued, r1.Issued, lastSeq(t, e.ledger), before)
	}
	for i := range r1.Results {
		if r1.Results[i].Certificate != r2.Results[i].Certificate {
			t.Fatalf("result %d differs on replay", i)
		}
	}
}

// setsOf counts the serial sets of a batch's certificates and checks that
// none holds more than ledger.SetSize.
func setsOf(t *testing.T, r signer.BatchResponse) int {
	t.Helper()
	count := map[serial.Set]int{}
	for _, x := range r.Results {
		if x.Serial == "" {
			continue
		}
		sn, err := serial.Parse(x.Serial)
		if err != nil {
			t.Fatal(err)
		}
		set, ok := serial.SetOf(sn.Bytes())
		if !ok {
			t.Fatalf("serial %s is not of a set", x.Serial)
		}
		if count[set]++; count[set] > ledger.SetSize {
			t.Fatalf("set %s holds more than %d certificates", set.Hex(), ledger.SetSize)
		}
	}
	return len(count)
}

// TestHeavyMetadata: certificates with as much metadata as a batch may
// carry (32 entries of 64-byte keys and 256-byte values on the batch and
// on each CSR, about 20 KB per certificate) go into more, smaller serial
// sets, each one ledger message within the server's max_payload, and the
// whole batch is issued, replayed and found again.
func TestHeavyMetadata(t *testing.T) {
	e := newEnv(t, nil)
	md := func(prefix string) map[string]string {
		m := map[string]string{}
		for k := range 32 {
			m[fmt.Sprintf("%s%0*d", prefix, 62, k)] = strings.Repeat(string(rune('a'+k%26)), 256)
		}
		return m
	}
	var es []csrEntry
	for i := range 300 {
		m := md("c-")
		m["device_id"] = fmt.Sprintf("HEAVY-%04d", i)
		delete(m, fmt.Sprintf("c-%062d", 0))
		es = append(es, csrEntry{CSR: deviceCSR(t, p256(t), fmt.Sprintf("HEAVY-%04d", i)), Metadata: m})
	}
	body, _ := json.Marshal(map[string]any{"metadata": md("b-"), "csrs": es})
	r1 := e.submit(t, "manufacturing", "device", acmeToken, "heavy", body)
	if r1.Issued != 300 {
		t.Fatalf("issued %d of 300", r1.Issued)
	}
	sets := setsOf(t, r1)
	if sets < 300*20_000/e.ledger.SetBytes() {
		t.Fatalf("%d serial sets for 300 certificates of about 20 KB each: more than SetBytes (%d) in a set", sets, e.ledger.SetBytes())
	}
	before := lastSeq(t, e.ledger)
	if before != uint64(sets)+1 {
		t.Fatalf("ledger at %d, want %d sets and a guard", before, sets)
	}
	replayedSame(t, e, "heavy", body, r1, before)
}

// TestLintByShape: with lint: shape, zlint sees the first certificate of
// each shape of a batch; the others share its verdict. A refused shape
// refuses every CSR of that shape, and nothing of it is signed.
func TestLintByShape(t *testing.T) {
	e := newEnv(t, func(c *signer.Config) {
		b, err := os.ReadFile(c.IssuersFile)
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.Replace(b, []byte("lint: every                 # a few named operators"), []byte("lint: shape # "), 1)
		if err := os.WriteFile(c.IssuersFile, b, 0o600); err != nil {
			t.Fatal(err)
		}
	})
	checks := func() (zlint, shape int) {
		_, _, b := e.do(t, "GET", "/metrics", "", "", "", nil)
		for _, line := range strings.Split(string(b), "\n") {
			var n int
			if _, err := fmt.Sscanf(line, `certmill_signer_lint_checks_total{how="zlint"} %d`, &n); err == nil {
				zlint = n
			}
			if _, err := fmt.Sscanf(line, `certmill_signer_lint_checks_total{how="shape"} %d`, &n); err == nil {
				shape = n
			}
		}
		return
	}
	// 40 devices of one shape: one zlint run.
	var csrs []string
	for i := range 40 {
		csrs = append(csrs, deviceCSR(t, p256(t), fmt.Sprintf("MTR-%04d", i)))
	}
	r := e.submit(t, "manufacturing", "device", acmeToken, "shape-1", batchBody(csrs...))
	if r.Issued != 40 {
		t.Fatalf("issued %d of 40", r.Issued)
	}
	chain, _ := pem.Decode([]byte(r.Chain))
	ca, err := x509.ParseCertificate(chain.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for i, res := range r.Results {
		blk, _ := pem.Decode([]byte(res.Certificate))
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatalf("certificate %d: %v", i, err)
		}
		if err := c.CheckSignatureFrom(ca); err != nil || c.Subject.CommonName != fmt.Sprintf("MTR-%04d", i) || serial.Hex(c.SerialNumber) != res.Serial {
			t.Fatalf("certificate %d, built from the shape's prototype: %v, subject %s, serial %x", i, err, c.Subject, c.SerialNumber)
		}
	}
	if z, s := checks(); z != 1 || s != 40 {
		t.Fatalf("zlint ran %d times for 40 certificates of one shape (shape checks %d), want 1 (40)", z, s)
	}
	// Firmware signers whose common name ends in a space (zlint warns:
	// w_subject_dn_trailing_whitespace): both of that shape refused, the
	// clean one issued.
	mk := func(cn string) string {
		k, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, k)
		if err != nil {
			t.Fatal(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	}
	r = e.submit(t, "firmware", "firmware-signer", acmeToken, "shape-2", batchBody(mk("Jane Doe "), mk("Ann Lee"), mk("John Roe ")))
	if r.Issued != 1 || r.Results[1].Problem != nil {
		t.Fatalf("the clean certificate: issued %d, %+v", r.Issued, r.Results[1].Problem)
	}
	for _, i := range []int{0, 2} {
		p := r.Results[i].Problem
		if p == nil || p.Type != problem.Prefix+problem.LintFailed || !strings.Contains(p.Detail, "trailing_whitespace") {
			t.Fatalf("csrs[%d]: %+v, want a lint refusal naming the trailing whitespace", i, p)
		}
	}
	if z, s := checks(); z != 3 || s != 43 {
		t.Fatalf("zlint ran %d times in all (shape checks %d), want 3 (43)", z, s)
	}
}
