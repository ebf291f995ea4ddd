package responder

import (
	"bytes"
	"crypto"
	_ "crypto/sha1" // CertID hashes
	"crypto/sha256"
	_ "crypto/sha512"
	encasn1 "encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"mime"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
	"golang.org/x/crypto/ocsp"
)

// errMalformed is a request that does not decode as an OCSPRequest we
// read: see decodeRequest.
var errMalformed = errors.New("responder: malformed request")

// maxCertIDs is how many CertIDs one request may name. RFC 6960 §4.1.1
// allows a list; OpenSSL sends one per -serial or -cert. Each is a
// SingleResponse in the one signed answer, so the bound caps what a
// request costs; above it the answer is malformedRequest.
const maxCertIDs = 8

// certIDHashes are the hash algorithms the responder answers CertIDs in,
// with their OIDs (RFC 6960 §4.1.1 uses SHA-1; RFC 5754 §2 the SHA-2s).
var certIDHashes = []struct {
	hash crypto.Hash
	oid  encasn1.ObjectIdentifier
	der  []byte // the OID's content octets
}{
	{crypto.SHA1, encasn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}, nil},
	{crypto.SHA256, encasn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}, nil},
	{crypto.SHA384, encasn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}, nil},
	{crypto.SHA512, encasn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}, nil},
}

// oidNonce is id-pkix-ocsp-nonce's content octets (RFC 6960 §4.4.1).
var oidNonce = oidContent(encasn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2})

func init() {
	for i := range certIDHashes {
		certIDHashes[i].der = oidContent(certIDHashes[i].oid)
	}
}

func oidContent(oid encasn1.ObjectIdentifier) []byte {
	var b cryptobyte.Builder
	b.AddASN1ObjectIdentifier(oid)
	der := cryptobyte.String(b.BytesOrPanic())
	var c cryptobyte.String
	der.ReadASN1(&c, asn1.OBJECT_IDENTIFIER)
	return c
}

// certID is one CertID of a request, its slices into the request's DER.
type certID struct {
	// hash is the CertID's hash algorithm; 0 for one not in certIDHashes
	// (the answer is then unauthorized: we cannot name an issuer in it).
	hash crypto.Hash
	// noParams: the hashAlgorithm AlgorithmIdentifier had no parameters
	// (RFC 5754 §2: "the parameters field MUST be absent" for SHA-2, as
	// BouncyCastle sends) rather than NULL (RFC 6960's SHA-1 form, OpenSSL
	// and x/crypto for every hash). The answer's CertID echoes the form
	// sent: clients match it by ASN.1 equality.
	noParams          bool
	nameHash, keyHash []byte
	// serial is the serialNumber INTEGER's content octets: minimal two's
	// complement, so one value has one form (a positive serial whose first
	// octet has its high bit set starts with 0x00).
	serial []byte
}

// magnitude returns the serial's octets as the store keys them, and false
// for a serial of zero or below, which no certificate of ours has.
func (id *certID) magnitude() ([]byte, bool) {
	s := id.serial
	if s[0]&0x80 != 0 || len(s) == 1 && s[0] == 0 {
		return nil, false
	}
	if s[0] == 0 {
		s = s[1:]
	}
	return s, true
}

// serialKey is the content octets of the positive INTEGER whose octets,
// as the store keys them, are mag: certID.serial's form.
func serialKey(mag []byte) string {
	if len(mag) > 0 && mag[0]&0x80 != 0 {
		return "\x00" + string(mag)
	}
	return string(mag)
}

// request is a decoded OCSPRequest: its CertIDs in order.
type request struct {
	n   int
	ids [maxCertIDs]certID
}

func (q *request) certIDs() []certID { return q.ids[:q.n] }

// decodeRequest parses a DER OCSPRequest (RFC 6960 §4.1.1) into q, without
// reflection: it is on every request's path. It refuses (errMalformed)
// what is not one, no CertID or more than maxCertIDs, a CertID in one of
// certIDHashes with hashes of the wrong length or hashAlgorithm
// parameters other than absent or NULL, and a critical extension other
// than the nonce (RFC 6960 §4.4: "unrecognized critical extensions"). A
// signature and a requestorName are skipped: the responder answers the
// same to everyone. Serials of any sign and a hash we do not answer in are
// read: they get a signed unknown and unauthorized, not malformedRequest.
//
//	OCSPRequest ::= SEQUENCE { tbsRequest, optionalSignature [0] EXPLICIT Signature OPTIONAL }
//	TBSRequest  ::= SEQUENCE { version [0] EXPLICIT DEFAULT v1, requestorName [1] EXPLICIT OPTIONAL,
//	                           requestList SEQUENCE OF Request, requestExtensions [2] EXPLICIT OPTIONAL }
//	Request     ::= SEQUENCE { reqCert CertID, singleRequestExtensions [0] EXPLICIT OPTIONAL }
//	CertID      ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier, issuerNameHash OCTET STRING,
//	                           issuerKeyHash OCTET STRING, serialNumber CertificateSerialNumber }
func decodeRequest(der []byte, q *request) error {
	q.n = 0
	in := cryptobyte.String(der)
	var outer, tbs, list, exts cryptobyte.String
	var hasExts bool
	if !in.ReadASN1(&outer, asn1.SEQUENCE) || !in.Empty() ||
		!outer.ReadASN1(&tbs, asn1.SEQUENCE) ||
		!outer.SkipOptionalASN1(asn1.Tag(0).Constructed().ContextSpecific()) || !outer.Empty() ||
		!tbs.SkipOptionalASN1(asn1.Tag(0).Constructed().ContextSpecific()) ||
		!tbs.SkipOptionalASN1(asn1.Tag(1).Constructed().ContextSpecific()) ||
		!tbs.ReadASN1(&list, asn1.SEQUENCE) ||
		!tbs.ReadOptionalASN1(&exts, &hasExts, asn1.Tag(2).Constructed().ContextSpecific()) || !tbs.Empty() ||
		hasExts && !extensionsOK(exts, true) || list.Empty() {
		return errMalformed
	}
	for !list.Empty() {
		if q.n == maxCertIDs {
			return errMalformed
		}
		var one cryptobyte.String
		var hasSingle bool
		if !list.ReadASN1(&one, asn1.SEQUENCE) || !readCertID(&one, &q.ids[q.n]) ||
			!one.ReadOptionalASN1(&exts, &hasSingle, asn1.Tag(0).Constructed().ContextSpecific()) || !one.Empty() ||
			hasSingle && !extensionsOK(exts, false) {
			return errMalformed
		}
		q.n++
	}
	return nil
}

func readCertID(in *cryptobyte.String, id *certID) bool {
	var c, alg, oid, sn cryptobyte.String
	if !in.ReadASN1(&c, asn1.SEQUENCE) ||
		!c.ReadASN1(&alg, asn1.SEQUENCE) || !alg.ReadASN1(&oid, asn1.OBJECT_IDENTIFIER) ||
		!c.ReadASN1Bytes(&id.nameHash, asn1.OCTET_STRING) || !c.ReadASN1Bytes(&id.keyHash, asn1.OCTET_STRING) ||
		!c.ReadASN1(&sn, asn1.INTEGER) || !c.Empty() || !minimalInteger(sn) {
		return false
	}
	id.serial = sn
	id.hash = 0
	for _, h := range certIDHashes {
		if bytes.Equal(oid, h.der) {
			id.hash = h.hash
			break
		}
	}
	if id.hash == 0 {
		// Not a hash we answer in: well formed is enough, the answer is
		// unauthorized. The OID is checked the slow way, this is rare.
		var o encasn1.ObjectIdentifier
		var b cryptobyte.Builder
		b.AddASN1(asn1.OBJECT_IDENTIFIER, func(b *cryptobyte.Builder) { b.AddBytes(oid) })
		full := cryptobyte.String(b.BytesOrPanic())
		return full.ReadASN1ObjectIdentifier(&o)
	}
	// RFC 5754 §2 (SHA-2: absent) and RFC 6960's SHA-1 form (NULL), nothing else.
	id.noParams = alg.Empty()
	var null cryptobyte.String
	if !id.noParams && (!alg.ReadASN1(&null, asn1.NULL) || len(null) != 0 || !alg.Empty()) {
		return false // a NULL with content would not be echoed as sent
	}
	return len(id.nameHash) == id.hash.Size() && len(id.keyHash) == id.hash.Size()
}

// minimalInteger reports whether b is an INTEGER's content in DER: at
// least one octet, no redundant leading 0x00 or 0xff.
func minimalInteger(b []byte) bool {
	return len(b) == 1 || len(b) > 1 && !(b[0] == 0 && b[1]&0x80 == 0 || b[0] == 0xff && b[1]&0x80 != 0)
}

// extensionsOK reads the content of an [n] EXPLICIT Extensions and
// reports whether it is well formed with no critical extension we do not
// know: the nonce, where nonce is true, is known and ignored (RFC 5019 §4).
//
//	Extension ::= SEQUENCE { extnID OBJECT IDENTIFIER, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }
func extensionsOK(in cryptobyte.String, nonce bool) bool {
	var list cryptobyte.String
	if !in.ReadASN1(&list, asn1.SEQUENCE) || !in.Empty() {
		return false
	}
	for !list.Empty() {
		var ext, oid, crit cryptobyte.String
		var hasCrit bool
		if !list.ReadASN1(&ext, asn1.SEQUENCE) || !ext.ReadASN1(&oid, asn1.OBJECT_IDENTIFIER) ||
			!ext.ReadOptionalASN1(&crit, &hasCrit, asn1.BOOLEAN) || hasCrit && len(crit) != 1 ||
			!ext.SkipASN1(asn1.OCTET_STRING) || !ext.Empty() {
			return false
		}
		// BER's TRUE is any non-zero octet; DER's 0xff.
		if hasCrit && crit[0] != 0 && !(nonce && bytes.Equal(oid, oidNonce)) {
			return false
		}
	}
	return true
}

// requestFromGET decodes the last path segment of a GET into q: base64 of
// the DER, URL-encoded or not (RFC 6960 appendix A.1; RFC 5019 §5).
// Unencoded base64 may itself hold slashes, so every suffix after a slash
// is tried, longest first, until one decodes as a request.
func requestFromGET(path string, q *request) error {
	for i := 0; i < len(path); i++ {
		if path[i] != '/' {
			continue
		}
		seg := path[i+1:]
		if u, err := url.PathUnescape(seg); err == nil {
			seg = u
		}
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if b, err := enc.DecodeString(seg); err == nil && len(b) > 0 && b[0] == 0x30 && decodeRequest(b, q) == nil {
				return nil
			}
		}
	}
	q.n = 0
	return errMalformed
}

// ocspRequestType reports whether a POST with Content-Type ct is read as
// an OCSP request: application/ocsp-request, in any case and with any
// parameters (RFC 9110 §8.3.1), or no Content-Type at all. RFC 6960
// appendix A.1 has clients send it, but some do not, and the body is
// then read when it decodes; another explicit type is refused.
func ocspRequestType(ct []byte) bool {
	if len(ct) == 0 || string(ct) == "application/ocsp-request" {
		return true
	}
	mt, _, err := mime.ParseMediaType(string(ct))
	return (err == nil || errors.Is(err, mime.ErrInvalidMediaParameter)) && mt == "application/ocsp-request"
}

// request decodes the request of a GET, HEAD or POST into q.
func (r *Responder) request(ctx *fasthttp.RequestCtx, q *request) error {
	if ctx.IsPost() {
		// A body above MaxRequestBytes but below the server's hard limit
		// is read and refused here, as an OCSP answer.
		if body := ctx.PostBody(); ocspRequestType(ctx.Request.Header.ContentType()) && len(body) <= r.cfg.MaxRequestBytes {
			return decodeRequest(body, q)
		}
		return errMalformed
	}
	// fasthttp has normalised the path: take the raw one.
	raw := string(ctx.Request.Header.RequestURI())
	if i := strings.IndexByte(raw, '?'); i >= 0 {
		raw = raw[:i]
	}
	if len(raw) > 2*r.cfg.MaxRequestBytes {
		return errMalformed
	}
	return requestFromGET(raw, q)
}

func (r *Responder) fail(ctx *fasthttp.RequestCtx, body []byte) {
	ctx.SetContentType("application/ocsp-response")
	ctx.Response.Header.Set("Cache-Control", "max-age=0, no-cache")
	ctx.SetBody(body)
}

// errorHandler answers what fasthttp refused before the handler: a body
// above the server's hard limit (4 × MaxRequestBytes) gets 413, the
// connection closed without reading it (fasthttp would say 400); the rest
// as fasthttp's default handler does.
func errorHandler(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	var netErr *net.OpError
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		ctx.Error("request body too large: OCSP requests are small (RFC 6960)\n", fasthttp.StatusRequestEntityTooLarge)
	case errors.As(err, &small):
		ctx.Error("Too big request header", fasthttp.StatusRequestHeaderFieldsTooLarge)
	case errors.As(err, &netErr) && netErr.Timeout():
		ctx.Error("Request timeout", fasthttp.StatusRequestTimeout)
	default:
		ctx.Error("Error when parsing request", fasthttp.StatusBadRequest)
	}
}

func (r *Responder) handle(ctx *fasthttp.RequestCtx) {
	switch string(ctx.Path()) {
	case "/healthz":
		ctx.SetBodyString("ok\n")
		return
	case "/metrics":
		r.metrics(ctx)
		return
	case "/readyz":
		// The last applied ledger sequence, for monitoring the lag.
		seq, _ := r.st.lastSeq()
		ctx.Response.Header.Set("Certmill-Applied-Seq", strconv.FormatUint(seq, 10))
		if !r.Ready() {
			ctx.SetStatusCode(503)
			ctx.SetBodyString("behind the ledger: answering tryLater\n")
			return
		}
		ctx.SetBodyString("ready\n")
		return
	}
	// RFC 9110 §9.3.2: HEAD is GET without the body (fasthttp drops it).
	get := ctx.IsGet() || ctx.IsHead()
	if !get && !ctx.IsPost() {
		ctx.Error("use GET, HEAD or POST (RFC 6960 appendix A)\n", 405)
		// After Error, which resets the response. RFC 9110 §15.5.6: "The
		// origin server MUST generate an Allow header field in a 405".
		ctx.Response.Header.Set("Allow", "GET, HEAD, POST")
		return
	}
	var q request
	if err := r.request(ctx, &q); err != nil {
		r.fail(ctx, ocsp.MalformedRequestErrorResponse)
		return
	}
	if !r.Ready() {
		r.fail(ctx, ocsp.TryLaterErrorResponse)
		return
	}
	is := r.issuerOf(&q)
	if is == nil {
		r.fail(ctx, ocsp.UnauthorizedErrorResponse)
		return
	}
	var a *answer
	var err error
	if q.n == 1 {
		a, err = r.answer(is, &q.ids[0])
	} else {
		a, err = r.answerAll(is, q.certIDs())
	}
	if err != nil {
		r.log.Error("responder: answer failed", "issuer", is.name, "err", err)
		r.fail(ctx, ocsp.InternalErrorErrorResponse)
		return
	}
	// RFC 5019 §6: caching headers, so that a CDN can carry the load.
	// Keys are given canonical and values made once per answer: this runs
	// for every request.
	h := &ctx.Response.Header
	h.SetContentTypeBytes(contentTypeOCSP)
	h.SetCanonical(hdrETag, a.etag)
	h.SetCanonical(hdrLastModified, a.lastMod)
	h.SetCanonical(hdrExpires, a.expires)
	var cc [96]byte
	maxAge := max(int64(time.Until(a.staleAt)/time.Second), 0)
	h.SetCanonical(hdrCacheControl, append(strconv.AppendInt(append(cc[:0], "max-age="...), maxAge, 10), ", public, no-transform, must-revalidate"...))
	// RFC 9110 §13.1.2: If-None-Match applies to GET and HEAD; a POST is
	// answered in full.
	if get && notModified(&ctx.Request.Header, a) {
		ctx.SetStatusCode(304)
		return
	}
	ctx.SetBody(a.der)
}

// notModified evaluates a GET's or HEAD's If-None-Match against the
// answer. If-Modified-Since is ignored (RFC 9110 §13.1.3 lets a server do
// so): Last-Modified is thisUpdate, to the second and backdated, so a
// client's date (its last fetch, or a lagging replica's answer) can be
// later than the thisUpdate of an answer that says revoked, and a 304
// would keep it on good. Every signed answer has its own ETag.
func notModified(h *fasthttp.RequestHeader, a *answer) bool {
	inm := h.PeekBytes(hdrIfNoneMatch)
	return len(inm) > 0 && etagListed(inm, a.etag)
}

// etagListed applies If-None-Match's weak comparison (RFC 9110 §13.1.2):
// "*" matches the answer there is; otherwise one of the comma-separated
// entity tags, W/ or not, is ours.
func etagListed(list, etag []byte) bool {
	for len(list) > 0 {
		var tag []byte
		tag, list, _ = bytes.Cut(list, comma)
		tag = bytes.TrimPrefix(bytes.TrimSpace(tag), weakPrefix)
		if len(tag) == 1 && tag[0] == '*' || bytes.Equal(tag, etag) {
			return true
		}
	}
	return false
}

const httpDate = "Mon, 02 Jan 2006 15:04:05 GMT"

var (
	contentTypeOCSP = []byte("application/ocsp-response")
	hdrETag         = []byte("ETag")
	hdrLastModified = []byte("Last-Modified")
	hdrExpires      = []byte("Expires")
	hdrCacheControl = []byte("Cache-Control")
	hdrIfNoneMatch  = []byte("If-None-Match")
	comma           = []byte(",")
	weakPrefix      = []byte("W/")
)

// thisUpdateBackdate is how far before producedAt an answer's thisUpdate
// is: a device whose clock is slow refuses an answer "in its future"
// (RFC 6960 §4.2.2.1, §3.2 item 5). Five minutes is what the delegated
// responder certificate's notBefore is backdated by, so its signer is
// valid at every thisUpdate, and with OpenSSL's own 5-minute tolerance
// (OCSP_check_validity) a clock 10 minutes slow still accepts. Longer
// would have thisUpdate claim, for longer, a status from before the
// certificate was issued or revoked. nextUpdate is not moved: a fresh
// answer is still valid for ResponseValidity from when it was signed.
const thisUpdateBackdate = 5 * time.Minute

// issuerOf returns the one issuer that every CertID of q names, or nil
// (answer unauthorized): a CertID in a hash not in certIDHashes, of an
// issuer we do not serve, or CertIDs of two issuers. Each issuer has its
// own delegated responder and a response has one signer, so a request
// across issuers cannot be answered as one response (RFC 6960 §4.2.2.2).
func (r *Responder) issuerOf(q *request) *issuer {
	var found *issuer
	for i := range q.n {
		is := r.issuerFor(&q.ids[i])
		if is == nil || found != nil && is != found {
			return nil
		}
		found = is
	}
	return found
}

func (r *Responder) issuerFor(id *certID) *issuer {
	if id.hash == 0 {
		return nil
	}
	for _, is := range r.issuers {
		if bytes.Equal(is.keyHash[id.hash], id.keyHash) && bytes.Equal(is.nameHash[id.hash], id.nameHash) {
			return is
		}
	}
	return nil
}

// answer returns a signed answer for one CertID, from the cache when it
// is fresh enough.
func (r *Responder) answer(is *issuer, id *certID) (*answer, error) {
	k := cacheKey{is.name, string(id.serial), id.hash, id.noParams}
	now := time.Now()
	if v, ok := r.cache.Load(k); ok {
		if a := v.(*answer); now.Before(a.staleAt) {
			return a, nil
		}
	}
	if r.unknown != nil {
		if a, ok := r.unknown.Get(k); ok && now.Before(a.staleAt) {
			return a, nil
		}
	}
	before := r.changes.Load()
	st, known, err := r.statusOf(is, id)
	if err != nil {
		return nil, err
	}
	// A copy: the request, which id is part of, stays on handle's stack.
	idc := *id
	a, err := r.sign(is, now, []single{{id: &idc, status: st}})
	if err != nil {
		return nil, err
	}
	// Answers about never-issued serials go to the bounded cache: a flood
	// of them must not fill memory.
	r.cacheMu.RLock()
	if r.changes.Load() == before {
		if known {
			r.cache.Store(k, a)
		} else if r.unknown != nil {
			r.unknown.Add(k, a)
		}
	}
	r.cacheMu.RUnlock()
	return a, nil
}

// answerAll signs one answer about several CertIDs of is, one
// SingleResponse each in the request's order, every time: the per-serial
// cache is for the single-CertID requests nearly every client sends.
func (r *Responder) answerAll(is *issuer, ids []certID) (*answer, error) {
	now := time.Now()
	singles := make([]single, len(ids))
	own := append([]certID(nil), ids...) // handle's request stays on its stack
	for i := range own {
		st, _, err := r.statusOf(is, &own[i])
		if err != nil {
			return nil, err
		}
		singles[i] = single{id: &own[i], status: st}
	}
	return r.sign(is, now, singles)
}

// statusOf looks id's serial up; known is false without a record.
func (r *Responder) statusOf(is *issuer, id *certID) (s certStatus, known bool, err error) {
	// RFC 5280 §4.1.2.2: "Certificate users SHOULD be prepared to
	// gracefully handle" serials of zero or below. None of ours is one.
	sn, ok := id.magnitude()
	if !ok {
		return certStatus{code: ocsp.Unknown}, false, nil
	}
	st, known, err := r.st.get(is.name, sn)
	if err != nil {
		return s, false, err
	}
	// INVARIANT: good only with an issuance record and no revocation.
	switch {
	case known && st.Revoked:
		s = certStatus{code: ocsp.Revoked, revokedAt: time.Unix(0, st.RevokedAt), reason: st.Reason}
	case known && st.Issued:
		s.code = ocsp.Good
	default:
		s.code = ocsp.Unknown
	}
	return s, known, nil
}

// sign signs singles (statuses filled in) with is's delegated responder
// as of now, and makes the answer's HTTP headers.
func (r *Responder) sign(is *issuer, now time.Time, singles []single) (*answer, error) {
	produced := now.UTC().Truncate(time.Second)
	next := produced.Add(r.cfg.ResponseValidity)
	var last time.Time
	for i := range singles {
		s := &singles[i]
		s.thisUpdate, s.nextUpdate = produced.Add(-thisUpdateBackdate), next
		// A revocation newer than that: thisUpdate is "the most recent
		// time at which the status being indicated is known by the
		// responder to have been correct" (RFC 6960 §4.2.1), not before it.
		if ra := s.status.revokedAt.UTC().Truncate(time.Second); s.status.code == ocsp.Revoked && ra.After(s.thisUpdate) {
			s.thisUpdate = ra
			if ra.After(produced) { // the signer's clock is ahead of ours
				s.thisUpdate = produced
			}
		}
		if s.thisUpdate.After(last) {
			last = s.thisUpdate
		}
	}
	der, err := is.delegated.Load().enc.response(produced, singles...)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(der)
	return &answer{der: der, thisUpdate: last, nextUpdate: next, staleAt: produced.Add(r.cfg.ResponseValidity / 2),
		// RFC 5019 §6.2: Last-Modified is thisUpdate, Expires nextUpdate.
		etag: []byte(`"` + hex.EncodeToString(sum[:16]) + `"`), lastMod: []byte(last.Format(httpDate)), expires: []byte(next.Format(httpDate))}, nil
}
