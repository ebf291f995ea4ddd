package ledger

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// Kind says what a record is. Readers skip kinds they do not know, so that
// new kinds can be added without breaking old readers.
type Kind uint8

// The kinds of record.
const (
	KindIssued  Kind = 1
	KindRevoked Kind = 2
	KindBatch   Kind = 3
	// KindIssuedSet carries the certificates of one serial set (one
	// message, one fsync, for up to SetSize certificates). Consume hands
	// it to readers as one KindIssued record per certificate.
	KindIssuedSet Kind = 4
)

// Version is the envelope version this code writes. Within a version new
// fields may be added with new keys: CBOR decoding ignores unknown keys.
const Version = 1

// Record is the envelope of every message on the ledger, encoded as CBOR
// (RFC 8949) with integer keys: compact, self-describing enough to add
// fields, and decoded without code generation.
type Record struct {
	Version uint8      `cbor:"1,keyasint"`
	Kind    Kind       `cbor:"2,keyasint"`
	Issued  *Issued    `cbor:"3,keyasint,omitempty"`
	Revoked *Revoked   `cbor:"4,keyasint,omitempty"`
	Batch   *Batch     `cbor:"5,keyasint,omitempty"`
	Set     *IssuedSet `cbor:"6,keyasint,omitempty"`
}

// IssuedSet records certificates issued together whose serials share one
// serial.Set: the ledger stores them as one message on the set's subject,
// so a chunk of a batch costs a few fsyncs instead of one per certificate
// (nats-server syncs every message of an atomic batch), and a serial is
// still found from the serial alone.
type IssuedSet struct {
	Issuer string   `cbor:"1,keyasint"`
	Set    []byte   `cbor:"2,keyasint"` // the serial.Set, 8 octets
	Certs  []Issued `cbor:"3,keyasint"`
}

// Issued records a certificate. It is written before the certificate
// reaches anyone.
type Issued struct {
	Issuer         string            `cbor:"1,keyasint"`
	Serial         []byte            `cbor:"2,keyasint"` // big-endian magnitude, as in DER
	NotBefore      int64             `cbor:"3,keyasint"` // Unix seconds
	NotAfter       int64             `cbor:"4,keyasint"` // Unix seconds
	DER            []byte            `cbor:"5,keyasint"`
	Tenant         string            `cbor:"6,keyasint"`
	Profile        string            `cbor:"7,keyasint"`
	BatchID        string            `cbor:"8,keyasint,omitempty"`
	IdempotencyKey string            `cbor:"9,keyasint,omitempty"`
	Index          int               `cbor:"10,keyasint"` // position of the CSR in its batch
	Metadata       map[string]string `cbor:"11,keyasint,omitempty"`
	IssuedAt       int64             `cbor:"12,keyasint"` // Unix nanoseconds
}

// Revoked records a revocation. There is at most one per certificate: the
// ledger refuses a second (expected last subject sequence 0).
type Revoked struct {
	Issuer         string `cbor:"1,keyasint"`
	Serial         []byte `cbor:"2,keyasint"`
	Time           int64  `cbor:"3,keyasint"`           // Unix nanoseconds
	Reason         int    `cbor:"4,keyasint"`           // RFC 5280 CRLReason
	InvalidityDate int64  `cbor:"5,keyasint,omitempty"` // Unix seconds, 0 for none
	Tenant         string `cbor:"6,keyasint"`
	NotAfter       int64  `cbor:"7,keyasint"` // of the certificate, Unix seconds: CRLs drop it after
}

// Batch is the idempotency guard of one chunk of a submitted batch: the
// serials that chunk's CSRs received. It commits atomically with their
// Issued records, and only if no guard for the same key and chunk exists.
type Batch struct {
	Tenant      string   `cbor:"1,keyasint"`
	Issuer      string   `cbor:"2,keyasint"`
	Profile     string   `cbor:"3,keyasint"`
	Key         string   `cbor:"4,keyasint"` // KeyHash of the idempotency key
	RequestHash []byte   `cbor:"5,keyasint"` // SHA-256 of the request, to refuse a reused key
	BatchID     string   `cbor:"6,keyasint"`
	Chunk       int      `cbor:"7,keyasint"`
	Chunks      int      `cbor:"8,keyasint"`
	Indexes     []int    `cbor:"9,keyasint"`
	Serials     [][]byte `cbor:"10,keyasint"`
	Time        int64    `cbor:"11,keyasint"`
	NotAfter    int64    `cbor:"12,keyasint"` // latest notAfter of the chunk
	// Refused are the CSRs of the chunk that got a problem instead of a
	// certificate, so that a retry answers exactly what the first did.
	Refused []Refusal `cbor:"13,keyasint,omitempty"`
}

// Refusal is one CSR's problem in a batch answer.
type Refusal struct {
	Index  int    `cbor:"1,keyasint"`
	Type   string `cbor:"2,keyasint"` // the problem type's name, e.g. rejected-by-profile
	Status int    `cbor:"3,keyasint"`
	Detail string `cbor:"4,keyasint"`
}

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	var err error
	if encMode, err = cbor.CoreDetEncOptions().EncMode(); err != nil {
		panic(err)
	}
	// Bounds for data that a damaged or hostile stream could hold.
	if decMode, err = (cbor.DecOptions{MaxArrayElements: 1 << 16, MaxMapPairs: 1 << 10, MaxNestedLevels: 8}).DecMode(); err != nil {
		panic(err)
	}
}

// ErrUnknownKind is returned by Decode for a kind this reader does not
// know; the caller skips the record.
var ErrUnknownKind = errors.New("ledger: unknown record kind")

// Encode returns the CBOR encoding of r, stamped with Version.
func Encode(r Record) ([]byte, error) {
	r.Version = Version
	return encMode.Marshal(r)
}

// Decode parses a record. A record of an unknown kind decodes with
// ErrUnknownKind; a record missing the body its kind needs is an error.
func Decode(b []byte) (Record, error) {
	var r Record
	if err := decMode.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("ledger: decode record: %w", err)
	}
	switch {
	case r.Kind == KindIssued && r.Issued != nil && len(r.Issued.Serial) > 0:
	case r.Kind == KindRevoked && r.Revoked != nil && len(r.Revoked.Serial) > 0:
	case r.Kind == KindBatch && r.Batch != nil:
	case r.Kind == KindIssuedSet && r.Set != nil && len(r.Set.Certs) > 0:
		for i := range r.Set.Certs {
			if c := &r.Set.Certs[i]; len(c.Serial) == 0 || c.Issuer != r.Set.Issuer {
				return r, fmt.Errorf("ledger: set record: certificate %d has no serial or another issuer", i)
			}
		}
	case r.Kind > KindIssuedSet || r.Kind == 0:
		return r, fmt.Errorf("%w %d (version %d)", ErrUnknownKind, r.Kind, r.Version)
	default:
		return r, fmt.Errorf("ledger: record of kind %d has no body", r.Kind)
	}
	return r, nil
}

// Records is the record as readers apply it: a set becomes one KindIssued
// record per certificate, any other record itself.
func (r Record) Records() []Record {
	if r.Kind != KindIssuedSet || r.Set == nil {
		return []Record{r}
	}
	out := make([]Record, len(r.Set.Certs))
	for i := range r.Set.Certs {
		out[i] = Record{Version: r.Version, Kind: KindIssued, Issued: &r.Set.Certs[i]}
	}
	return out
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ValidName reports whether s may be an issuer or tenant name: it becomes
// a subject token, so no dots, wildcards or spaces.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// KeyHash names an idempotency key in subjects: hex SHA-256 of tenant,
// issuer, profile and key, 128 bits. A key means nothing across tenants.
func KeyHash(tenant, issuer, profile, key string) string {
	h := sha256.Sum256([]byte(tenant + "\x00" + issuer + "\x00" + profile + "\x00" + key))
	return hex.EncodeToString(h[:16])
}

// SerialHex is the serial's subject token: lower-case hex.
func SerialHex(serial []byte) string {
	return hex.EncodeToString(new(big.Int).SetBytes(serial).Bytes())
}

func unixTime(s int64) time.Time { return time.Unix(s, 0).UTC() }
