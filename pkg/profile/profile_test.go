package profile_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certmill/certmill/pkg/ceremony/ceremonytest"
	"github.com/certmill/certmill/pkg/hsm"
	"github.com/certmill/certmill/pkg/lint"
	"github.com/certmill/certmill/pkg/profile"
	"github.com/certmill/certmill/pkg/serial"
)

func loadIssuers(t *testing.T) *profile.File {
	t.Helper()
	f, err := profile.Load("../../configs/issuers.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func csr(t *testing.T, key crypto.Signer, tmpl *x509.CertificateRequest) *x509.CertificateRequest {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CheckSignature(); err != nil {
		t.Fatal(err)
	}
	return c
}

func ecKey(t *testing.T, c elliptic.Curve) crypto.Signer {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustURL(s string) *url.URL { u, _ := url.Parse(s); return u }

// TestIssueEachProfile issues one certificate per shipped profile with the
// issuing CA's key in SoftHSM2, then has zlint and openssl judge it.
func TestIssueEachProfile(t *testing.T) {
	h := ceremonytest.New(t, "profiles")
	online, err := hsm.Open(h.Online, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer online.Close()
	issuers := loadIssuers(t)
	rsa3072, err := rsa.GenerateKey(rand.Reader, 3072)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		issuer, profile string
		key             crypto.Signer
		req             x509.CertificateRequest
		purpose         string
	}{
		{"manufacturing", "device", ecKey(t, elliptic.P256()), x509.CertificateRequest{
			Subject: pkix.Name{CommonName: "MTR-0001-0042", SerialNumber: "SN-42"},
			URIs:    []*url.URL{mustURL("urn:dev:mac:0024befffe804ff1")}}, "sslclient"},
		{"firmware", "firmware-signer", rsa3072, x509.CertificateRequest{
			Subject: pkix.Name{CommonName: "Release Engineer Jane Doe"}}, ""},
		{"codeverify", "gateway", ecKey(t, elliptic.P384()), x509.CertificateRequest{
			Subject: pkix.Name{CommonName: "gw-north-7"}, DNSNames: []string{"gw-north-7.grid.acme-meters.example"}}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.profile, func(t *testing.T) {
			iss := issuers.Issuer(tc.issuer)
			pr := iss.Profiles[tc.profile]
			caCert := readPEM(t, h.File(tc.issuer+".pem"))
			caKey, err := online.Key(h.KeyLabel(t, tc.issuer))
			if err != nil {
				t.Fatal(err)
			}
			sn, _ := serial.New()
			tmpl, err := iss.Template(pr, csr(t, tc.key, &tc.req), sn, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, tc.key.Public(), caKey)
			if err != nil {
				t.Fatal(err)
			}
			c, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatal(err)
			}
			if c.OCSPServer[0] != iss.URLs.OCSP || c.IssuingCertificateURL[0] != iss.URLs.CAIssuers || c.CRLDistributionPoints[0] != iss.URLs.CRL {
				t.Fatalf("AIA/CRLDP: %v %v %v", c.OCSPServer, c.IssuingCertificateURL, c.CRLDistributionPoints)
			}
			if len(c.ExtKeyUsage) != len(pr.ExtKeyUsage) {
				t.Fatalf("EKU %v, profile says %v", c.ExtKeyUsage, pr.ExtKeyUsage)
			}
			if !hasFreshest(c, iss.URLs.DeltaCRL) {
				t.Fatal("no Freshest CRL naming the delta CRL")
			}
			if c.SerialNumber.Sign() <= 0 || len(c.SerialNumber.Bytes()) > 20 || c.SerialNumber.BitLen() < 64 {
				t.Fatalf("serial %x", c.SerialNumber)
			}

			l, err := lint.New(lint.Options{Exclude: pr.LintExclude})
			if err != nil {
				t.Fatal(err)
			}
			fs, err := l.Certificate(der)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range fs {
				t.Errorf("zlint: %s", f)
			}

			dir := t.TempDir()
			leaf := filepath.Join(dir, "leaf.pem")
			os.WriteFile(leaf, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
			// OpenSSL 3.0 has no codeSigning purpose (3.2 added it): those
			// are checked for the chain only, their EKU above.
			args := []string{"verify", "-x509_strict"}
			if tc.purpose != "" {
				args = append(args, "-purpose", tc.purpose)
			}
			args = append(args, "-CAfile", h.File("root.pem"), "-untrusted", h.File(tc.issuer+".pem"), leaf)
			out, err := exec.Command("openssl", args...).CombinedOutput()
			if err != nil || !bytes.Contains(out, []byte(": OK")) {
				t.Fatalf("openssl verify: %v\n%s", err, out)
			}
		})
	}
}

func hasFreshest(c *x509.Certificate, uri string) bool {
	for _, e := range c.Extensions {
		if e.Id.Equal(profile.OIDFreshestCRL) {
			return !e.Critical && bytes.Equal(e.Value, profile.DistributionPoints(uri))
		}
	}
	return false
}

func readPEM(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := pem.Decode(b)
	c, err := x509.ParseCertificate(p.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRejections(t *testing.T) {
	t.Parallel()
	issuers := loadIssuers(t)
	device := issuers.Issuer("manufacturing").Profiles["device"]
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	p256 := ecKey(t, elliptic.P256())
	cases := []struct {
		name string
		key  crypto.Signer
		req  x509.CertificateRequest
		want string
	}{
		{"forbidden key type", rsa2048, x509.CertificateRequest{Subject: pkix.Name{CommonName: "MTR-1"}}, "key type rsa-2048 is not allowed"},
		{"forbidden curve", ecKey(t, elliptic.P521()), x509.CertificateRequest{Subject: pkix.Name{CommonName: "MTR-1"}}, "is not allowed"},
		{"missing common name", p256, x509.CertificateRequest{}, "subject common_name is required"},
		{"bad common name", p256, x509.CertificateRequest{Subject: pkix.Name{CommonName: "a b"}}, "does not match"},
		{"DNS SAN not allowed", p256, x509.CertificateRequest{Subject: pkix.Name{CommonName: "MTR-1"}, DNSNames: []string{"evil.example"}}, "DNS SANs are not allowed"},
		{"two URIs", p256, x509.CertificateRequest{Subject: pkix.Name{CommonName: "MTR-1"}, URIs: []*url.URL{mustURL("urn:dev:a:1"), mustURL("urn:dev:a:2")}}, "at most 1"},
		{"CA requested", p256, x509.CertificateRequest{Subject: pkix.Name{CommonName: "MTR-1"}, ExtraExtensions: []pkix.Extension{{Id: []int{2, 5, 29, 19}, Critical: true, Value: []byte{0x30, 0x03, 0x01, 0x01, 0xff}}}}, "may not ask to be a CA"},
		{"unknown extension", p256, x509.CertificateRequest{Subject: pkix.Name{CommonName: "MTR-1"}, ExtraExtensions: []pkix.Extension{{Id: []int{1, 2, 3, 4}, Value: []byte{0x05, 0x00}}}}, "requested extension 1.2.3.4 is not allowed"},
		{"key usage not granted", p256, x509.CertificateRequest{Subject: pkix.Name{CommonName: "MTR-1"}, ExtraExtensions: []pkix.Extension{{Id: []int{2, 5, 29, 15}, Critical: true, Value: []byte{0x03, 0x02, 0x05, 0xa0}}}}, "key usage keyEncipherment, which this profile does not grant"},
		{"EKU not granted", p256, x509.CertificateRequest{Subject: pkix.Name{CommonName: "MTR-1"}, ExtraExtensions: []pkix.Extension{{Id: []int{2, 5, 29, 37}, Value: []byte{0x30, 0x14, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03}}}}, "extended key usage codeSigning, which this profile does not grant"},
		{"granted usages requested", p256, x509.CertificateRequest{Subject: pkix.Name{CommonName: "MTR-1"}, ExtraExtensions: []pkix.Extension{
			{Id: []int{2, 5, 29, 15}, Critical: true, Value: []byte{0x03, 0x02, 0x03, 0x88}},
			{Id: []int{2, 5, 29, 37}, Value: []byte{0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02}}}}, ""},
		{"organization overridden", p256, x509.CertificateRequest{Subject: pkix.Name{CommonName: "MTR-1", Organization: []string{"Evil"}}}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sn, _ := serial.New()
			tmpl, err := issuers.Issuer("manufacturing").Template(device, csr(t, tc.key, &tc.req), sn, time.Now())
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if tmpl.Subject.Organization[0] != "Acme Meters" {
					t.Fatalf("organization %v, want the profile's fixed value", tmpl.Subject.Organization)
				}
				return
			}
			if !errors.Is(err, profile.ErrRejected) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a rejection containing %q", err, tc.want)
			}
		})
	}
}

func TestShippedIssuersValidate(t *testing.T) {
	t.Parallel()
	f := loadIssuers(t)
	if len(f.Issuers) != 3 {
		t.Fatalf("%d issuers", len(f.Issuers))
	}
	bad := &profile.File{Issuers: []*profile.Issuer{{Name: "x", URLs: profile.URLs{OCSP: "ftp://x"}, Profiles: map[string]*profile.Profile{"p": {KeyUsage: []string{"keyCertSign"}}}}}}
	err := bad.Validate()
	for _, want := range []string{"urls.ocsp", "urls.crl", "validity_days", "keyCertSign", "ext_key_usage", "key_types"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to name %s", err, want)
		}
	}
}
