package responder

import (
	"bytes"
	"encoding/base64"
	"testing"

	"github.com/valyala/fasthttp"
	"golang.org/x/crypto/ocsp"
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
	if _, err := decodeRequest(b); err != nil {
		t.Fatalf("seed request does not decode: %v", err)
	}
	return b
}

// FuzzDecodeRequest: the POST body and the GET path come from the
// network. Decoding never panics; a request that decodes has exactly one
// CertID and re-encodes to a request that decodes the same.
func FuzzDecodeRequest(f *testing.F) {
	der := validRequest(f)
	f.Add(der, "/manufacturing/"+base64.StdEncoding.EncodeToString(der))
	f.Add([]byte{0x30, 0x00}, "/x/MAA=")
	f.Add([]byte{}, "/")
	f.Fuzz(func(t *testing.T, body []byte, path string) {
		for _, in := range [][]byte{body, mustGET(path)} {
			if in == nil {
				continue
			}
			req, err := decodeRequest(in)
			if err != nil {
				continue
			}
			// What we accept, x/crypto/ocsp reads the same way.
			ref, err := ocsp.ParseRequest(in)
			if err != nil || ref.SerialNumber.Cmp(req.SerialNumber) != 0 || ref.HashAlgorithm != req.HashAlgorithm ||
				!bytes.Equal(ref.IssuerKeyHash, req.IssuerKeyHash) || !bytes.Equal(ref.IssuerNameHash, req.IssuerNameHash) {
				t.Fatalf("decodeRequest and ocsp.ParseRequest disagree: %v", err)
			}
			again, err := req.Marshal()
			if err != nil {
				continue // a hash x/crypto cannot name; we refuse those anyway
			}
			req2, err := decodeRequest(again)
			if err != nil || req2.SerialNumber.Cmp(req.SerialNumber) != 0 || !bytes.Equal(req2.IssuerKeyHash, req.IssuerKeyHash) {
				t.Fatalf("round trip: %v", err)
			}
		}
	})
}

func mustGET(path string) []byte {
	b, err := requestFromGET(path)
	if err != nil {
		return nil
	}
	return b
}
