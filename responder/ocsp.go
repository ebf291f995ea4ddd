package responder

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"math/big"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/crypto/ocsp"
)

// errMalformed is any request that is not exactly one OCSP CertID.
var errMalformed = errors.New("responder: malformed request")

// rawRequest is OCSPRequest (RFC 6960 §4.1.1) with the request list kept
// raw, so that its length can be checked: x/crypto/ocsp reads only the
// first CertID of a request with several.
type rawRequest struct {
	TBS struct {
		Version       int           `asn1:"explicit,tag:0,default:0,optional"`
		RequestorName asn1.RawValue `asn1:"explicit,tag:1,optional"`
		RequestList   []asn1.RawValue
		Extensions    asn1.RawValue `asn1:"explicit,tag:2,optional"`
	}
	Signature asn1.RawValue `asn1:"explicit,tag:0,optional"`
}

// decodeRequest parses a DER OCSP request with exactly one CertID.
func decodeRequest(der []byte) (*ocsp.Request, error) {
	var raw rawRequest
	rest, err := asn1.Unmarshal(der, &raw)
	if err != nil || len(rest) != 0 {
		return nil, errMalformed
	}
	if len(raw.TBS.RequestList) != 1 {
		return nil, errMalformed
	}
	req, err := ocsp.ParseRequest(der)
	if err != nil || req.SerialNumber == nil || req.SerialNumber.Sign() <= 0 {
		return nil, errMalformed
	}
	if req.HashAlgorithm != crypto.SHA1 && req.HashAlgorithm != crypto.SHA256 {
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
	case "/readyz":
		if !r.Ready() {
			ctx.SetStatusCode(503)
			ctx.SetBodyString("catching up with the ledger\n")
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
	h := &ctx.Response.Header
	h.SetContentType("application/ocsp-response")
	sum := sha256.Sum256(a.der)
	h.Set("ETag", `"`+hex.EncodeToString(sum[:16])+`"`)
	h.Set("Last-Modified", a.thisUpdate.UTC().Format(httpDate))
	h.Set("Expires", a.nextUpdate.UTC().Format(httpDate))
	maxAge := max(int(time.Until(a.staleAt).Seconds()), 0)
	h.Set("Cache-Control", "max-age="+strconv.Itoa(maxAge)+", public, no-transform, must-revalidate")
	if inm := ctx.Request.Header.Peek("If-None-Match"); len(inm) > 0 && bytes.Contains(inm, []byte(hex.EncodeToString(sum[:16]))) {
		ctx.SetStatusCode(304)
		return
	}
	ctx.SetBody(a.der)
}

const httpDate = "Mon, 02 Jan 2006 15:04:05 GMT"

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
	before := r.changes.Load()
	st, known, err := r.st.get(is.name, sn)
	if err != nil {
		return nil, err
	}
	d := is.delegated.Load()
	this := now.UTC().Truncate(time.Second)
	tmpl := ocsp.Response{
		SerialNumber: new(big.Int).Set(req.SerialNumber), ThisUpdate: this, NextUpdate: this.Add(r.cfg.ResponseValidity),
		Certificate: d.cert, IssuerHash: req.HashAlgorithm,
	}
	// INVARIANT: good only with an issuance record and no revocation.
	switch {
	case known && st.Revoked:
		tmpl.Status = ocsp.Revoked
		tmpl.RevokedAt = time.Unix(0, st.RevokedAt).UTC().Truncate(time.Second)
		tmpl.RevocationReason = st.Reason
	case known && st.Issued:
		tmpl.Status = ocsp.Good
	default:
		tmpl.Status = ocsp.Unknown
	}
	der, err := ocsp.CreateResponse(is.cert, d.cert, tmpl, d.key)
	if err != nil {
		return nil, err
	}
	a := &answer{der: der, thisUpdate: this, nextUpdate: tmpl.NextUpdate, staleAt: this.Add(r.cfg.ResponseValidity / 2)}
	if known { // never-issued serials are not cached: a flood of them must not fill memory
		r.cacheMu.RLock()
		if r.changes.Load() == before {
			r.cache.Store(k, a)
		}
		r.cacheMu.RUnlock()
	}
	return a, nil
}
