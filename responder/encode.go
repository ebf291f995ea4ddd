package responder

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	encasn1 "encoding/asn1"
	"errors"
	"math/big"
	"time"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
	"golang.org/x/crypto/ocsp"
)

// encoder writes one issuer's signed OCSP responses (RFC 6960 §4.2.1) for
// one delegated responder. Everything that does not change from answer to
// answer is encoded once, here: the responder's name, its certificate, the
// signature algorithm and, per hash algorithm, the CertID's issuer part.
// It writes what x/crypto/ocsp.CreateResponse writes, byte for byte
// (TestEncoderSameAsXCrypto), without reflection: a flood of never-issued
// serials is signed at request time, one answer each.
type encoder struct {
	key         crypto.Signer
	hash        crypto.Hash
	sigAlg      []byte                 // AlgorithmIdentifier
	responderID []byte                 // [1] EXPLICIT Name (byName)
	certs       []byte                 // [0] EXPLICIT SEQUENCE OF Certificate
	certID      map[crypto.Hash][]byte // hashAlgorithm, issuerNameHash, issuerKeyHash
}

var (
	oidOCSPBasic     = encasn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 1}
	oidECDSAWithSHA  = map[elliptic.Curve]encasn1.ObjectIdentifier{}
	hashOfCurve      = map[elliptic.Curve]crypto.Hash{}
	oidOfHash        = map[crypto.Hash]encasn1.ObjectIdentifier{crypto.SHA1: oidSHA1, crypto.SHA256: oidSHA256}
	errNoEncoderFor  = errors.New("responder: the delegated responder's key is not ECDSA on P-256, P-384 or P-521")
	tagResponderName = asn1.Tag(1).Constructed().ContextSpecific()
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
	e := &encoder{key: key, hash: hashOfCurve[pub.Curve], certID: map[crypto.Hash][]byte{}}
	var b cryptobyte.Builder
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidECDSAWithSHA[pub.Curve]) })
	e.sigAlg = b.BytesOrPanic()
	b = cryptobyte.Builder{}
	b.AddASN1(tagResponderName, func(b *cryptobyte.Builder) { b.AddBytes(cert.RawSubject) })
	e.responderID = b.BytesOrPanic()
	b = cryptobyte.Builder{}
	b.AddASN1(tagCerts, func(b *cryptobyte.Builder) {
		b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddBytes(cert.Raw) })
	})
	e.certs = b.BytesOrPanic()
	for h, oid := range oidOfHash {
		b = cryptobyte.Builder{}
		b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oid)
			b.AddASN1NULL()
		})
		b.AddASN1OctetString(is.nameHash[h])
		b.AddASN1OctetString(is.keyHash[h])
		e.certID[h] = b.BytesOrPanic()
	}
	return e, nil
}

// certStatus is what one answer says.
type certStatus struct {
	code      int // ocsp.Good, ocsp.Revoked or ocsp.Unknown
	revokedAt time.Time
	reason    int // RFC 5280 CRLReason; 0 (unspecified) is left out
}

// response returns the signed OCSPResponse about sn for a request that
// named the issuer with hash h. producedAt, thisUpdate and nextUpdate are
// written to the second, in UTC.
func (e *encoder) response(h crypto.Hash, sn *big.Int, st certStatus, producedAt, thisUpdate, nextUpdate time.Time) ([]byte, error) {
	certID, ok := e.certID[h]
	if !ok {
		return nil, errors.New("responder: unsupported CertID hash")
	}
	var tb cryptobyte.Builder
	tb.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) { // ResponseData
		b.AddBytes(e.responderID)
		addGeneralized(b, producedAt)
		b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) { // responses
			b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) { // SingleResponse
				b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) { // CertID
					b.AddBytes(certID)
					b.AddASN1BigInt(sn)
				})
				switch st.code {
				case ocsp.Good:
					b.AddASN1(tagGood, func(*cryptobyte.Builder) {})
				case ocsp.Revoked:
					b.AddASN1(tagRevoked, func(b *cryptobyte.Builder) {
						addGeneralized(b, st.revokedAt)
						if st.reason != 0 {
							b.AddASN1(tagRevReason, func(b *cryptobyte.Builder) { b.AddASN1Enum(int64(st.reason)) })
						}
					})
				default:
					b.AddASN1(tagUnknown, func(*cryptobyte.Builder) {})
				}
				addGeneralized(b, thisUpdate)
				b.AddASN1(tagNextUpdate, func(b *cryptobyte.Builder) { addGeneralized(b, nextUpdate) })
			})
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

// addGeneralized writes t as a GeneralizedTime to the second, in UTC.
func addGeneralized(b *cryptobyte.Builder, t time.Time) {
	var buf [15]byte
	b.AddASN1(asn1.GeneralizedTime, func(b *cryptobyte.Builder) {
		b.AddBytes(t.UTC().AppendFormat(buf[:0], generalizedLayout))
	})
}
