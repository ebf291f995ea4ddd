package crlgen

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"testing"
	"time"

	"github.com/certmill/certmill/pkg/profile"
)

// TestEncodeCRLParses checks the hand encoder against crypto/x509's
// parser: entries, reasons, invalidity dates, AKI, number, extensions,
// empty lists, UTCTime and GeneralizedTime, ECDSA and RSA issuers.
func TestEncodeCRLParses(t *testing.T) {
	t.Parallel()
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	for name, key := range map[string]crypto.Signer{"p384": p384, "rsa": rsaKey} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tmpl := &x509.Certificate{SerialNumber: big.NewInt(9), Subject: pkix.Name{CommonName: "CA " + name, Organization: []string{"Acme"}},
				NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(40, 0, 0), IsCA: true, BasicConstraintsValid: true,
				KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, SubjectKeyId: profile.KeyID(key.Public())}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
			if err != nil {
				t.Fatal(err)
			}
			ca, _ := x509.ParseCertificate(der)
			now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
			want := []crlEntry{
				{serial: big.NewInt(1), time: now, reason: 0},
				{serial: new(big.Int).Lsh(big.NewInt(1), 126), time: now.Add(time.Minute), reason: 1, invalidityDate: now.Add(-time.Hour)},
				{serial: big.NewInt(0x7fff), time: time.Date(2051, 1, 1, 0, 0, 0, 0, time.UTC), reason: 5},
			}
			for _, tc := range []struct {
				name    string
				entries []crlEntry
			}{{"entries", want}, {"empty", nil}} {
				each := func(f func(crlEntry) error) error {
					for _, e := range tc.entries {
						if err := f(e); err != nil {
							return err
						}
					}
					return nil
				}
				extra := pkix.Extension{Id: oidDeltaCRLIndicator, Critical: true, Value: []byte{2, 1, 7}}
				out, n, err := encodeCRL(tbsParams{issuer: ca, number: 42, thisUpdate: now, nextUpdate: time.Date(2060, 1, 1, 0, 0, 0, 0, time.UTC),
					extensions: []pkix.Extension{extra}}, 0, each, key)
				if err != nil || n != len(tc.entries) {
					t.Fatalf("%s: %v, %d entries", tc.name, err, n)
				}
				crl, err := x509.ParseRevocationList(out)
				if err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				if err := crl.CheckSignatureFrom(ca); err != nil {
					t.Fatal(err)
				}
				if err := checkSignature(ca, out); err != nil {
					t.Fatal(err)
				}
				if crl.Number.Int64() != 42 || !crl.ThisUpdate.Equal(now) || crl.NextUpdate.Year() != 2060 || string(crl.AuthorityKeyId) != string(ca.SubjectKeyId) {
					t.Fatalf("%s: header %+v", tc.name, crl)
				}
				if len(crl.RevokedCertificateEntries) != len(tc.entries) {
					t.Fatalf("%s: %d entries", tc.name, len(crl.RevokedCertificateEntries))
				}
				for i, e := range crl.RevokedCertificateEntries {
					w := tc.entries[i]
					if e.SerialNumber.Cmp(w.serial) != 0 || !e.RevocationTime.Equal(w.time) || e.ReasonCode != w.reason {
						t.Fatalf("entry %d: %+v want %+v", i, e, w)
					}
					var inv time.Time
					for _, x := range e.Extensions {
						if x.Id.Equal(oidInvalidityDate) {
							asn1.Unmarshal(x.Value, &inv)
						}
					}
					if !inv.Equal(w.invalidityDate) {
						t.Fatalf("entry %d invalidity date %s, want %s", i, inv, w.invalidityDate)
					}
				}
				found := false
				for _, x := range crl.Extensions {
					found = found || (x.Id.Equal(oidDeltaCRLIndicator) && x.Critical)
				}
				if !found {
					t.Fatal("extra extension lost")
				}
				out[len(out)-3] ^= 1
				if checkSignature(ca, out) == nil {
					t.Fatal("a damaged signature verified")
				}
			}
		})
	}
}
