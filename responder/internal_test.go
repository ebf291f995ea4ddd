package responder

import (
	"bytes"
	"crypto"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"log/slog"
	"math/big"
	"strings"
	"testing"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/valyala/fasthttp"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
	"golang.org/x/crypto/ocsp"

	"github.com/certmill/certmill/pkg/ledger"
)

// TestTryLaterUntilCaughtUp: before the store has caught up with the
// ledger every answer is tryLater, never a status.
func TestTryLaterUntilCaughtUp(t *testing.T) {
	r := &Responder{cfg: &Config{MaxRequestBytes: 4096}}
	der := validRequest(t)
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("POST")
	ctx.Request.SetRequestURI("/manufacturing")
	ctx.Request.Header.SetContentType("application/ocsp-request")
	ctx.Request.SetBody(der)
	r.handle(&ctx)
	if !bytes.Equal(ctx.Response.Body(), ocsp.TryLaterErrorResponse) {
		t.Fatalf("before catching up: %x, want tryLater", ctx.Response.Body())
	}
}

func validRequest(t testing.TB) []byte {
	t.Helper()
	// A fixed request: SHA-1 CertID, serial 0x0102.
	b, err := base64.StdEncoding.DecodeString("MEMwQTA/MD0wOzAJBgUrDgMCGgUABBQAAAAAAAAAAAAAAAAAAAAAAAAAAAQUAAAAAAAAAAAAAAAAAAAAAAAAAAACAgEC")
	if err != nil {
		t.Fatal(err)
	}
	var q request
	if err := decodeRequest(b, &q); err != nil {
		t.Fatalf("seed request does not decode: %v", err)
	}
	return b
}

// intContent is n's INTEGER content octets (minimal two's complement).
func intContent(n *big.Int) []byte {
	var b cryptobyte.Builder
	b.AddASN1BigInt(n)
	der := cryptobyte.String(b.BytesOrPanic())
	var c cryptobyte.String
	der.ReadASN1(&c, cbasn1.INTEGER)
	return c
}

// serialInt is the serial as a number.
func (id *certID) serialInt() *big.Int {
	n := new(big.Int).SetBytes(id.serial)
	if id.serial[0]&0x80 != 0 { // two's complement: subtract 2^(8*len)
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(id.serial))))
	}
	return n
}

// reqID is one CertID of a request made for a test.
type reqID struct {
	issuer   *x509.Certificate
	hash     crypto.Hash // 0: SHA-1
	noParams bool        // hashAlgorithm without parameters, else NULL
	serial   *big.Int
	// singleExts is the Request's singleRequestExtensions (see exts).
	singleExts []byte
}

// certIDOf is the CertID a client makes of id.
func certIDOf(t testing.TB, id reqID) certID {
	t.Helper()
	h := id.hash
	if h == 0 {
		h = crypto.SHA1
	}
	bits, err := publicKeyBits(id.issuer.RawSubjectPublicKeyInfo)
	if err != nil {
		t.Fatal(err)
	}
	nh, kh := h.New(), h.New()
	nh.Write(id.issuer.RawSubject)
	kh.Write(bits)
	return certID{hash: h, noParams: id.noParams, nameHash: nh.Sum(nil), keyHash: kh.Sum(nil), serial: intContent(id.serial)}
}

// makeRequest encodes an OCSPRequest for tests: ids in order, reqExts
// (see exts) as requestExtensions, and when sigCerts is not nil an
// optionalSignature carrying those certificates (its signature is junk:
// the responder does not check it).
func makeRequest(t testing.TB, ids []reqID, reqExts []byte, sigCerts [][]byte) []byte {
	t.Helper()
	var cids []certID
	var singles [][]byte
	for _, id := range ids {
		cids = append(cids, certIDOf(t, id))
		singles = append(singles, id.singleExts)
	}
	return encodeCertIDs(cids, singles, reqExts, sigCerts)
}

// encodeCertIDs encodes an OCSPRequest of ids, which must be in hashes of
// certIDHashes; singles[i], when there, is ids[i]'s singleRequestExtensions.
func encodeCertIDs(ids []certID, singles [][]byte, reqExts []byte, sigCerts [][]byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // OCSPRequest
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // TBSRequest
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // requestList
				for i, id := range ids {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // Request
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // CertID
							b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
								for _, h := range certIDHashes {
									if h.hash == id.hash {
										b.AddASN1ObjectIdentifier(h.oid)
									}
								}
								if !id.noParams {
									b.AddASN1NULL()
								}
							})
							b.AddASN1OctetString(id.nameHash)
							b.AddASN1OctetString(id.keyHash)
							b.AddASN1(cbasn1.INTEGER, func(b *cryptobyte.Builder) { b.AddBytes(id.serial) })
						})
						if i < len(singles) && singles[i] != nil {
							b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(singles[i]) })
						}
					})
				}
			})
			if reqExts != nil {
				b.AddASN1(cbasn1.Tag(2).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(reqExts) })
			}
		})
		if sigCerts != nil {
			b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // Signature
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2})
					})
					b.AddASN1BitString(bytes.Repeat([]byte{0x42}, 70))
					b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							for _, c := range sigCerts {
								b.AddBytes(c)
							}
						})
					})
				})
			})
		}
	})
	return b.BytesOrPanic()
}

type ext struct {
	oid      asn1.ObjectIdentifier
	critical bool
}

var (
	oidNonceExt          = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}
	oidServiceLocatorExt = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 7}
	oidPrefSigAlgsExt    = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 8}
)

// exts encodes Extensions with an empty OCTET STRING as each value.
func exts(es ...ext) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, e := range es {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(e.oid)
				if e.critical {
					b.AddASN1Boolean(true)
				}
				b.AddASN1OctetString([]byte{0x04, 0x02, 0xab, 0xcd})
			})
		}
	})
	return b.BytesOrPanic()
}

// responseParts returns an OCSPResponse's ResponderID and the CertIDs of
// its SingleResponses, as DER, in order.
func responseParts(t testing.TB, der []byte) (responderID []byte, certIDs [][]byte) {
	t.Helper()
	in := cryptobyte.String(der)
	var resp, rb, octets, basic, tbs, responses cryptobyte.String
	var oid asn1.ObjectIdentifier
	var status int
	if !in.ReadASN1(&resp, cbasn1.SEQUENCE) || !resp.ReadASN1Enum(&status) || status != 0 ||
		!resp.ReadASN1(&rb, cbasn1.Tag(0).Constructed().ContextSpecific()) || !rb.ReadASN1(&rb, cbasn1.SEQUENCE) ||
		!rb.ReadASN1ObjectIdentifier(&oid) || !rb.ReadASN1(&octets, cbasn1.OCTET_STRING) ||
		!octets.ReadASN1(&basic, cbasn1.SEQUENCE) || !basic.ReadASN1(&tbs, cbasn1.SEQUENCE) ||
		!tbs.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) {
		t.Fatalf("not a successful basic OCSP response: %x", der)
	}
	var rid cryptobyte.String
	var tag cbasn1.Tag
	if !tbs.ReadAnyASN1Element(&rid, &tag) || !tbs.SkipASN1(cbasn1.GeneralizedTime) || !tbs.ReadASN1(&responses, cbasn1.SEQUENCE) {
		t.Fatalf("bad ResponseData: %x", der)
	}
	for !responses.Empty() {
		var sr, cid cryptobyte.String
		if !responses.ReadASN1(&sr, cbasn1.SEQUENCE) || !sr.ReadASN1Element(&cid, cbasn1.SEQUENCE) {
			t.Fatalf("bad SingleResponse: %x", der)
		}
		certIDs = append(certIDs, cid)
	}
	return rid, certIDs
}

// requestCertIDs returns the CertIDs of an OCSPRequest, as DER, in order.
func requestCertIDs(t testing.TB, der []byte) [][]byte {
	t.Helper()
	in := cryptobyte.String(der)
	var req, tbs, list cryptobyte.String
	if !in.ReadASN1(&req, cbasn1.SEQUENCE) || !req.ReadASN1(&tbs, cbasn1.SEQUENCE) || !tbs.ReadASN1(&list, cbasn1.SEQUENCE) {
		t.Fatalf("not a request: %x", der)
	}
	var out [][]byte
	for !list.Empty() {
		var one, cid cryptobyte.String
		if !list.ReadASN1(&one, cbasn1.SEQUENCE) || !one.ReadASN1Element(&cid, cbasn1.SEQUENCE) {
			t.Fatalf("bad Request: %x", der)
		}
		out = append(out, cid)
	}
	return out
}

// testResponder is a Responder over a store in a temporary folder, with
// two issuers whose delegated responders have keys in memory: no HSM, no
// ledger, no network. Records go in with issue and revoke.
type testResponder struct {
	*Responder
	ca  *x509.Certificate // issuer "manufacturing"
	ca2 *x509.Certificate // issuer "firmware"
	seq uint64
}

func newTestResponder(t testing.TB) *testResponder {
	t.Helper()
	st, err := openStore(t.TempDir(), 1000, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.close() })
	r := &Responder{cfg: &Config{ResponseValidity: time.Hour, ResponderValidity: 48 * time.Hour}, log: slog.New(slog.DiscardHandler), st: st}
	r.cfg.Defaults()
	st.onChange = r.forget
	r.unknown, _ = lru.New[cacheKey, *answer](100)
	tr := &testResponder{Responder: r}
	for i, name := range []string{"manufacturing", "firmware"} {
		ca, dcert, key := testCA(t, elliptic.P256(), name+" CA")
		is, err := newIssuer(name, ca, nil)
		if err != nil {
			t.Fatal(err)
		}
		enc, err := newEncoder(is, dcert, key)
		if err != nil {
			t.Fatal(err)
		}
		is.delegated.Store(&delegated{cert: dcert, key: key, enc: enc})
		r.issuers = append(r.issuers, is)
		if i == 0 {
			tr.ca = ca
		} else {
			tr.ca2 = ca
		}
	}
	r.caught.Store(true)
	return tr
}

func (tr *testResponder) apply(t testing.TB, rec ledger.Record) {
	t.Helper()
	tr.seq++
	if err := tr.st.Apply([]ledger.Entry{{Seq: tr.seq, Record: rec}}, tr.seq); err != nil {
		t.Fatal(err)
	}
}

func (tr *testResponder) issue(t testing.TB, issuer string, sn *big.Int) {
	tr.apply(t, ledger.Record{Kind: ledger.KindIssued, Issued: &ledger.Issued{Issuer: issuer, Serial: sn.Bytes(), NotAfter: time.Now().Add(time.Hour).Unix()}})
}

func (tr *testResponder) revoke(t testing.TB, issuer string, sn *big.Int, at time.Time, reason int) {
	tr.apply(t, ledger.Record{Kind: ledger.KindRevoked, Revoked: &ledger.Revoked{Issuer: issuer, Serial: sn.Bytes(), Time: at.UnixNano(), Reason: reason, NotAfter: time.Now().Add(time.Hour).Unix()}})
}

// do runs the handler on one request; hdr is name, value, name, value...
func (tr *testResponder) do(method, uri string, body []byte, hdr ...string) *fasthttp.Response {
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI(uri)
	for i := 0; i+1 < len(hdr); i += 2 {
		ctx.Request.Header.Set(hdr[i], hdr[i+1])
	}
	if body != nil {
		ctx.Request.SetBody(body)
	}
	tr.handle(&ctx)
	var resp fasthttp.Response
	ctx.Response.CopyTo(&resp)
	return &resp
}

// post POSTs der as application/ocsp-request.
func (tr *testResponder) post(der []byte) *fasthttp.Response {
	return tr.do("POST", "/manufacturing", der, "Content-Type", "application/ocsp-request")
}

// parse checks that resp is a signed answer of one of tr's issuers and
// returns the SingleResponse about sn.
func (tr *testResponder) parse(t testing.TB, resp *fasthttp.Response, sn *big.Int, issuer *x509.Certificate) *ocsp.Response {
	t.Helper()
	if resp.StatusCode() != 200 || string(resp.Header.ContentType()) != "application/ocsp-response" {
		t.Fatalf("HTTP %d %s", resp.StatusCode(), resp.Header.ContentType())
	}
	r, err := ocsp.ParseResponseForCert(resp.Body(), &x509.Certificate{SerialNumber: sn}, issuer)
	if err != nil {
		t.Fatalf("%v (%x)", err, resp.Body())
	}
	return r
}

// etagOf is resp's ETag: fasthttp's Peek looks for "Etag", and the
// responder sets the header as RFC 9110 spells it.
func etagOf(resp *fasthttp.Response) []byte {
	for k, v := range resp.Header.All() {
		if strings.EqualFold(string(k), "ETag") {
			return v
		}
	}
	return nil
}

func wantError(t testing.TB, resp *fasthttp.Response, want []byte, what string) {
	t.Helper()
	if resp.StatusCode() != 200 || !bytes.Equal(resp.Body(), want) || string(resp.Header.ContentType()) != "application/ocsp-response" ||
		string(resp.Header.Peek("Cache-Control")) != "max-age=0, no-cache" {
		t.Fatalf("%s: HTTP %d %s %q, body %x; want %x", what, resp.StatusCode(), resp.Header.ContentType(), resp.Header.Peek("Cache-Control"), resp.Body(), want)
	}
}

// FuzzDecodeRequest: the POST body and the GET path come from the
// network. Decoding never panics; a request that decodes has 1 to
// maxCertIDs CertIDs, reads as x/crypto/ocsp reads its first one when
// x/crypto reads it, and re-encodes to a request that decodes the same.
func FuzzDecodeRequest(f *testing.F) {
	der := validRequest(f)
	f.Add(der, "/manufacturing/"+base64.StdEncoding.EncodeToString(der))
	f.Add([]byte{0x30, 0x00}, "/x/MAA=")
	f.Add([]byte{}, "/")
	ca, _, _ := testCA(f, elliptic.P256(), "fuzz CA")
	for _, seed := range [][]byte{
		makeRequest(f, []reqID{{issuer: ca, hash: crypto.SHA256, noParams: true, serial: big.NewInt(-7)}}, nil, nil),
		makeRequest(f, []reqID{{issuer: ca, serial: big.NewInt(1)}, {issuer: ca, hash: crypto.SHA512, serial: big.NewInt(0)},
			{issuer: ca, hash: crypto.SHA384, serial: big.NewInt(0x80), singleExts: exts(ext{oid: oidServiceLocatorExt})}}, exts(ext{oid: oidNonceExt, critical: true}), nil),
		makeRequest(f, []reqID{{issuer: ca, serial: big.NewInt(3)}}, nil, [][]byte{ca.Raw}),
	} {
		f.Add(seed, "/manufacturing/"+base64.URLEncoding.EncodeToString(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte, path string) {
		var q request
		check := func(in []byte) {
			if q.n < 1 || q.n > maxCertIDs {
				t.Fatalf("%d CertIDs", q.n)
			}
			id := &q.ids[0]
			if ref, err := ocsp.ParseRequest(in); in != nil && err == nil && id.hash != 0 {
				if ref.SerialNumber.Cmp(id.serialInt()) != 0 || ref.HashAlgorithm != id.hash ||
					!bytes.Equal(ref.IssuerKeyHash, id.keyHash) || !bytes.Equal(ref.IssuerNameHash, id.nameHash) {
					t.Fatalf("decodeRequest and ocsp.ParseRequest disagree: %+v", ref)
				}
			}
			for _, id := range q.certIDs() {
				if id.hash == 0 {
					return // a hash we cannot name; answered unauthorized
				}
			}
			again := encodeCertIDs(q.certIDs(), nil, nil, nil)
			var q2 request
			if err := decodeRequest(again, &q2); err != nil || q2.n != q.n {
				t.Fatalf("round trip: %v, %d CertIDs of %d", err, q2.n, q.n)
			}
			for i, id := range q.certIDs() {
				id2 := q2.ids[i]
				if id2.hash != id.hash || id2.noParams != id.noParams || !bytes.Equal(id2.serial, id.serial) ||
					!bytes.Equal(id2.nameHash, id.nameHash) || !bytes.Equal(id2.keyHash, id.keyHash) {
					t.Fatalf("round trip of CertID %d: %+v, was %+v", i, id2, id)
				}
			}
		}
		if decodeRequest(body, &q) == nil {
			check(body)
		}
		if requestFromGET(path, &q) == nil {
			check(nil)
		}
	})
}
