package crlgen

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// The CRL is encoded here, entry by entry, instead of by
// x509.CreateRevocationList, which for a million entries holds about
// twenty times the CRL's size in memory (measured: about 1 GiB for a
// 47 MiB CRL). This encoder holds the DER itself plus the signed copy.
// The output is checked by x509.ParseRevocationList, zlint and openssl in
// the tests.

var (
	oidAuthorityKeyID = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidCRLNumber      = asn1.ObjectIdentifier{2, 5, 29, 20}
	oidReasonCode     = asn1.ObjectIdentifier{2, 5, 29, 21}
	oidECDSASHA256    = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSASHA384    = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidRSASHA256      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
)

// crlEntry is one revoked certificate.
type crlEntry struct {
	serial         *big.Int
	time           time.Time
	reason         int // 0: no reasonCode extension (RFC 5280 §5.3.1: unspecified SHOULD be absent)
	invalidityDate time.Time
}

// tbsParams is what the TBSCertList carries besides its entries.
type tbsParams struct {
	issuer     *x509.Certificate
	number     int64
	thisUpdate time.Time
	nextUpdate time.Time
	extensions []pkix.Extension // beyond AKI and CRL number
}

// addTime writes UTCTime for 1950 to 2049 and GeneralizedTime otherwise
// (RFC 5280 §5.1.2.4).
func addTime(b *cryptobyte.Builder, t time.Time) {
	t = t.UTC()
	if y := t.Year(); y >= 1950 && y < 2050 {
		b.AddASN1UTCTime(t)
	} else {
		b.AddASN1GeneralizedTime(t)
	}
}

func addExtension(b *cryptobyte.Builder, id asn1.ObjectIdentifier, critical bool, value []byte) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(id)
		if critical {
			b.AddASN1Boolean(true)
		}
		b.AddASN1OctetString(value)
	})
}

func sigAlgorithm(ca *x509.Certificate) (asn1.ObjectIdentifier, crypto.Hash, bool) {
	if k, ok := ca.PublicKey.(*ecdsa.PublicKey); ok {
		if k.Curve.Params().BitSize > 256 {
			return oidECDSASHA384, crypto.SHA384, false
		}
		return oidECDSASHA256, crypto.SHA256, false
	}
	return oidRSASHA256, crypto.SHA256, true
}

func addAlgorithm(b *cryptobyte.Builder, oid asn1.ObjectIdentifier, nullParams bool) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		if nullParams {
			b.AddASN1NULL()
		}
	})
}

var errStop = errors.New("stop")

func addEntry(b *cryptobyte.Builder, e crlEntry) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1BigInt(e.serial)
		addTime(b, e.time)
		if e.reason != 0 || !e.invalidityDate.IsZero() {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				if e.reason != 0 {
					var v cryptobyte.Builder
					v.AddASN1Enum(int64(e.reason))
					addExtension(b, oidReasonCode, false, v.BytesOrPanic())
				}
				if !e.invalidityDate.IsZero() {
					var v cryptobyte.Builder
					v.AddASN1GeneralizedTime(e.invalidityDate.UTC())
					addExtension(b, oidInvalidityDate, false, v.BytesOrPanic())
				}
			})
		}
	})
}

// encodeCRL writes a signed CRL (RFC 5280 §5.1) whose entries come from
// each, and signs it with key. sizeHint is the expected size in bytes.
func encodeCRL(p tbsParams, sizeHint int, each func(func(crlEntry) error) error, key crypto.Signer) ([]byte, int, error) {
	if len(p.issuer.SubjectKeyId) == 0 {
		return nil, 0, errors.New("crlgen: issuer certificate has no subject key identifier")
	}
	alg, hash, rsaAlg := sigAlgorithm(p.issuer)
	n := 0
	var walkErr error
	// A first pass stops at the first entry, to know whether there is one.
	hasEntries := false
	if err := each(func(crlEntry) error { return errStop }); errors.Is(err, errStop) {
		hasEntries = true
	} else if err != nil {
		return nil, 0, err
	}
	tb := cryptobyte.NewBuilder(make([]byte, 0, sizeHint+4096))
	tb.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(1) // v2
		addAlgorithm(b, alg, rsaAlg)
		b.AddBytes(p.issuer.RawSubject)
		addTime(b, p.thisUpdate)
		addTime(b, p.nextUpdate)
		// revokedCertificates is absent, not empty, when there are none.
		if hasEntries {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				walkErr = each(func(e crlEntry) error {
					n++
					addEntry(b, e)
					return nil
				})
			})
		}
		b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				var aki cryptobyte.Builder
				aki.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(p.issuer.SubjectKeyId) })
				})
				addExtension(b, oidAuthorityKeyID, false, aki.BytesOrPanic())
				var num cryptobyte.Builder
				num.AddASN1Int64(p.number)
				addExtension(b, oidCRLNumber, false, num.BytesOrPanic())
				for _, x := range p.extensions {
					addExtension(b, x.Id, x.Critical, x.Value)
				}
			})
		})
	})
	if walkErr != nil {
		return nil, 0, walkErr
	}
	tbs, err := tb.Bytes()
	if err != nil {
		return nil, 0, fmt.Errorf("crlgen: encode: %w", err)
	}
	h := hash.New()
	h.Write(tbs)
	sig, err := key.Sign(rand.Reader, h.Sum(nil), hash)
	if err != nil {
		return nil, 0, err
	}
	out := cryptobyte.NewBuilder(make([]byte, 0, len(tbs)+len(sig)+64))
	out.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbs)
		addAlgorithm(b, alg, rsaAlg)
		b.AddASN1BitString(sig)
	})
	der, err := out.Bytes()
	return der, n, err
}
