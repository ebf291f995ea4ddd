package responder

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

// fixedSigner signs like key but deterministically (the signature is a
// hash of the digest), so that two encoders' outputs compare byte for byte.
type fixedSigner struct{ key crypto.Signer }

func (f fixedSigner) Public() crypto.PublicKey { return f.key.Public() }
func (f fixedSigner) Sign(_ io.Reader, digest []byte, _ crypto.SignerOpts) ([]byte, error) {
	s := sha256.Sum256(digest)
	return append([]byte{0x30}, s[:]...), nil
}

func testCA(t *testing.T, curve elliptic.Curve) (*x509.Certificate, *x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Manufacturing CA", Organization: []string{"Meters Ltd"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, ca, ca, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ = x509.ParseCertificate(der)
	key, _ := ecdsa.GenerateKey(curve, rand.Reader)
	d := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "Manufacturing CA OCSP Responder"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}}
	der, err = x509.CreateCertificate(rand.Reader, d, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	d, _ = x509.ParseCertificate(der)
	return ca, d, key
}

// TestEncoderSameAsXCrypto: the hand encoder writes what
// x/crypto/ocsp.CreateResponse writes, byte for byte, for every status,
// both CertID hashes, revocation reasons with and without a code, serials
// whose first octet has its high bit set, and the three ECDSA curves; and
// with a real key the answer verifies under the delegated certificate.
func TestEncoderSameAsXCrypto(t *testing.T) {
	for _, curve := range []elliptic.Curve{elliptic.P256(), elliptic.P384(), elliptic.P521()} {
		ca, dcert, key := testCA(t, curve)
		is, err := newIssuer("manufacturing", ca, nil)
		if err != nil {
			t.Fatal(err)
		}
		enc, err := newEncoder(is, dcert, fixedSigner{key})
		if err != nil {
			t.Fatal(err)
		}
		real, err := newEncoder(is, dcert, key)
		if err != nil {
			t.Fatal(err)
		}
		serials := []*big.Int{big.NewInt(1), big.NewInt(0x80), new(big.Int).SetBytes(bytes.Repeat([]byte{0xff}, 16)), new(big.Int).SetBytes([]byte{0x7f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})}
		statuses := []certStatus{{code: ocsp.Good}, {code: ocsp.Unknown}, {code: ocsp.Revoked, revokedAt: time.Unix(1_700_000_000, 0)},
			{code: ocsp.Revoked, revokedAt: time.Unix(1_700_000_123, 0), reason: ocsp.KeyCompromise}, {code: ocsp.Revoked, revokedAt: time.Unix(1_600_000_000, 0), reason: ocsp.CertificateHold}}
		for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
			for _, sn := range serials {
				for _, st := range statuses {
					this := time.Now().UTC().Truncate(time.Second)
					next := this.Add(96 * time.Hour)
					// x/crypto's producedAt is the minute it runs in.
					var want []byte
					var produced time.Time
					for produced.IsZero() || !produced.Equal(time.Now().UTC().Truncate(time.Minute)) {
						produced = time.Now().UTC().Truncate(time.Minute)
						want, err = ocsp.CreateResponse(ca, dcert, ocsp.Response{Status: st.code, SerialNumber: sn, ThisUpdate: this, NextUpdate: next,
							RevokedAt: st.revokedAt, RevocationReason: st.reason, Certificate: dcert, IssuerHash: h}, fixedSigner{key})
						if err != nil {
							t.Fatal(err)
						}
					}
					got, err := enc.response(h, sn, st, produced, this, next)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, want) {
						t.Fatalf("%s %v serial %x status %+v:\n got %x\nwant %x", curve.Params().Name, h, sn, st, got, want)
					}
					signed, err := real.response(h, sn, st, this, this, next)
					if err != nil {
						t.Fatal(err)
					}
					r, err := ocsp.ParseResponseForCert(signed, nil, ca)
					if err != nil {
						t.Fatalf("%s: the real answer does not verify: %v", curve.Params().Name, err)
					}
					if r.Status != st.code || r.SerialNumber.Cmp(sn) != 0 || !r.ThisUpdate.Equal(this) || !r.NextUpdate.Equal(next) ||
						r.RevocationReason != st.reason || (st.code == ocsp.Revoked && !r.RevokedAt.Equal(st.revokedAt)) || r.IssuerHash != h {
						t.Fatalf("%s: the real answer says %+v", curve.Params().Name, r)
					}
				}
			}
		}
	}
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := newEncoder(&issuer{}, &x509.Certificate{}, fixedSigner{edKey}); err == nil {
		t.Fatal("an Ed25519 responder key was accepted: nothing here encodes its signature")
	}
}
