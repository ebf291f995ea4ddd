// Package tbs builds the to-be-signed part of leaf certificates that share
// a shape (pkg/lint.Shape) from one prototype that crypto/x509 made, so
// that issuing a batch does not pay crypto/x509's reflective encoder for
// every certificate: about a third of a P-256 issuance beyond the
// signatures on this machine.
//
// A Prototype keeps the prototype's fields as encoded bytes and encodes
// only what differs between certificates of one shape: the serial number,
// the subject, the public key, the subject key identifier and the subject
// alternative names. For certificates of the prototype's shape the result
// is byte for byte what x509.CreateCertificate makes; TestSameAsCrypto509
// holds it to that. The signature is then the caller's (the HSM's), over
// the digest Hash names.
package tbs

import (
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"net"
	"net/url"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

var (
	oidSKI = asn1.ObjectIdentifier{2, 5, 29, 14}
	oidSAN = asn1.ObjectIdentifier{2, 5, 29, 17}
)

// Prototype is one certificate's TBSCertificate, taken apart.
type Prototype struct {
	own                               []byte // the prototype's own TBSCertificate
	version, sigAlg, issuer, validity []byte // encoded fields, as they are
	exts                              []ext
	// SignatureAlgorithm and Hash say how the issuer signs: Hash is the
	// digest to hand to crypto.Signer (0 for Ed25519: the message itself).
	SignatureAlgorithm x509.SignatureAlgorithm
	Hash               crypto.Hash
}

type ext struct {
	raw      []byte // the whole Extension, for those kept as they are
	id       asn1.ObjectIdentifier
	critical bool
}

// New takes apart a certificate that x509.CreateCertificate made (any
// signature: the lint draft's throwaway one will do).
func New(certDER []byte) (*Prototype, error) {
	c, err := x509.ParseCertificate(certDER)
	if err != nil {
		return nil, fmt.Errorf("tbs: prototype: %w", err)
	}
	p := &Prototype{own: c.RawTBSCertificate, SignatureAlgorithm: c.SignatureAlgorithm}
	switch c.SignatureAlgorithm {
	case x509.ECDSAWithSHA256, x509.SHA256WithRSA:
		p.Hash = crypto.SHA256
	case x509.ECDSAWithSHA384, x509.SHA384WithRSA:
		p.Hash = crypto.SHA384
	case x509.ECDSAWithSHA512, x509.SHA512WithRSA:
		p.Hash = crypto.SHA512
	case x509.PureEd25519:
	default:
		return nil, fmt.Errorf("tbs: prototype signed with %v, not supported", c.SignatureAlgorithm)
	}
	in := cryptobyte.String(c.RawTBSCertificate)
	var tbs cryptobyte.String
	if !in.ReadASN1(&tbs, cbasn1.SEQUENCE) || !in.Empty() {
		return nil, errors.New("tbs: prototype: malformed TBSCertificate")
	}
	var serial, subject, spki, exts cryptobyte.String
	ok := tbs.ReadASN1Element((*cryptobyte.String)(&p.version), cbasn1.Tag(0).Constructed().ContextSpecific()) &&
		tbs.ReadASN1Element(&serial, cbasn1.INTEGER) &&
		tbs.ReadASN1Element((*cryptobyte.String)(&p.sigAlg), cbasn1.SEQUENCE) &&
		tbs.ReadASN1Element((*cryptobyte.String)(&p.issuer), cbasn1.SEQUENCE) &&
		tbs.ReadASN1Element((*cryptobyte.String)(&p.validity), cbasn1.SEQUENCE) &&
		tbs.ReadASN1Element(&subject, cbasn1.SEQUENCE) &&
		tbs.ReadASN1Element(&spki, cbasn1.SEQUENCE)
	if !ok {
		return nil, errors.New("tbs: prototype: malformed TBSCertificate fields")
	}
	if !tbs.Empty() {
		var wrapped cryptobyte.String
		if !tbs.ReadASN1(&wrapped, cbasn1.Tag(3).Constructed().ContextSpecific()) || !tbs.Empty() ||
			!wrapped.ReadASN1(&exts, cbasn1.SEQUENCE) || !wrapped.Empty() {
			return nil, errors.New("tbs: prototype: malformed extensions (or unique identifiers, not supported)")
		}
	}
	for !exts.Empty() {
		var raw, body cryptobyte.String
		if !exts.ReadASN1Element(&raw, cbasn1.SEQUENCE) {
			return nil, errors.New("tbs: prototype: malformed extension")
		}
		body = raw
		var e ext
		var inner cryptobyte.String
		if !body.ReadASN1(&inner, cbasn1.SEQUENCE) || !inner.ReadASN1ObjectIdentifier(&e.id) ||
			(inner.PeekASN1Tag(cbasn1.BOOLEAN) && !inner.ReadASN1Boolean(&e.critical)) {
			return nil, errors.New("tbs: prototype: malformed extension")
		}
		e.raw = raw
		p.exts = append(p.exts, e)
	}
	return p, nil
}

// Own is the prototype's own TBSCertificate: that of the certificate it
// was made from, for an issuer whose key signs what its draft was.
func (p *Prototype) Own() []byte { return p.own }

// TBS encodes the TBSCertificate of t for the public key pub: the
// prototype's fields, with t's serial, subject, key, subject key
// identifier and subject alternative names. t must have the prototype's
// shape.
func (p *Prototype) TBS(t *x509.Certificate, pub crypto.PublicKey) ([]byte, error) {
	if t.SerialNumber == nil || t.SerialNumber.Sign() <= 0 {
		return nil, errors.New("tbs: serial must be positive")
	}
	subject, err := asn1.Marshal(t.Subject.ToRDNSequence())
	if err != nil {
		return nil, fmt.Errorf("tbs: subject: %w", err)
	}
	if len(t.RawSubject) > 0 {
		subject = t.RawSubject
	}
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("tbs: public key: %w", err)
	}
	var san []byte
	hasSAN := len(t.DNSNames)+len(t.EmailAddresses)+len(t.IPAddresses)+len(t.URIs) > 0
	if hasSAN {
		if san, err = marshalSANs(t.DNSNames, t.EmailAddresses, t.IPAddresses, t.URIs); err != nil {
			return nil, err
		}
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(p.version)
		b.AddASN1BigInt(t.SerialNumber)
		b.AddBytes(p.sigAlg)
		b.AddBytes(p.issuer)
		b.AddBytes(p.validity)
		b.AddBytes(subject)
		b.AddBytes(spki)
		if len(p.exts) == 0 {
			return
		}
		b.AddASN1(cbasn1.Tag(3).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				for _, e := range p.exts {
					switch {
					case e.id.Equal(oidSKI):
						if len(t.SubjectKeyId) == 0 {
							b.SetError(errors.New("tbs: the prototype has a subject key identifier and the certificate none: another shape"))
							return
						}
						addExt(b, e, func(b *cryptobyte.Builder) { b.AddASN1OctetString(t.SubjectKeyId) })
					case e.id.Equal(oidSAN):
						if !hasSAN {
							b.SetError(errors.New("tbs: the prototype has subject alternative names and the certificate none: another shape"))
							return
						}
						addExt(b, e, func(b *cryptobyte.Builder) { b.AddBytes(san) })
						hasSAN = false
					default:
						b.AddBytes(e.raw)
					}
				}
			})
		})
	})
	if hasSAN {
		return nil, errors.New("tbs: the certificate has subject alternative names and the prototype none: another shape")
	}
	return b.Bytes()
}

func addExt(b *cryptobyte.Builder, e ext, value cryptobyte.BuilderContinuation) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(e.id)
		if e.critical {
			b.AddASN1Boolean(true)
		}
		b.AddASN1(cbasn1.OCTET_STRING, value)
	})
}

// marshalSANs encodes GeneralNames as crypto/x509 does: DNS names, then
// email addresses, IP addresses (IPv4 in 4 octets) and URIs, each an
// IA5String.
func marshalSANs(dns, emails []string, ips []net.IP, uris []*url.URL) ([]byte, error) {
	var b cryptobyte.Builder
	ia5 := func(b *cryptobyte.Builder, tag uint8, s string) {
		for i := 0; i < len(s); i++ {
			if s[i] >= 0x80 {
				b.SetError(fmt.Errorf("tbs: %q cannot be an IA5String", s))
				return
			}
		}
		b.AddASN1(cbasn1.Tag(tag).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(s)) })
	}
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, d := range dns {
			ia5(b, 2, d)
		}
		for _, e := range emails {
			ia5(b, 1, e)
		}
		for _, ip := range ips {
			v := ip.To4()
			if v == nil {
				v = ip
			}
			b.AddASN1(cbasn1.Tag(7).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(v) })
		}
		for _, u := range uris {
			ia5(b, 6, u.String())
		}
	})
	return b.Bytes()
}

// Certificate assembles the signed certificate from a TBS this prototype
// made and the issuer's signature over it.
func (p *Prototype) Certificate(tbs, sig []byte) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbs)
		b.AddBytes(p.sigAlg)
		b.AddASN1BitString(sig)
	})
	return b.Bytes()
}
