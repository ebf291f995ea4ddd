package lint

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestShapeVerdictHolds checks lint.Shape's promise against zlint itself:
// for certificates like the default profiles' and for ones zlint refuses,
// random variants of the same shape (other letters and digits, another
// key, another serial) get the same shape and exactly the same findings,
// and changing what the shape keeps literally changes the shape.
func TestShapeVerdictHolds(t *testing.T) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now().Truncate(time.Second)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "Acme Manufacturing CA", Organization: []string{"Acme Meters"}, Country: []string{"DE"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(30, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, SubjectKeyId: []byte{1, 2, 3, 4}}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	l, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	type names struct {
		cn, o, sn string
		dns       []string
		uri       string
	}
	build := func(n names) *x509.Certificate {
		c := &x509.Certificate{
			Subject:   pkix.Name{CommonName: n.cn, Country: []string{"DE"}, SerialNumber: n.sn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(20, 0, 0),
			KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
			BasicConstraintsValid: true, DNSNames: n.dns,
			OCSPServer: []string{"http://127.0.0.1:8081/manufacturing"}, IssuingCertificateURL: []string{"http://127.0.0.1:8082/manufacturing.crt"},
			CRLDistributionPoints: []string{"http://127.0.0.1:8082/manufacturing.crl"},
		}
		if n.o != "" {
			c.Subject.Organization = []string{n.o}
		}
		if n.uri != "" {
			u, err := url.Parse(n.uri)
			if err != nil {
				t.Fatal(err)
			}
			c.URIs = []*url.URL{u}
		}
		return c
	}
	verdict := func(tmpl *x509.Certificate) (string, string) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		b := make([]byte, 16)
		rand.Read(b)
		b[0] = b[0]&0x7f | 0x40
		tmpl.SerialNumber = new(big.Int).SetBytes(b)
		pub, _ := key.PublicKey.Bytes()
		ski := sha256.Sum256(pub)
		tmpl.SubjectKeyId = ski[:20]
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		fs, err := l.Certificate(der)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, f := range fs {
			out = append(out, f.Status+" "+f.Lint)
		}
		return Shape(tmpl, "ecdsa-p256"), strings.Join(out, ", ")
	}
	cases := []struct {
		name  string
		base  names
		clean bool
	}{
		{"device", names{cn: "MTR-000123", o: "Acme Meters", sn: "SN-4711", uri: "urn:dev:acme:MTR-000123"}, true},
		{"gateway", names{cn: "gw-north-1", o: "Acme Meters", dns: []string{"gw-north-1.grid.acme-meters.example"}}, true},
		{"dotted common name", names{cn: "mtr.0001.line7", o: "Acme Meters"}, true},
		{"idn label", names{cn: "gw-sued-2", dns: []string{"gw-sued-2.xn--mnchen-3ya.example"}}, true},
		{"trailing space", names{cn: "Jane Doe ", o: "Acme Meters"}, false},
		{"leading space in organization", names{cn: "MTR-000124", o: " Acme Meters"}, false},
		{"label over 63 characters", names{cn: "gw-long", dns: []string{strings.Repeat("a1", 32) + ".grid.example"}}, false},
		{"common name not in the SANs", names{cn: "gw-east-4", dns: []string{"gw-west-9.grid.example"}}, true},
	}
	r := mrand.New(mrand.NewPCG(1, 2))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			shape, want := verdict(build(tc.base))
			if (want == "") != tc.clean {
				t.Fatalf("the base certificate's findings: %q", want)
			}
			for range 25 {
				v := tc.base
				v.cn, v.o, v.sn = vary(r, v.cn), vary(r, v.o), vary(r, v.sn)
				if scheme, rest, ok := strings.Cut(v.uri, ":"); ok { // the scheme stays
					v.uri = scheme + ":" + vary(r, rest)
				}
				v.dns = nil
				for _, d := range tc.base.dns {
					v.dns = append(v.dns, vary(r, d))
				}
				if v.cn != "" && len(tc.base.dns) > 0 && tc.base.dns[0] == tc.base.cn {
					v.dns[0] = v.cn
				}
				s, got := verdict(build(v))
				if s != shape {
					t.Fatalf("variant %+v has another shape:\n%s\n%s", v, s, shape)
				}
				if got != want {
					t.Fatalf("variant %+v of the same shape: findings %q, the base's %q", v, got, want)
				}
			}
		})
	}
	// What the shape keeps literally changes it.
	base := build(names{cn: "gw-north-1", dns: []string{"gw-north-1.grid.acme-meters.example"}})
	for name, other := range map[string]*x509.Certificate{
		"top-level domain": build(names{cn: "gw-north-1", dns: []string{"gw-north-1.grid.acme-meters.exampla"}}),
		"R-LDH label":      build(names{cn: "gw-north-1", dns: []string{"xn--north-1.grid.acme-meters.example"}}),
		"length":           build(names{cn: "gw-north-12", dns: []string{"gw-north-12.grid.acme-meters.example"}}),
		"punctuation":      build(names{cn: "gw_north-1", dns: []string{"gw_north-1.grid.acme-meters.example"}}),
		"case":             build(names{cn: "GW-north-1", dns: []string{"gw-north-1.grid.acme-meters.example"}}),
	} {
		if Shape(other, "ecdsa-p256") == Shape(base, "ecdsa-p256") {
			t.Errorf("%s: changing it keeps the shape", name)
		}
	}
	if Shape(base, "ecdsa-p256") == Shape(base, "ecdsa-p384") {
		t.Error("the key type is not part of the shape")
	}
}

// vary replaces every letter and digit that lint.Shape masks by a random
// one of the same class.
func vary(r *mrand.Rand, s string) string {
	labels := strings.Split(s, ".")
	for i, l := range labels {
		if (len(labels) > 1 && i == len(labels)-1) || (len(l) >= 4 && l[2:4] == "--") {
			continue
		}
		labels[i] = strings.Map(func(c rune) rune {
			switch {
			case c >= 'a' && c <= 'z':
				return 'a' + rune(r.IntN(26))
			case c >= 'A' && c <= 'Z':
				return 'A' + rune(r.IntN(26))
			case c >= '0' && c <= '9':
				return '0' + rune(r.IntN(10))
			}
			return c
		}, l)
	}
	return strings.Join(labels, ".")
}

func ExampleShape() {
	c := &x509.Certificate{Subject: pkix.Name{CommonName: "MTR-000123", Country: []string{"DE"}}, DNSNames: []string{"mtr-000123.meters.example"}}
	s := Shape(c, "ecdsa-p256")
	fmt.Println(s[strings.Index(s, "rdn"):])
	// Output: rdn 0:;2.5.4.6 2:DE;rdn 0:;2.5.4.3 10:AAA-000000;dns 25:aaa-000000.aaaaaa.example;
}
