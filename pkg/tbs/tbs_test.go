package tbs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"testing"
	"time"
)

// TestSameAsCrypto509: for issuers and subjects of every key type the
// signer handles and names of every kind, the TBS built from another
// certificate's prototype is byte for byte the one x509.CreateCertificate
// makes, and the assembled certificate verifies under the issuer.
func TestSameAsCrypto509(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	issuers := map[string]crypto.Signer{"p256": p256, "p384": p384, "rsa": rsa2048, "ed25519": ed}
	now := time.Now().Truncate(time.Second)
	n := 0
	mkTmpl := func(i int, names bool) *x509.Certificate {
		n++
		b := make([]byte, 16)
		rand.Read(b)
		b[0] = b[0]&0x7f | 0x40
		ski := sha256.Sum256(b)
		c := &x509.Certificate{
			SerialNumber: new(big.Int).SetBytes(b),
			Subject:      pkix.Name{CommonName: fmt.Sprintf("MTR-%06d", i), Organization: []string{"Acme Meters"}, Country: []string{"DE"}, SerialNumber: fmt.Sprintf("SN-%d", i)},
			NotBefore:    now.Add(-time.Hour), NotAfter: now.AddDate(20, 0, 0),
			KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
			BasicConstraintsValid: true, SubjectKeyId: ski[:20],
			OCSPServer: []string{"http://127.0.0.1:8081/manufacturing"}, IssuingCertificateURL: []string{"http://127.0.0.1:8082/manufacturing.crt"},
			CRLDistributionPoints: []string{"http://127.0.0.1:8082/manufacturing.crl"},
			ExtraExtensions:       []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 46}, Value: []byte{0x30, 0x03, 0x02, 0x01, 0x05}}},
		}
		if names {
			u, _ := url.Parse(fmt.Sprintf("urn:dev:acme:MTR-%06d", i))
			c.URIs = []*url.URL{u}
			c.DNSNames = []string{fmt.Sprintf("mtr-%06d.meters.example", i), "x.example"}
			c.EmailAddresses = []string{fmt.Sprintf("ops+%d@acme.example", i)}
			c.IPAddresses = []net.IP{net.IPv4(10, 0, byte(i), 1), net.ParseIP(fmt.Sprintf("fd00::%x", i))}
		}
		return c
	}
	for iname, ik := range issuers {
		caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "CA " + iname}, NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(30, 0, 0),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, SubjectKeyId: []byte{9, 9, 9}}
		caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, ik.Public(), ik)
		if err != nil {
			t.Fatal(err)
		}
		ca, _ := x509.ParseCertificate(caDER)
		for _, names := range []bool{false, true} {
			for lname, leaf := range map[string]crypto.PublicKey{"p256": p256.Public(), "p384": p384.Public(), "rsa": rsa2048.Public(), "ed25519": ed.Public()} {
				t.Run(fmt.Sprintf("%s/%s/names=%v", iname, lname, names), func(t *testing.T) {
					first, err := x509.CreateCertificate(rand.Reader, mkTmpl(1, names), ca, leaf, ik)
					if err != nil {
						t.Fatal(err)
					}
					p, err := New(first)
					if err != nil {
						t.Fatal(err)
					}
					if fc, _ := x509.ParseCertificate(first); !bytes.Equal(p.Own(), fc.RawTBSCertificate) {
						t.Fatal("Own is not the prototype's TBS")
					}
					for i := 2; i < 40; i += 7 {
						tmpl := mkTmpl(i*1000+i, names)
						want, err := x509.CreateCertificate(rand.Reader, tmpl, ca, leaf, ik)
						if err != nil {
							t.Fatal(err)
						}
						wc, _ := x509.ParseCertificate(want)
						got, err := p.TBS(tmpl, leaf)
						if err != nil {
							t.Fatal(err)
						}
						if !bytes.Equal(got, wc.RawTBSCertificate) {
							t.Fatalf("TBS differs from crypto/x509's:\n got %x\nwant %x", got, wc.RawTBSCertificate)
						}
						msg := got
						if p.Hash != 0 {
							h := p.Hash.New()
							h.Write(got)
							msg = h.Sum(nil)
						}
						sig, err := ik.Sign(rand.Reader, msg, p.Hash)
						if err != nil {
							t.Fatal(err)
						}
						der, err := p.Certificate(got, sig)
						if err != nil {
							t.Fatal(err)
						}
						c, err := x509.ParseCertificate(der)
						if err != nil {
							t.Fatal(err)
						}
						if err := c.CheckSignatureFrom(ca); err != nil {
							t.Fatal(err)
						}
					}
				})
			}
		}
	}
	// Another shape is refused, not mis-encoded.
	first, _ := x509.CreateCertificate(rand.Reader, mkTmpl(1, false), mkTmpl(0, false), p256.Public(), p256)
	p, err := New(first)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.TBS(mkTmpl(2, true), p256.Public()); err == nil {
		t.Fatal("names on a prototype without them: no error")
	}
	withNames, _ := x509.CreateCertificate(rand.Reader, mkTmpl(1, true), mkTmpl(0, false), p256.Public(), p256)
	if p, _ = New(withNames); p == nil {
		t.Fatal("prototype with names")
	}
	if _, err := p.TBS(mkTmpl(2, false), p256.Public()); err == nil {
		t.Fatal("no names on a prototype with them: no error")
	}
}
