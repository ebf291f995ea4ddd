package responder

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
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

// testCA makes a CA named cn (P-384) and a delegated responder
// certificate under it with a key on curve.
func testCA(t testing.TB, curve elliptic.Curve, cn string) (*x509.Certificate, *x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn, Organization: []string{"Meters Ltd"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, ca, ca, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ = x509.ParseCertificate(der)
	key, _ := ecdsa.GenerateKey(curve, rand.Reader)
	d := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn + " OCSP Responder"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}}
	der, err = x509.CreateCertificate(rand.Reader, d, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	d, _ = x509.ParseCertificate(der)
	return ca, d, key
}

// byName is cert's ResponderID byName, what x/crypto/ocsp.CreateResponse
// always writes.
func byName(cert *x509.Certificate) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(cert.RawSubject) })
	return b.BytesOrPanic()
}

// TestEncoderSameAsXCrypto: with the ResponderID byName, which is all
// x/crypto/ocsp.CreateResponse can write, the hand encoder writes what
// CreateResponse writes, byte for byte, for every status, every CertID
// hash (with NULL parameters, x/crypto's only form), revocation reasons
// with and without a code, serials whose first octet has its high bit set,
// and the three ECDSA curves. With a real key and its byKey ResponderID
// the answer verifies under the delegated certificate, and names it by
// the SHA-1 of its key (TestResponderIDByKey).
func TestEncoderSameAsXCrypto(t *testing.T) {
	for _, curve := range []elliptic.Curve{elliptic.P256(), elliptic.P384(), elliptic.P521()} {
		ca, dcert, key := testCA(t, curve, "Manufacturing CA")
		is, err := newIssuer("manufacturing", ca, nil)
		if err != nil {
			t.Fatal(err)
		}
		enc, err := newEncoder(is, dcert, fixedSigner{key})
		if err != nil {
			t.Fatal(err)
		}
		enc.responderID = byName(dcert)
		real, err := newEncoder(is, dcert, key)
		if err != nil {
			t.Fatal(err)
		}
		serials := []*big.Int{big.NewInt(1), big.NewInt(0x80), new(big.Int).SetBytes(bytes.Repeat([]byte{0xff}, 16)), new(big.Int).SetBytes([]byte{0x7f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})}
		statuses := []certStatus{{code: ocsp.Good}, {code: ocsp.Unknown}, {code: ocsp.Revoked, revokedAt: time.Unix(1_700_000_000, 0)},
			{code: ocsp.Revoked, revokedAt: time.Unix(1_700_000_123, 0), reason: ocsp.KeyCompromise}, {code: ocsp.Revoked, revokedAt: time.Unix(1_600_000_000, 0), reason: ocsp.CertificateHold}}
		for _, h := range certIDHashes {
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
							RevokedAt: st.revokedAt, RevocationReason: st.reason, Certificate: dcert, IssuerHash: h.hash}, fixedSigner{key})
						if err != nil {
							t.Fatal(err)
						}
					}
					id := &certID{hash: h.hash, serial: intContent(sn)}
					got, err := enc.response(produced, single{id: id, status: st, thisUpdate: this, nextUpdate: next})
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, want) {
						t.Fatalf("%s %v serial %x status %+v:\n got %x\nwant %x", curve.Params().Name, h.hash, sn, st, got, want)
					}
					signed, err := real.response(this, single{id: id, status: st, thisUpdate: this, nextUpdate: next})
					if err != nil {
						t.Fatal(err)
					}
					r, err := ocsp.ParseResponseForCert(signed, nil, ca)
					if err != nil {
						t.Fatalf("%s: the real answer does not verify: %v", curve.Params().Name, err)
					}
					if r.Status != st.code || r.SerialNumber.Cmp(sn) != 0 || !r.ThisUpdate.Equal(this) || !r.NextUpdate.Equal(next) ||
						r.RevocationReason != st.reason || (st.code == ocsp.Revoked && !r.RevokedAt.Equal(st.revokedAt)) || r.IssuerHash != h.hash {
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

// TestResponderIDByKey: answers name their signer byKey (RFC 5019
// §2.2.2), the SHA-1 of the delegated certificate's subjectPublicKey bits
// (RFC 6960 §4.2.1), and x/crypto/ocsp reads and verifies them.
func TestResponderIDByKey(t *testing.T) {
	ca, dcert, key := testCA(t, elliptic.P256(), "Manufacturing CA")
	is, _ := newIssuer("manufacturing", ca, nil)
	enc, err := newEncoder(is, dcert, key)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	der, err := enc.response(now, single{id: &certID{hash: crypto.SHA1, serial: []byte{5}}, status: certStatus{code: ocsp.Good}, thisUpdate: now, nextUpdate: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	bits, _ := publicKeyBits(dcert.RawSubjectPublicKeyInfo)
	sum := sha1.Sum(bits)
	want := append([]byte{0xa2, 22, 0x04, 20}, sum[:]...) // [2] EXPLICIT OCTET STRING (20 octets)
	if rid, _ := responseParts(t, der); !bytes.Equal(rid, want) {
		t.Fatalf("ResponderID %x, want %x", rid, want)
	}
	r, err := ocsp.ParseResponse(der, ca)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r.ResponderKeyHash, sum[:]) || r.RawResponderName != nil {
		t.Fatalf("x/crypto reads ResponderKeyHash %x, name %x", r.ResponderKeyHash, r.RawResponderName)
	}
}
