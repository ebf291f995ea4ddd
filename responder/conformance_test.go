package responder

import (
	"bytes"
	"crypto"
	"crypto/elliptic"
	"encoding/base64"
	"fmt"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

// TestDecodeRequest: what decodeRequest reads and refuses.
func TestDecodeRequest(t *testing.T) {
	ca, _, _ := testCA(t, elliptic.P256(), "Manufacturing CA")
	one := func(h crypto.Hash, noParams bool, sn int64) reqID {
		return reqID{issuer: ca, hash: h, noParams: noParams, serial: big.NewInt(sn)}
	}
	sha1NULL := makeRequest(t, []reqID{one(crypto.SHA1, false, 9)}, nil, nil)
	sha256NULL := makeRequest(t, []reqID{one(crypto.SHA256, false, 9)}, nil, nil)
	oid256 := "\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01"
	// replace replaces old by new, of the same length, in der.
	replace := func(der []byte, old, new string) []byte {
		if !bytes.Contains(der, []byte(old)) || len(old) != len(new) {
			t.Fatalf("cannot replace %x in %x", old, der)
		}
		return bytes.Replace(der, []byte(old), []byte(new), 1)
	}
	notMinimal := certIDOf(t, one(crypto.SHA1, false, 9))
	notMinimal.serial = []byte{0x00, 0x09}
	var nine []reqID
	for i := range 9 {
		nine = append(nine, one(crypto.SHA1, false, int64(i+1)))
	}
	for _, tc := range []struct {
		name     string
		der      []byte
		n        int         // CertIDs read; 0: malformed
		hash     crypto.Hash // of the first CertID; 0: one we do not answer in
		noParams bool        // of the first CertID
		sn       int64       // of the first CertID
	}{
		{name: "SHA-1 NULL", der: sha1NULL, n: 1, hash: crypto.SHA1, sn: 9},
		{name: "SHA-256 NULL", der: sha256NULL, n: 1, hash: crypto.SHA256, sn: 9},
		{name: "SHA-256 absent (RFC 5754, BouncyCastle)", der: makeRequest(t, []reqID{one(crypto.SHA256, true, 9)}, nil, nil), n: 1, hash: crypto.SHA256, noParams: true, sn: 9},
		{name: "SHA-1 absent", der: makeRequest(t, []reqID{one(crypto.SHA1, true, 9)}, nil, nil), n: 1, hash: crypto.SHA1, noParams: true, sn: 9},
		{name: "SHA-384", der: makeRequest(t, []reqID{one(crypto.SHA384, true, 9)}, nil, nil), n: 1, hash: crypto.SHA384, noParams: true, sn: 9},
		{name: "SHA-512", der: makeRequest(t, []reqID{one(crypto.SHA512, false, 9)}, nil, nil), n: 1, hash: crypto.SHA512, sn: 9},
		{name: "SHA-224: read, answered unauthorized", der: replace(sha256NULL, oid256, oid256[:len(oid256)-1]+"\x04"), n: 1, hash: 0, sn: 9},
		{name: "parameters an OCTET STRING", der: replace(sha256NULL, oid256+"\x05\x00", oid256+"\x04\x00")},
		{name: "parameters a SEQUENCE", der: replace(sha256NULL, oid256+"\x05\x00", oid256+"\x30\x00")},
		{name: "serial zero", der: makeRequest(t, []reqID{one(crypto.SHA1, false, 0)}, nil, nil), n: 1, hash: crypto.SHA1, sn: 0},
		{name: "serial negative", der: makeRequest(t, []reqID{one(crypto.SHA1, false, -300)}, nil, nil), n: 1, hash: crypto.SHA1, sn: -300},
		{name: "serial not minimal", der: encodeCertIDs([]certID{notMinimal}, nil, nil, nil)},
		{name: "eight CertIDs", der: makeRequest(t, nine[:8], nil, nil), n: 8, hash: crypto.SHA1, sn: 1},
		{name: "nine CertIDs", der: makeRequest(t, nine, nil, nil)},
		{name: "no CertID", der: makeRequest(t, nil, nil, nil)},
		{name: "critical nonce", der: makeRequest(t, []reqID{one(crypto.SHA1, false, 9)}, exts(ext{oid: oidNonceExt, critical: true}), nil), n: 1, hash: crypto.SHA1, sn: 9},
		{name: "unknown extension not critical", der: makeRequest(t, []reqID{one(crypto.SHA1, false, 9)}, exts(ext{oid: oidPrefSigAlgsExt}), nil), n: 1, hash: crypto.SHA1, sn: 9},
		{name: "unknown request extension critical", der: makeRequest(t, []reqID{one(crypto.SHA1, false, 9)}, exts(ext{oid: oidNonceExt}, ext{oid: oidPrefSigAlgsExt, critical: true}), nil)},
		{name: "single extension critical", der: makeRequest(t, []reqID{{issuer: ca, serial: big.NewInt(9), singleExts: exts(ext{oid: oidServiceLocatorExt, critical: true})}}, nil, nil)},
		{name: "single extension not critical", der: makeRequest(t, []reqID{{issuer: ca, serial: big.NewInt(9), singleExts: exts(ext{oid: oidServiceLocatorExt})}}, nil, nil), n: 1, hash: crypto.SHA1, sn: 9},
		{name: "nonce critical as a single extension", der: makeRequest(t, []reqID{{issuer: ca, serial: big.NewInt(9), singleExts: exts(ext{oid: oidNonceExt, critical: true})}}, nil, nil)},
		{name: "signed, with a certificate", der: makeRequest(t, []reqID{one(crypto.SHA1, false, 9)}, nil, [][]byte{ca.Raw}), n: 1, hash: crypto.SHA1, sn: 9},
		{name: "hash of the wrong length", der: bytes.Replace(sha1NULL, []byte{0x04, 0x14}, []byte{0x04, 0x13}, 1)},
		{name: "trailing data", der: append(append([]byte{}, sha1NULL...), 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var q request
			err := decodeRequest(tc.der, &q)
			switch {
			case tc.n == 0:
				if err == nil {
					t.Fatalf("read %d CertIDs, want malformed", q.n)
				}
			case err != nil:
				t.Fatal(err)
			case q.n != tc.n || q.ids[0].hash != tc.hash || q.ids[0].noParams != tc.noParams || q.ids[0].serialInt().Int64() != tc.sn:
				t.Fatalf("read %d CertIDs, the first %v noParams %v serial %d", q.n, q.ids[0].hash, q.ids[0].noParams, q.ids[0].serialInt())
			}
		})
	}
}

// TestCertIDEchoedAsSent: the answer's CertID is the request's, byte for
// byte, NULL parameters or none, in every hash (BouncyCastle matches them
// by ASN.1 equality); each form is cached apart, and a status change
// drops both.
func TestCertIDEchoedAsSent(t *testing.T) {
	tr := newTestResponder(t)
	sn := big.NewInt(0x8077)
	tr.issue(t, "manufacturing", sn)
	ask := func(h crypto.Hash, noParams bool) *ocsp.Response {
		t.Helper()
		der := makeRequest(t, []reqID{{issuer: tr.ca, hash: h, noParams: noParams, serial: sn}}, nil, nil)
		resp := tr.post(der)
		r := tr.parse(t, resp, sn, tr.ca)
		_, got := responseParts(t, resp.Body())
		if want := requestCertIDs(t, der); len(got) != 1 || !bytes.Equal(got[0], want[0]) {
			t.Fatalf("%v noParams=%v: answer's CertID %x, request's %x", h, noParams, got, want)
		}
		return r
	}
	for _, h := range certIDHashes {
		for _, noParams := range []bool{false, true, false, true} { // twice: signed, then cached
			if r := ask(h.hash, noParams); r.Status != ocsp.Good {
				t.Fatalf("%v: status %d", h.hash, r.Status)
			}
		}
	}
	tr.revoke(t, "manufacturing", sn, time.Now(), ocsp.KeyCompromise)
	for _, h := range certIDHashes {
		for _, noParams := range []bool{false, true} {
			if r := ask(h.hash, noParams); r.Status != ocsp.Revoked {
				t.Fatalf("%v noParams=%v: status %d after the revocation: a cached form was not dropped", h.hash, noParams, r.Status)
			}
		}
	}
	// Other parameters are malformed.
	der := makeRequest(t, []reqID{{issuer: tr.ca, hash: crypto.SHA256, serial: sn}}, nil, nil)
	der = bytes.Replace(der, []byte{0x05, 0x00}, []byte{0x04, 0x00}, 1)
	wantError(t, tr.post(der), ocsp.MalformedRequestErrorResponse, "OCTET STRING parameters")
}

// TestMethods: 405 names the methods in Allow (it used to be lost to
// ctx.Error's reset), and HEAD is answered as GET is.
func TestMethods(t *testing.T) {
	tr := newTestResponder(t)
	sn := big.NewInt(77)
	tr.issue(t, "manufacturing", sn)
	for _, m := range []string{"PUT", "DELETE", "OPTIONS", "PATCH"} {
		resp := tr.do(m, "/manufacturing", nil)
		if resp.StatusCode() != 405 || string(resp.Header.Peek("Allow")) != "GET, HEAD, POST" {
			t.Fatalf("%s: %d, Allow %q", m, resp.StatusCode(), resp.Header.Peek("Allow"))
		}
	}
	der := makeRequest(t, []reqID{{issuer: tr.ca, serial: sn}}, nil, nil)
	uri := "/manufacturing/" + url.PathEscape(base64.StdEncoding.EncodeToString(der))
	get, head := tr.do("GET", uri, nil), tr.do("HEAD", uri, nil)
	tr.parse(t, get, sn, tr.ca)
	if head.StatusCode() != 200 || string(head.Header.ContentType()) != "application/ocsp-response" ||
		!bytes.Equal(etagOf(head), etagOf(get)) || len(head.Header.Peek("Cache-Control")) == 0 {
		t.Fatalf("HEAD: %d %s ETag %q (GET: %q)", head.StatusCode(), head.Header.ContentType(), etagOf(head), etagOf(get))
	}
}

// TestSeveralCertIDs: a request naming up to maxCertIDs certificates of
// one issuer gets one signed answer with a SingleResponse each, in the
// request's order, as sent, and is not cached; above the bound it is
// malformed, across issuers unauthorized.
func TestSeveralCertIDs(t *testing.T) {
	tr := newTestResponder(t)
	good, revoked, never := big.NewInt(1001), big.NewInt(1002), big.NewInt(1003)
	tr.issue(t, "manufacturing", good)
	tr.issue(t, "manufacturing", revoked)
	tr.revoke(t, "manufacturing", revoked, time.Now(), ocsp.Superseded)
	ids := []reqID{{issuer: tr.ca, serial: revoked}, {issuer: tr.ca, hash: crypto.SHA256, noParams: true, serial: good},
		{issuer: tr.ca, serial: never}, {issuer: tr.ca, hash: crypto.SHA384, serial: big.NewInt(-1)}}
	der := makeRequest(t, ids, exts(ext{oid: oidNonceExt}), nil)
	resp := tr.post(der)
	_, got := responseParts(t, resp.Body())
	want := requestCertIDs(t, der)
	if len(got) != len(want) {
		t.Fatalf("%d SingleResponses for %d CertIDs", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("SingleResponse %d has CertID %x, request's %x", i, got[i], want[i])
		}
	}
	for sn, st := range map[*big.Int]int{good: ocsp.Good, revoked: ocsp.Revoked, never: ocsp.Unknown, big.NewInt(-1): ocsp.Unknown} {
		if r := tr.parse(t, resp, sn, tr.ca); r.Status != st {
			t.Fatalf("serial %d: status %d, want %d", sn, r.Status, st)
		}
	}
	n := 0
	tr.cache.Range(func(any, any) bool { n++; return true })
	if n != 0 || tr.unknown.Len() != 0 {
		t.Fatalf("a multi-CertID answer went to the caches (%d, %d)", n, tr.unknown.Len())
	}
	var nine []reqID
	for range 9 {
		nine = append(nine, reqID{issuer: tr.ca, serial: good})
	}
	if r := tr.parse(t, tr.post(makeRequest(t, nine[:8], nil, nil)), good, tr.ca); r.Status != ocsp.Good {
		t.Fatalf("eight CertIDs: %+v", r)
	}
	wantError(t, tr.post(makeRequest(t, nine, nil, nil)), ocsp.MalformedRequestErrorResponse, "nine CertIDs")
	// Two issuers: each has its own delegated responder.
	tr.issue(t, "firmware", good)
	mixed := makeRequest(t, []reqID{{issuer: tr.ca, serial: good}, {issuer: tr.ca2, serial: good}}, nil, nil)
	wantError(t, tr.post(mixed), ocsp.UnauthorizedErrorResponse, "CertIDs of two issuers")
	if r := tr.parse(t, tr.post(makeRequest(t, []reqID{{issuer: tr.ca2, serial: good}, {issuer: tr.ca2, serial: never}}, nil, nil)), good, tr.ca2); r.Status != ocsp.Good {
		t.Fatalf("two CertIDs of the second issuer: %+v", r)
	}
}

// TestPOSTContentType: the media type is compared as a media type (case,
// parameters), a missing one is let through, another one refused.
func TestPOSTContentType(t *testing.T) {
	tr := newTestResponder(t)
	sn := big.NewInt(5)
	tr.issue(t, "manufacturing", sn)
	der := makeRequest(t, []reqID{{issuer: tr.ca, serial: sn}}, nil, nil)
	for _, tc := range []struct {
		ct string // "": no Content-Type
		ok bool
	}{
		{"application/ocsp-request", true},
		{"Application/OCSP-Request", true},
		{"application/ocsp-request; charset=binary", true},
		{"application/ocsp-request ;foo", true},
		{"", true},
		{"text/plain", false},
		{"application/ocsp-response", false},
		{"application/x-www-form-urlencoded", false},
	} {
		t.Run(tc.ct, func(t *testing.T) {
			var resp = tr.do("POST", "/manufacturing", der)
			if tc.ct != "" {
				resp = tr.do("POST", "/manufacturing", der, "Content-Type", tc.ct)
			}
			if tc.ok {
				if r := tr.parse(t, resp, sn, tr.ca); r.Status != ocsp.Good {
					t.Fatalf("status %d", r.Status)
				}
			} else {
				wantError(t, resp, ocsp.MalformedRequestErrorResponse, tc.ct)
			}
		})
	}
}

// TestGETTriesEverySuffix: a longer suffix of the path that base64-decodes
// to something starting with 0x30 but is no request does not hide the
// request after it.
func TestGETTriesEverySuffix(t *testing.T) {
	tr := newTestResponder(t)
	sn := big.NewInt(6)
	tr.issue(t, "manufacturing", sn)
	der := makeRequest(t, []reqID{{issuer: tr.ca, serial: sn}}, nil, nil)
	b64 := base64.StdEncoding.EncodeToString(der)
	// "MAA/" + b64 is valid base64 too, of 0x30 0x00 0x3f followed by the
	// request: the first suffix tried.
	if d, err := base64.StdEncoding.DecodeString("MAA/" + b64); err != nil || d[0] != 0x30 {
		t.Fatalf("the trap does not decode: %v", err)
	}
	for _, uri := range []string{"/MAA/" + b64, "/ocsp/MAA/" + b64, "/MAA/" + url.PathEscape(b64), "/" + base64.RawURLEncoding.EncodeToString(der)} {
		if r := tr.parse(t, tr.do("GET", uri, nil), sn, tr.ca); r.Status != ocsp.Good {
			t.Fatalf("%s: status %d", uri, r.Status)
		}
	}
	wantError(t, tr.do("GET", "/MAA/AAAA", nil), ocsp.MalformedRequestErrorResponse, "no request in the path")
}

// TestHashesAndSerials: SHA-384 and SHA-512 CertIDs are answered; one in
// another hash is unauthorized; serials of zero or below are answered
// unknown, signed, and never take the status of the positive serial of
// the same magnitude.
func TestHashesAndSerials(t *testing.T) {
	tr := newTestResponder(t)
	sn := big.NewInt(300)
	tr.issue(t, "manufacturing", sn)
	for _, h := range []crypto.Hash{crypto.SHA384, crypto.SHA512} {
		if r := tr.parse(t, tr.post(makeRequest(t, []reqID{{issuer: tr.ca, hash: h, serial: sn}}, nil, nil)), sn, tr.ca); r.Status != ocsp.Good || r.IssuerHash != h {
			t.Fatalf("%v: %+v", h, r)
		}
	}
	// SHA-224 (2.16.840.1.101.3.4.2.4) in place of SHA-256.
	der := makeRequest(t, []reqID{{issuer: tr.ca, hash: crypto.SHA256, serial: sn}}, nil, nil)
	der = bytes.Replace(der, []byte{0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01}, []byte{0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04}, 1)
	wantError(t, tr.post(der), ocsp.UnauthorizedErrorResponse, "SHA-224")
	for _, s := range []*big.Int{big.NewInt(0), big.NewInt(-300), big.NewInt(-1), new(big.Int).Neg(new(big.Int).Lsh(big.NewInt(1), 200))} {
		for range 2 { // signed, then from the unknown cache
			if r := tr.parse(t, tr.post(makeRequest(t, []reqID{{issuer: tr.ca, serial: s}}, nil, nil)), s, tr.ca); r.Status != ocsp.Unknown || r.SerialNumber.Cmp(s) != 0 {
				t.Fatalf("serial %d: status %d serial %d", s, r.Status, r.SerialNumber)
			}
		}
	}
	if r := tr.parse(t, tr.post(makeRequest(t, []reqID{{issuer: tr.ca, serial: sn}}, nil, nil)), sn, tr.ca); r.Status != ocsp.Good {
		t.Fatalf("serial 300 after -300: %d", r.Status)
	}
}

// TestCriticalExtensionsRefused: a critical extension other than the
// nonce is malformedRequest (RFC 6960 §4.4); the nonce, critical or not,
// is read and ignored.
func TestCriticalExtensionsRefused(t *testing.T) {
	tr := newTestResponder(t)
	sn := big.NewInt(8)
	tr.issue(t, "manufacturing", sn)
	for _, e := range [][]byte{nil, exts(ext{oid: oidNonceExt}), exts(ext{oid: oidNonceExt, critical: true}), exts(ext{oid: oidPrefSigAlgsExt})} {
		if r := tr.parse(t, tr.post(makeRequest(t, []reqID{{issuer: tr.ca, serial: sn}}, e, nil)), sn, tr.ca); r.Status != ocsp.Good {
			t.Fatalf("extensions %x: status %d", e, r.Status)
		}
	}
	wantError(t, tr.post(makeRequest(t, []reqID{{issuer: tr.ca, serial: sn}}, exts(ext{oid: oidPrefSigAlgsExt, critical: true}), nil)),
		ocsp.MalformedRequestErrorResponse, "critical preferred signature algorithms")
	wantError(t, tr.post(makeRequest(t, []reqID{{issuer: tr.ca, serial: sn, singleExts: exts(ext{oid: oidServiceLocatorExt, critical: true})}}, nil, nil)),
		ocsp.MalformedRequestErrorResponse, "critical service locator")
}

// TestBodyLimit: a signed request carrying certificates fits the default
// limit and is answered; a body above it gets malformedRequest as an OCSP
// answer (fasthttp's own limit, four times higher, is for TestErrors).
func TestBodyLimit(t *testing.T) {
	tr := newTestResponder(t)
	sn := big.NewInt(9)
	tr.issue(t, "manufacturing", sn)
	var chain [][]byte
	for len(bytes.Join(chain, nil)) < 10_000 {
		chain = append(chain, tr.ca.Raw, tr.ca2.Raw, tr.issuers[0].delegated.Load().cert.Raw)
	}
	signed := makeRequest(t, []reqID{{issuer: tr.ca, serial: sn}}, exts(ext{oid: oidNonceExt}), chain)
	if len(signed) < 10_000 || len(signed) > tr.cfg.MaxRequestBytes {
		t.Fatalf("signed request of %d bytes", len(signed))
	}
	if r := tr.parse(t, tr.post(signed), sn, tr.ca); r.Status != ocsp.Good {
		t.Fatalf("signed request: status %d", r.Status)
	}
	over := makeRequest(t, []reqID{{issuer: tr.ca, serial: sn}}, nil, append(chain, chain...))
	if len(over) <= tr.cfg.MaxRequestBytes {
		t.Fatalf("oversized request of %d bytes", len(over))
	}
	wantError(t, tr.post(over), ocsp.MalformedRequestErrorResponse, "over MaxRequestBytes")
}

// TestThisUpdateBackdated: thisUpdate is thisUpdateBackdate before the
// answer was made, or the revocation if that is later; nextUpdate is
// ResponseValidity after it was made; Last-Modified is thisUpdate and
// Expires nextUpdate (RFC 5019 §6.2), max-age within them.
func TestThisUpdateBackdated(t *testing.T) {
	tr := newTestResponder(t)
	good, revoked, longAgo := big.NewInt(10), big.NewInt(11), big.NewInt(12)
	for _, sn := range []*big.Int{good, revoked, longAgo} {
		tr.issue(t, "manufacturing", sn)
	}
	revokedAt := time.Now().Add(-time.Minute).Truncate(time.Second)
	tr.revoke(t, "manufacturing", revoked, revokedAt, ocsp.KeyCompromise)
	tr.revoke(t, "manufacturing", longAgo, time.Now().Add(-48*time.Hour), ocsp.KeyCompromise)
	for sn, back := range map[*big.Int]time.Duration{good: thisUpdateBackdate, revoked: time.Since(revokedAt), longAgo: thisUpdateBackdate} {
		before := time.Now().Truncate(time.Second)
		resp := tr.post(makeRequest(t, []reqID{{issuer: tr.ca, serial: sn}}, nil, nil))
		after := time.Now()
		r := tr.parse(t, resp, sn, tr.ca)
		produced := r.ProducedAt
		if produced.Before(before) || produced.After(after) {
			t.Fatalf("serial %d: producedAt %s not now", sn, produced)
		}
		if d := produced.Sub(r.ThisUpdate); d < back-time.Second || d > back+time.Second {
			t.Fatalf("serial %d: thisUpdate %s before producedAt, want %s", sn, d, back)
		}
		if !r.NextUpdate.Equal(produced.Add(time.Hour)) {
			t.Fatalf("serial %d: nextUpdate %s, producedAt %s", sn, r.NextUpdate, produced)
		}
		lm, _ := time.Parse(httpDate, string(resp.Header.Peek("Last-Modified")))
		exp, _ := time.Parse(httpDate, string(resp.Header.Peek("Expires")))
		var maxAge int
		fmt.Sscanf(string(resp.Header.Peek("Cache-Control")), "max-age=%d", &maxAge)
		if !lm.Equal(r.ThisUpdate) || !exp.Equal(r.NextUpdate) || maxAge <= 0 || after.Add(time.Duration(maxAge)*time.Second).After(r.NextUpdate) {
			t.Fatalf("serial %d: Last-Modified %s Expires %s max-age %d; thisUpdate %s nextUpdate %s", sn, lm, exp, maxAge, r.ThisUpdate, r.NextUpdate)
		}
	}
}

// TestConditionalRequests: If-None-Match, then If-Modified-Since, on GET
// and HEAD only (RFC 9110 §13.2.2).
func TestConditionalRequests(t *testing.T) {
	tr := newTestResponder(t)
	sn := big.NewInt(13)
	tr.issue(t, "manufacturing", sn)
	// The issuance happened in an earlier second (TestIfModifiedSinceAfterAChange
	// is about the same one).
	der := makeRequest(t, []reqID{{issuer: tr.ca, serial: sn}}, nil, nil)
	uri := "/manufacturing/" + base64.URLEncoding.EncodeToString(der)
	first := tr.do("GET", uri, nil)
	etag, lastMod := string(etagOf(first)), string(first.Header.Peek("Last-Modified"))
	lm, _ := time.Parse(httpDate, lastMod)
	later, earlier := lm.Add(time.Minute).Format(httpDate), lm.Add(-time.Second).Format(httpDate)
	for _, tc := range []struct {
		name, method string
		hdr          []string
		want         int
	}{
		{"INM ours", "GET", []string{"If-None-Match", etag}, 304},
		{"INM ours on HEAD", "HEAD", []string{"If-None-Match", etag}, 304},
		{"INM weak ours in a list", "GET", []string{"If-None-Match", `"x", W/` + etag + ` , "y"`}, 304},
		{"INM *", "GET", []string{"If-None-Match", "*"}, 304},
		{"INM another", "GET", []string{"If-None-Match", `"` + strings.Repeat("a", 32) + `"`}, 200},
		{"INM a tag holding ours", "GET", []string{"If-None-Match", `"00` + etag[1:]}, 200},
		{"INM on POST", "POST", []string{"If-None-Match", etag, "Content-Type", "application/ocsp-request"}, 200},
		{"INM * on POST", "POST", []string{"If-None-Match", "*", "Content-Type", "application/ocsp-request"}, 200},
		{"IMS Last-Modified", "GET", []string{"If-Modified-Since", lastMod}, 200},
		{"IMS later", "HEAD", []string{"If-Modified-Since", later}, 200},
		{"IMS earlier", "GET", []string{"If-Modified-Since", earlier}, 200},
		{"IMS not a date", "GET", []string{"If-Modified-Since", "yesterday"}, 200},
		{"IMS on POST", "POST", []string{"If-Modified-Since", later, "Content-Type", "application/ocsp-request"}, 200},
		{"INM another wins over IMS", "GET", []string{"If-None-Match", `"nope"`, "If-Modified-Since", later}, 200},
		{"INM ours wins over IMS", "GET", []string{"If-None-Match", etag, "If-Modified-Since", earlier}, 304},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, body := uri, []byte(nil)
			if tc.method == "POST" {
				u, body = "/manufacturing", der
			}
			resp := tr.do(tc.method, u, body, tc.hdr...)
			if resp.StatusCode() != tc.want || string(etagOf(resp)) != etag {
				t.Fatalf("%d ETag %s, want %d", resp.StatusCode(), etagOf(resp), tc.want)
			}
			if tc.want == 304 && len(resp.Body()) != 0 {
				t.Fatalf("304 with a body")
			}
		})
	}
}

// TestIfModifiedSinceIgnored: a client revalidating a good answer with a
// date later than the revoked answer's thisUpdate (its last fetch, or a
// lagging replica's answer) gets the revoked answer, not a 304.
func TestIfModifiedSinceIgnored(t *testing.T) {
	tr := newTestResponder(t)
	sn := big.NewInt(14)
	tr.issue(t, "manufacturing", sn)
	uri := "/m/" + base64.StdEncoding.EncodeToString(makeRequest(t, []reqID{{issuer: tr.ca, serial: sn}}, nil, nil))
	good := tr.do("GET", uri, nil)
	tr.revoke(t, "manufacturing", sn, time.Now(), 1)
	later := time.Now().Add(time.Hour).UTC().Format(httpDate)
	resp := tr.do("GET", uri, nil, "If-Modified-Since", later)
	if resp.StatusCode() != 200 || bytes.Equal(resp.Body(), good.Body()) {
		t.Fatalf("If-Modified-Since after a revocation: %d, the old answer again: %v", resp.StatusCode(), bytes.Equal(resp.Body(), good.Body()))
	}
}
