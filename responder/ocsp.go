package responder

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	encasn1 "encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"math/big"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
	"golang.org/x/crypto/ocsp"
)

// errMalformed is any request that is not exactly one OCSP CertID.
var errMalformed = errors.New("responder: malformed request")

var (
	oidSHA1   = encasn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA256 = encasn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
)

// decodeRequest parses a DER OCSPRequest (RFC 6960 §4.1.1) that holds
// exactly one CertID, without reflection: it is on every request's path.
// x/crypto/ocsp would read only the first CertID of a request with
// several; those are refused here.
//
//	OCSPRequest ::= SEQUENCE { tbsRequest, optionalSignature [0] EXPLICIT Signature OPTIONAL }
//	TBSRequest  ::= SEQUENCE { version [0] EXPLICIT DEFAULT v1, requestorName [1] EXPLICIT OPTIONAL,
//	                           requestList SEQUENCE OF Request, requestExtensions [2] EXPLICIT OPTIONAL }
//	Request     ::= SEQUENCE { reqCert CertID, singleRequestExtensions [0] EXPLICIT OPTIONAL }
//	CertID      ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier, issuerNameHash OCTET STRING,
//	                           issuerKeyHash OCTET STRING, serialNumber CertificateSerialNumber }
func decodeRequest(der []byte) (*ocsp.Request, error) {
	in := cryptobyte.String(der)
	var outer, tbs, list, one, certID, alg cryptobyte.String
	var oid encasn1.ObjectIdentifier
	req := &ocsp.Request{SerialNumber: new(big.Int)}
	if !in.ReadASN1(&outer, asn1.SEQUENCE) || !in.Empty() ||
		!outer.ReadASN1(&tbs, asn1.SEQUENCE) ||
		!outer.SkipOptionalASN1(asn1.Tag(0).Constructed().ContextSpecific()) || !outer.Empty() ||
		!tbs.SkipOptionalASN1(asn1.Tag(0).Constructed().ContextSpecific()) ||
		!tbs.SkipOptionalASN1(asn1.Tag(1).Constructed().ContextSpecific()) ||
		!tbs.ReadASN1(&list, asn1.SEQUENCE) ||
		!tbs.SkipOptionalASN1(asn1.Tag(2).Constructed().ContextSpecific()) || !tbs.Empty() ||
		!list.ReadASN1(&one, asn1.SEQUENCE) || !list.Empty() ||
		!one.ReadASN1(&certID, asn1.SEQUENCE) ||
		!one.SkipOptionalASN1(asn1.Tag(0).Constructed().ContextSpecific()) || !one.Empty() ||
		!certID.ReadASN1(&alg, asn1.SEQUENCE) ||
		!alg.ReadASN1ObjectIdentifier(&oid) ||
		!certID.ReadASN1Bytes(&req.IssuerNameHash, asn1.OCTET_STRING) ||
		!certID.ReadASN1Bytes(&req.IssuerKeyHash, asn1.OCTET_STRING) ||
		!certID.ReadASN1Integer(req.SerialNumber) || !certID.Empty() {
		return nil, errMalformed
	}
	if !alg.Empty() && !alg.SkipASN1(asn1.NULL) || !alg.Empty() {
		return nil, errMalformed
	}
	switch {
	case oid.Equal(oidSHA1):
		req.HashAlgorithm = crypto.SHA1
	case oid.Equal(oidSHA256):
		req.HashAlgorithm = crypto.SHA256
	default:
		return nil, errMalformed
	}
	if req.SerialNumber.Sign() <= 0 || len(req.IssuerKeyHash) != req.HashAlgorithm.Size() || len(req.IssuerNameHash) != req.HashAlgorithm.Size() {
		return nil, errMalformed
	}
	return req, nil
}

// requestFromGET decodes the last path segment of a GET: base64 of the
// DER, URL-encoded or not (RFC 6960 appendix A.1; RFC 5019 §5).
// Unencoded base64 may itself hold slashes, so every suffix after a slash
// is tried, longest first.
func requestFromGET(path string) ([]byte, error) {
	for i := 0; i < len(path); i++ {
		if path[i] != '/' {
			continue
		}
		seg := path[i+1:]
		if u, err := url.PathUnescape(seg); err == nil {
			seg = u
		}
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if b, err := enc.DecodeString(seg); err == nil && len(b) > 0 && b[0] == 0x30 {
				return b, nil
			}
		}
	}
	return nil, errMalformed
}

// request extracts the DER request from a GET or POST.
func (r *Responder) request(ctx *fasthttp.RequestCtx) ([]byte, error) {
	switch {
	case ctx.IsPost():
		if ct := string(ctx.Request.Header.ContentType()); ct != "application/ocsp-request" {
			return nil, errMalformed
		}
		return ctx.PostBody(), nil
	case ctx.IsGet():
		// fasthttp has normalised the path: take the raw one.
		raw := string(ctx.Request.Header.RequestURI())
		if i := strings.IndexByte(raw, '?'); i >= 0 {
			raw = raw[:i]
		}
		if len(raw) > 2*r.cfg.MaxRequestBytes {
			return nil, errMalformed
		}
		return requestFromGET(raw)
	}
	return nil, errMalformed
}

func (r *Responder) fail(ctx *fasthttp.RequestCtx, body []byte) {
	ctx.SetContentType("application/ocsp-response")
	ctx.Response.Header.Set("Cache-Control", "max-age=0, no-cache")
	ctx.SetBody(body)
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
	if !ctx.IsGet() && !ctx.IsPost() {
		ctx.Response.Header.Set("Allow", "GET, POST")
		ctx.Error("use GET or POST (RFC 6960 appendix A)\n", 405)
		return
	}
	der, err := r.request(ctx)
	if err != nil {
		r.fail(ctx, ocsp.MalformedRequestErrorResponse)
		return
	}
	req, err := decodeRequest(der)
	if err != nil {
		r.fail(ctx, ocsp.MalformedRequestErrorResponse)
		return
	}
	if !r.Ready() {
		r.fail(ctx, ocsp.TryLaterErrorResponse)
		return
	}
	is := r.issuerOf(req)
	if is == nil {
		r.fail(ctx, ocsp.UnauthorizedErrorResponse)
		return
	}
	a, err := r.answer(is, req)
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
	if inm := ctx.Request.Header.Peek("If-None-Match"); len(inm) > 0 && bytes.Contains(inm, a.etag[1:len(a.etag)-1]) {
		ctx.SetStatusCode(304)
		return
	}
	ctx.SetBody(a.der)
}

const httpDate = "Mon, 02 Jan 2006 15:04:05 GMT"

var (
	contentTypeOCSP = []byte("application/ocsp-response")
	hdrETag         = []byte("ETag")
	hdrLastModified = []byte("Last-Modified")
	hdrExpires      = []byte("Expires")
	hdrCacheControl = []byte("Cache-Control")
)

func (r *Responder) issuerOf(req *ocsp.Request) *issuer {
	for _, is := range r.issuers {
		if bytes.Equal(is.keyHash[req.HashAlgorithm], req.IssuerKeyHash) && bytes.Equal(is.nameHash[req.HashAlgorithm], req.IssuerNameHash) {
			return is
		}
	}
	return nil
}

// answer returns a signed answer for one serial, from the cache when it
// is fresh enough.
func (r *Responder) answer(is *issuer, req *ocsp.Request) (*answer, error) {
	sn := req.SerialNumber.Bytes()
	k := cacheKey{is.name, string(sn), req.HashAlgorithm}
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
	st, known, err := r.st.get(is.name, sn)
	if err != nil {
		return nil, err
	}
	d := is.delegated.Load()
	this := now.UTC().Truncate(time.Second)
	next := this.Add(r.cfg.ResponseValidity)
	// INVARIANT: good only with an issuance record and no revocation.
	var s certStatus
	switch {
	case known && st.Revoked:
		s = certStatus{code: ocsp.Revoked, revokedAt: time.Unix(0, st.RevokedAt), reason: st.Reason}
	case known && st.Issued:
		s.code = ocsp.Good
	default:
		s.code = ocsp.Unknown
	}
	der, err := d.enc.response(req.HashAlgorithm, req.SerialNumber, s, this, this, next)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(der)
	a := &answer{der: der, thisUpdate: this, nextUpdate: next, staleAt: this.Add(r.cfg.ResponseValidity / 2),
		etag: []byte(`"` + hex.EncodeToString(sum[:16]) + `"`), lastMod: []byte(this.Format(httpDate)), expires: []byte(next.Format(httpDate))}
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
