package responder

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	encasn1 "encoding/asn1"
	"errors"
	"time"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
	"golang.org/x/crypto/ocsp"
)

// encoder writes one issuer's signed OCSP responses (RFC 6960 §4.2.1) for
// one delegated responder. Everything that does not change from answer to
// answer is encoded once, here: the responder's ID, its certificate, the
// signature algorithm and, per hash algorithm and parameters form, the
// CertID's issuer part. With the ResponderID set to byName it writes what
// x/crypto/ocsp.CreateResponse writes, byte for byte
// (TestEncoderSameAsXCrypto), without reflection: a flood of never-issued
// serials is signed at request time, one answer each.
type encoder struct {
	key         crypto.Signer
	hash        crypto.Hash
	sigAlg      []byte // AlgorithmIdentifier
	responderID []byte // [2] EXPLICIT KeyHash (byKey)
	certs       []byte // [0] EXPLICIT SEQUENCE OF Certificate
	// certID holds hashAlgorithm, issuerNameHash and issuerKeyHash, with
	// the hash's parameters NULL ([0]) or absent ([1]): see certID.noParams.
	certID map[crypto.Hash][2][]byte
}

var (
	oidOCSPBasic     = encasn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 1}
	oidECDSAWithSHA  = map[elliptic.Curve]encasn1.ObjectIdentifier{}
	hashOfCurve      = map[elliptic.Curve]crypto.Hash{}
	errNoEncoderFor  = errors.New("responder: the delegated responder's key is not ECDSA on P-256, P-384 or P-521")
	tagResponderKey  = asn1.Tag(2).Constructed().ContextSpecific()
	tagCerts         = asn1.Tag(0).Constructed().ContextSpecific()
	tagResponseBytes = asn1.Tag(0).Constructed().ContextSpecific()
	tagNextUpdate    = asn1.Tag(0).Constructed().ContextSpecific()
	tagGood          = asn1.Tag(0).ContextSpecific()
	tagRevoked       = asn1.Tag(1).Constructed().ContextSpecific()
	tagUnknown       = asn1.Tag(2).ContextSpecific()
	tagRevReason     = asn1.Tag(0).Constructed().ContextSpecific()
)

const generalizedLayout = "20060102150405Z0700"

func init() {
	oidECDSAWithSHA[elliptic.P256()] = encasn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSAWithSHA[elliptic.P384()] = encasn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSAWithSHA[elliptic.P521()] = encasn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
	hashOfCurve[elliptic.P256()] = crypto.SHA256
	hashOfCurve[elliptic.P384()] = crypto.SHA384
	hashOfCurve[elliptic.P521()] = crypto.SHA512
}

// newEncoder prepares the answers of is signed by key under cert.
func newEncoder(is *issuer, cert *x509.Certificate, key crypto.Signer) (*encoder, error) {
	pub, ok := key.Public().(*ecdsa.PublicKey)
	if !ok || oidECDSAWithSHA[pub.Curve] == nil {
		return nil, errNoEncoderFor
	}
	bits, err := publicKeyBits(cert.RawSubjectPublicKeyInfo)
	if err != nil {
		return nil, err
	}
	e := &encoder{key: key, hash: hashOfCurve[pub.Curve], certID: map[crypto.Hash][2][]byte{}}
	var b cryptobyte.Builder
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidECDSAWithSHA[pub.Curve]) })
	e.sigAlg = b.BytesOrPanic()
	// RFC 5019 §2.2.2 (and RFC 9919): byKey. RFC 6960 §4.2.1: "KeyHash ::=
	// OCTET STRING -- SHA-1 hash of responder's public key (excluding the
	// tag and length and number of unused bits)".
	keyHash := sha1.Sum(bits)
	b = cryptobyte.Builder{}
	b.AddASN1(tagResponderKey, func(b *cryptobyte.Builder) { b.AddASN1OctetString(keyHash[:]) })
	e.responderID = b.BytesOrPanic()
	b = cryptobyte.Builder{}
	b.AddASN1(tagCerts, func(b *cryptobyte.Builder) {
		b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddBytes(cert.Raw) })
	})
	e.certs = b.BytesOrPanic()
	for _, h := range certIDHashes {
		var forms [2][]byte
		for i, noParams := range []bool{false, true} {
			b = cryptobyte.Builder{}
			b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(h.oid)
				if !noParams {
					b.AddASN1NULL()
				}
			})
			b.AddASN1OctetString(is.nameHash[h.hash])
			b.AddASN1OctetString(is.keyHash[h.hash])
			forms[i] = b.BytesOrPanic()
		}
		e.certID[h.hash] = forms
	}
	return e, nil
}

// certStatus is what one answer says.
type certStatus struct {
	code      int // ocsp.Good, ocsp.Revoked or ocsp.Unknown
	revokedAt time.Time
	reason    int // RFC 5280 CRLReason; 0 (unspecified) is left out
}

// single is one SingleResponse: the CertID as the request named it, and
// what is said of it when.
type single struct {
	id                     *certID
	status                 certStatus
	thisUpdate, nextUpdate time.Time
}

// response returns the signed OCSPResponse with singles, in their order.
// Times are written to the second, in UTC.
func (e *encoder) response(producedAt time.Time, singles ...single) ([]byte, error) {
	for _, s := range singles {
		if _, ok := e.certID[s.id.hash]; !ok {
			return nil, errors.New("responder: unsupported CertID hash")
		}
	}
	var tb cryptobyte.Builder
	tb.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) { // ResponseData
		b.AddBytes(e.responderID)
		addGeneralized(b, producedAt)
		b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) { // responses
			for _, s := range singles {
				addSingle(b, e.certID[s.id.hash], s)
			}
		})
	})
	tbs, err := tb.Bytes()
	if err != nil {
		return nil, err
	}
	d := e.hash.New()
	d.Write(tbs)
	sig, err := e.key.Sign(rand.Reader, d.Sum(nil), e.hash)
	if err != nil {
		return nil, err
	}
	var b cryptobyte.Builder
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) { // OCSPResponse
		b.AddASN1Enum(int64(ocsp.Success))
		b.AddASN1(tagResponseBytes, func(b *cryptobyte.Builder) {
			b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) { // ResponseBytes
				b.AddASN1ObjectIdentifier(oidOCSPBasic)
				b.AddASN1(asn1.OCTET_STRING, func(b *cryptobyte.Builder) {
					b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) { // BasicOCSPResponse
						b.AddBytes(tbs)
						b.AddBytes(e.sigAlg)
						b.AddASN1(asn1.BIT_STRING, func(b *cryptobyte.Builder) {
							b.AddUint8(0)
							b.AddBytes(sig)
						})
						b.AddBytes(e.certs)
					})
				})
			})
		})
	})
	return b.Bytes()
}

// addSingle writes one SingleResponse; forms is the CertID's issuer part
// in its two forms.
func addSingle(b *cryptobyte.Builder, forms [2][]byte, s single) {
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) { // SingleResponse
		b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) { // CertID, as the request had it
			if s.id.noParams {
				b.AddBytes(forms[1])
			} else {
				b.AddBytes(forms[0])
			}
			b.AddASN1(asn1.INTEGER, func(b *cryptobyte.Builder) { b.AddBytes(s.id.serial) })
		})
		switch s.status.code {
		case ocsp.Good:
			b.AddASN1(tagGood, func(*cryptobyte.Builder) {})
		case ocsp.Revoked:
			b.AddASN1(tagRevoked, func(b *cryptobyte.Builder) {
				addGeneralized(b, s.status.revokedAt)
				if s.status.reason != 0 {
					b.AddASN1(tagRevReason, func(b *cryptobyte.Builder) { b.AddASN1Enum(int64(s.status.reason)) })
				}
			})
		default:
			b.AddASN1(tagUnknown, func(*cryptobyte.Builder) {})
		}
		addGeneralized(b, s.thisUpdate)
		b.AddASN1(tagNextUpdate, func(b *cryptobyte.Builder) { addGeneralized(b, s.nextUpdate) })
	})
}

// addGeneralized writes t as a GeneralizedTime to the second, in UTC.
func addGeneralized(b *cryptobyte.Builder, t time.Time) {
	var buf [15]byte
	b.AddASN1(asn1.GeneralizedTime, func(b *cryptobyte.Builder) {
		b.AddBytes(t.UTC().AppendFormat(buf[:0], generalizedLayout))
	})
}

// publicKeyBits returns the subjectPublicKey BIT STRING's bits of a
// SubjectPublicKeyInfo: what a CertID's issuerKeyHash and a byKey
// ResponderID hash.
func publicKeyBits(spki []byte) ([]byte, error) {
	in := cryptobyte.String(spki)
	var seq cryptobyte.String
	var bits encasn1.BitString
	if !in.ReadASN1(&seq, asn1.SEQUENCE) || !in.Empty() || !seq.SkipASN1(asn1.SEQUENCE) || !seq.ReadASN1BitString(&bits) || !seq.Empty() {
		return nil, errors.New("responder: malformed SubjectPublicKeyInfo")
	}
	return bits.RightAlign(), nil
}
