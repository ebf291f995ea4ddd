package lint

import (
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"net/url"
	"strconv"
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
	// Every field is written with its length, so no value can run into
	// the next. It is built for every certificate of a batch: no fmt.
	var b shapeBuf
	b.str("key", keyType)
	b.num("nb", t.NotBefore.Unix())
	b.num("na", t.NotAfter.Unix())
	b.num("ku", int64(t.KeyUsage))
	for _, e := range t.ExtKeyUsage {
		b.num("eku", int64(e))
	}
	for _, e := range t.UnknownExtKeyUsage {
		b.str("ueku", e.String())
	}
	b.str("ca", strconv.FormatBool(t.BasicConstraintsValid)+strconv.FormatBool(t.IsCA)+strconv.Itoa(t.MaxPathLen)+strconv.FormatBool(t.MaxPathLenZero))
	for _, u := range t.OCSPServer {
		b.str("ocsp", u)
	}
	for _, u := range t.IssuingCertificateURL {
		b.str("aia", u)
	}
	for _, u := range t.CRLDistributionPoints {
		b.str("crl", u)
	}
	for _, p := range t.Policies {
		b.str("pol", p.String())
	}
	for _, p := range t.PolicyIdentifiers {
		b.str("poli", p.String())
	}
	for _, e := range t.ExtraExtensions {
		b.str("ext", e.Id.String()+strconv.FormatBool(e.Critical)+string(e.Value))
	}
	cn := t.Subject.CommonName
	for _, rdn := range t.Subject.ToRDNSequence() {
		b.str("rdn", "")
		for _, a := range rdn {
			v, ok := a.Value.(string)
			if !ok {
				v = fmt.Sprint(a.Value)
			}
			if !a.Type.Equal(oidCountry) { // ISO 3166 codes are checked: kept
				v = mask(v)
			}
			b.str(a.Type.String(), v)
		}
	}
	rel := func(v string) {
		switch {
		case cn == "":
		case v == cn:
			b.str("rel", "=cn")
		case strings.EqualFold(v, cn):
			b.str("rel", "~cn")
		}
	}
	for _, d := range t.DNSNames {
		b.str("dns", mask(d))
		rel(d)
	}
	for _, e := range t.EmailAddresses {
		b.str("email", mask(e))
		rel(e)
	}
	for _, u := range t.URIs {
		b.str("uri", uriShape(u))
		rel(u.String())
	}
	for _, ip := range t.IPAddresses {
		b.str("ip", ip.String())
	}
	return string(b)
}

var oidCountry = asn1.ObjectIdentifier{2, 5, 4, 6}

type shapeBuf []byte

func (b *shapeBuf) str(k, v string) {
	*b = append(*b, k...)
	*b = append(*b, ' ')
	*b = strconv.AppendInt(*b, int64(len(v)), 10)
	*b = append(*b, ':')
	*b = append(*b, v...)
	*b = append(*b, ';')
}

func (b *shapeBuf) num(k string, v int64) {
	*b = append(*b, k...)
	*b = append(*b, ' ')
	*b = strconv.AppendInt(*b, v, 10)
	*b = append(*b, ';')
}

func uriShape(u *url.URL) string {
	if u.Opaque != "" {
		return strconv.Itoa(len(u.Scheme)) + ":" + u.Scheme + ":" + mask(u.Opaque)
	}
	c := *u
	c.Scheme = ""
	return strconv.Itoa(len(u.Scheme)) + ":" + u.Scheme + ":" + mask(c.String())
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
