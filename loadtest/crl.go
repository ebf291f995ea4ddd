package main

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// crlKind pulls the CRL as a CDN does: 9 of 10 requests conditional.
type crlKind struct {
	url   string
	first *x509.RevocationList
	cond  http.Header
	n     atomic.Uint64
	full  int // 200 answers
}

func newCRL(e *env, s Scenario) (*crlKind, error) {
	resp, err := e.hc.Get(e.f.Target.CRL)
	if err != nil {
		return nil, err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	resp.Body.Close()
	first, err := x509.ParseRevocationList(body)
	if err != nil {
		return nil, fmt.Errorf("the CRL at %s does not parse: %w", e.f.Target.CRL, err)
	}
	return &crlKind{url: e.f.Target.CRL, first: first, cond: http.Header{"If-None-Match": {resp.Header.Get("ETag")}}}, nil
}

func (k *crlKind) workers() uint64 { return 256 }

func (k *crlKind) targeter() vegeta.Targeter {
	return func(t *vegeta.Target) error {
		t.Method, t.URL = "GET", k.url
		if k.n.Add(1)%10 != 0 {
			t.Header = k.cond
		}
		return nil
	}
}

// check: a 304, or a CRL of the same issuer whose number did not go back.
func (k *crlKind) check(r *vegeta.Result) bool {
	if r.Code == 304 {
		return true
	}
	k.full++
	crl, err := x509.ParseRevocationList(r.Body)
	return err == nil && crl.Number.Cmp(k.first.Number) >= 0 && bytes.Equal(crl.RawIssuer, k.first.RawIssuer)
}

func (k *crlKind) finish(r *Report) {
	r.note("%d full CRLs (number %s at the start), the rest 304 Not Modified", k.full, k.first.Number)
}
