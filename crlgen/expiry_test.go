package crlgen

import (
	"testing"
	"time"

	"github.com/certmill/certmill/pkg/ledger"
	"github.com/certmill/certmill/pkg/serial"
)

// TestExpiredLeaveAfterOneFullCRLAndRevocationStands: an entry whose
// certificate expired stays on the next full CRL, the first issued beyond
// its validity period, and leaves the one after (RFC 5280 §3.3); a second
// revocation of the same serial changes nothing; applying the same entries
// twice changes nothing.
func TestExpiredLeaveAfterOneFullCRLAndRevocationStands(t *testing.T) {
	g, _, _, _ := benchGenerator(t, 0)
	clk, now := withClock(g)
	live, _ := serial.New()
	dead, _ := serial.New()
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
	first := build(t, g, Full)
	if len(first.RevokedCertificateEntries) != 2 || !lists(first, live) || !lists(first, dead) {
		t.Fatalf("first full CRL: entries %+v, want the live one and the expired one, once each", first.RevokedCertificateEntries)
	}
	for _, e := range first.RevokedCertificateEntries {
		if e.ReasonCode != 1 {
			t.Fatalf("entry %x has reason %d, want the first revocation's 1", e.SerialNumber, e.ReasonCode)
		}
	}
	clk.Set(now.Add(6 * time.Hour))
	second := build(t, g, Full)
	if len(second.RevokedCertificateEntries) != 1 || !lists(second, live) {
		t.Fatalf("second full CRL: entries %+v, want only the live one", second.RevokedCertificateEntries)
	}
	// The delta's base is the first full CRL, still current: nothing came
	// after it, so the delta is empty.
	if d := publishedCRL(t, g, Delta); baseNumber(t, d) != first.Number.Int64() || len(d.RevokedCertificateEntries) != 0 {
		t.Fatalf("delta base %d (first full %d), %d entries", baseNumber(t, d), first.Number, len(d.RevokedCertificateEntries))
	}
}
