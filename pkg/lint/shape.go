package lint

import (
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
)

// Shape names what zlint's verdict on a certificate can depend on, so
// that a signer may lint one certificate per shape instead of every one
// (zlint costs more per certificate than the HSM's signature).
//
// Two certificates have the same shape when they differ only in
//   - the serial number (certmill's: always 16 octets, positive),
//   - the public key's value (same algorithm, curve or modulus size) and
//     the key identifier derived from it,
//   - which letter or digit sits at each position of a subject attribute
//     or a name: every letter stands for its case ("a" or "A"), every digit
//     for "0", every other character for itself, so lengths, punctuation,
//     spaces, non-ASCII characters and thus each string's ASN.1 type are
//     the same.
//
// Kept literally, because lints read the words themselves: the last label
// of every dotted name (top-level domains, in-addr.arpa), labels with
// hyphens in their third and fourth positions (xn-- and reserved R-LDH
// labels), countries, IP addresses and URI schemes. Relations between
// fields that lints check (a SAN equal to the common name, with or
// without case) are part of the shape. Everything else, validity and
// extensions included, is part of it whole.
//
// keyType is profile.KeyType of the public key (ecdsa-p256, rsa-2048...).
func Shape(t *x509.Certificate, keyType string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "key=%s;nb=%d;na=%d;ku=%d;eku=%v;ueku=%v;ca=%v/%v/%d/%v;",
		keyType, t.NotBefore.Unix(), t.NotAfter.Unix(), t.KeyUsage, t.ExtKeyUsage, t.UnknownExtKeyUsage,
		t.BasicConstraintsValid, t.IsCA, t.MaxPathLen, t.MaxPathLenZero)
	fmt.Fprintf(&b, "ocsp=%q;aia=%q;crl=%q;pol=%v;", t.OCSPServer, t.IssuingCertificateURL, t.CRLDistributionPoints, t.Policies)
	for _, e := range t.ExtraExtensions {
		fmt.Fprintf(&b, "ext=%s/%v/%s;", e.Id, e.Critical, hex.EncodeToString(e.Value))
	}
	cn := t.Subject.CommonName
	for _, rdn := range t.Subject.ToRDNSequence() {
		b.WriteString("rdn")
		for _, a := range rdn {
			v := fmt.Sprint(a.Value)
			if a.Type.String() == "2.5.4.6" { // countryName: ISO 3166 codes are checked
				fmt.Fprintf(&b, "/%s=%q", a.Type, v)
				continue
			}
			fmt.Fprintf(&b, "/%s=%q", a.Type, mask(v))
		}
		b.WriteString(";")
	}
	rel := func(v string) string {
		switch {
		case cn == "":
			return ""
		case v == cn:
			return "=cn"
		case strings.EqualFold(v, cn):
			return "~cn"
		}
		return ""
	}
	for _, d := range t.DNSNames {
		fmt.Fprintf(&b, "dns=%q%s;", mask(d), rel(d))
	}
	for _, e := range t.EmailAddresses {
		fmt.Fprintf(&b, "email=%q%s;", mask(e), rel(e))
	}
	for _, u := range t.URIs {
		fmt.Fprintf(&b, "uri=%s%s;", uriShape(u), rel(u.String()))
	}
	for _, ip := range t.IPAddresses {
		fmt.Fprintf(&b, "ip=%s;", ip)
	}
	return b.String()
}

func uriShape(u *url.URL) string {
	if u.Opaque != "" {
		return fmt.Sprintf("%q:%q", u.Scheme, mask(u.Opaque))
	}
	c := *u
	c.Scheme = ""
	return fmt.Sprintf("%q:%q", u.Scheme, mask(c.String()))
}

// mask replaces letters and digits by their class, keeping the last label
// of a dotted name and xn--/R-LDH labels literally.
func mask(s string) string {
	labels := strings.Split(s, ".")
	for i, l := range labels {
		if (len(labels) > 1 && i == len(labels)-1) || (len(l) >= 4 && l[2:4] == "--") {
			continue
		}
		labels[i] = strings.Map(func(r rune) rune {
			switch {
			case r >= 'a' && r <= 'z':
				return 'a'
			case r >= 'A' && r <= 'Z':
				return 'A'
			case r >= '0' && r <= '9':
				return '0'
			}
			return r
		}, l)
	}
	return strings.Join(labels, ".")
}
