package crlgen

import (
	"crypto/x509"
	"testing"
	"time"

	"github.com/certmill/certmill/pkg/ledger"
	"github.com/certmill/certmill/pkg/serial"
)

// TestExpiredLeaveAndRevocationStands: an entry whose certificate expired
// leaves the next CRL; a second revocation of the same serial changes
// nothing; applying the same entries twice changes nothing.
func TestExpiredLeaveAndRevocationStands(t *testing.T) {
	g, _, _, _ := benchGenerator(t, 0)
	live, _ := serial.New()
	dead, _ := serial.New()
	now := time.Now()
	es := []ledger.Entry{
		{Seq: 1, Record: ledger.Record{Kind: ledger.KindRevoked, Revoked: &ledger.Revoked{Issuer: "bench", Serial: live.Bytes(), Time: now.UnixNano(), Reason: 1, NotAfter: now.Add(time.Hour).Unix()}}},
		{Seq: 2, Record: ledger.Record{Kind: ledger.KindRevoked, Revoked: &ledger.Revoked{Issuer: "bench", Serial: dead.Bytes(), Time: now.UnixNano(), Reason: 1, NotAfter: now.Add(-time.Hour).Unix()}}},
		{Seq: 3, Record: ledger.Record{Kind: ledger.KindRevoked, Revoked: &ledger.Revoked{Issuer: "bench", Serial: live.Bytes(), Time: now.UnixNano() + 1, Reason: 4, NotAfter: now.Add(time.Hour).Unix()}}},
	}
	for range 2 {
		if err := g.st.Apply(es, 3); err != nil {
			t.Fatal(err)
		}
	}
	res, err := g.Build("bench", Full)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(res.DER)
	if err != nil {
		t.Fatal(err)
	}
	if len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Cmp(live) != 0 || crl.RevokedCertificateEntries[0].ReasonCode != 1 {
		t.Fatalf("entries %+v, want only the live one with its first reason", crl.RevokedCertificateEntries)
	}

}
