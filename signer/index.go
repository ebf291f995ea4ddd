package signer

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/fxamacker/cbor/v2"

	"github.com/certmill/certmill/pkg/kvstore"
	"github.com/certmill/certmill/pkg/ledger"
)

// IndexConfig places the listing index: certificates by batch and by
// metadata value, per tenant, materialised from the ledger into the
// signer's own Pebble store, as the responder and crlgen keep theirs. It
// is derived state: deleting the folder rebuilds it from the stream, so
// the signer stays stateless in the sense that matters (any replica, any
// restart, the ledger is the truth).
type IndexConfig struct {
	// Dir is the index's folder. Empty: listing is off (501).
	Dir string `yaml:"dir"`
	// MinFreeBytes stops applying the ledger when the disk has less room
	// (listing then answers 503 until it has). Default 64 MiB.
	MinFreeBytes uint64 `yaml:"min_free_bytes"`
	// MetadataKeys are the metadata a listing can start from; each costs
	// one index key per certificate. Default device_id and product_line.
	// Other metadata still narrows a listing that starts from one of these
	// or from a batch.
	MetadataKeys []string `yaml:"metadata_keys"`
}

// indexEntry is what a listing returns for one certificate.
type indexEntry struct {
	Issuer    string            `cbor:"1,keyasint"`
	Serial    []byte            `cbor:"2,keyasint"`
	Tenant    string            `cbor:"3,keyasint"`
	Profile   string            `cbor:"4,keyasint"`
	BatchID   string            `cbor:"5,keyasint,omitempty"`
	Index     int               `cbor:"6,keyasint"`
	NotBefore int64             `cbor:"7,keyasint"`
	NotAfter  int64             `cbor:"8,keyasint"`
	Metadata  map[string]string `cbor:"9,keyasint,omitempty"`
	RevokedAt int64             `cbor:"10,keyasint,omitempty"` // Unix nanoseconds, 0 while good
	Reason    int               `cbor:"11,keyasint,omitempty"`
	Invalid   int64             `cbor:"12,keyasint,omitempty"` // invalidity date, Unix seconds
}

// index keys, every part free of NUL (names are ValidName, batch ids hex,
// metadata refused with control characters) except the serial, which is
// last:
//
//	c NUL issuer NUL serial                          -> indexEntry
//	b NUL tenant NUL batch NUL issuer NUL serial     -> empty
//	m NUL tenant NUL key NUL value NUL issuer NUL serial -> empty
type index struct {
	db      *pebble.DB
	dir     string
	minFree uint64
	keys    map[string]bool // indexed metadata keys
	applied atomic.Uint64
}

func openIndex(cfg IndexConfig) (*index, error) {
	db, err := kvstore.Open(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("signer: index: %w", err)
	}
	x := &index{db: db, dir: cfg.Dir, minFree: cfg.MinFreeBytes, keys: map[string]bool{}}
	for _, k := range cfg.MetadataKeys {
		x.keys[k] = true
	}
	seq, err := x.lastSeq()
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("signer: index: %w", err)
	}
	x.applied.Store(seq)
	return x, nil
}

func (x *index) close() error { return x.db.Close() }

func (x *index) lastSeq() (uint64, error) { return kvstore.GetU64(x.db, kvstore.SeqKey) }

func join(parts ...string) []byte {
	var b []byte
	for i, p := range parts {
		if i > 0 {
			b = append(b, 0)
		}
		b = append(b, p...)
	}
	return b
}

func certKey(issuer string, serial []byte) []byte { return join("c", issuer, string(serial)) }

// Apply implements ledger.Applier.
func (x *index) Apply(es []ledger.Entry, last uint64) error {
	applied := x.applied.Load()
	b := x.db.NewBatch()
	defer b.Close()
	pending := map[string]*indexEntry{}
	get := func(k []byte) (*indexEntry, error) {
		if e, ok := pending[string(k)]; ok {
			return e, nil
		}
		return x.load(k)
	}
	for _, e := range es {
		if e.Seq <= applied || e.Err != nil {
			continue
		}
		switch e.Record.Kind {
		case ledger.KindIssued:
			is := e.Record.Issued
			if !ledger.ValidName(is.Issuer) || !ledger.ValidName(is.Tenant) {
				continue
			}
			// An issuance arrives once (records at or below the applied
			// sequence are skipped, and a serial is issued once): no read.
			k := certKey(is.Issuer, is.Serial)
			pending[string(k)] = &indexEntry{Issuer: is.Issuer, Serial: is.Serial, Tenant: is.Tenant, Profile: is.Profile, BatchID: is.BatchID,
				Index: is.Index, NotBefore: is.NotBefore, NotAfter: is.NotAfter, Metadata: is.Metadata}
			if is.BatchID != "" && !strings.ContainsRune(is.BatchID, 0) {
				b.Set(join("b", is.Tenant, is.BatchID, is.Issuer, string(is.Serial)), nil, nil)
			}
			for mk, mv := range is.Metadata {
				if x.keys[mk] && validMeta(mk) && validMeta(mv) {
					b.Set(join("m", is.Tenant, mk, mv, is.Issuer, string(is.Serial)), nil, nil)
				}
			}
		case ledger.KindRevoked:
			r := e.Record.Revoked
			k := certKey(r.Issuer, r.Serial)
			old, err := get(k)
			if err != nil {
				return err
			}
			if old == nil || old.RevokedAt != 0 {
				continue // not issued through this ledger, or revoked before: the first stands
			}
			n := *old
			n.RevokedAt, n.Reason, n.Invalid = r.Time, r.Reason, r.InvalidityDate
			pending[string(k)] = &n
		}
	}
	for k, e := range pending {
		v, err := cbor.Marshal(e)
		if err != nil {
			return err
		}
		b.Set([]byte(k), v, nil)
	}
	if last > applied {
		b.Set([]byte(kvstore.SeqKey), kvstore.U64(last), nil)
	}
	if err := kvstore.CheckRoom(x.dir, x.minFree); err != nil {
		return err
	}
	// Not synced: the index is derived, and its entries and its applied
	// sequence commit in one batch, so a crash loses both together and
	// the next start applies them again from the ledger.
	if err := b.Commit(pebble.NoSync); err != nil {
		return err
	}
	if last > applied {
		x.applied.Store(last)
	}
	return nil
}

// validMeta: metadata that can be a key part (no control characters).
func validMeta(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return false
		}
	}
	return s != ""
}

// listFilter chooses certificates of one tenant: by batch id, or by
// metadata values (all must match); the index walked is the batch's or
// that of walk, an indexed metadata key.
type listFilter struct {
	batchID string
	meta    [][2]string // sorted by key
	walk    int         // index in meta of the metadata walked when there is no batch id
}

// list returns up to limit entries after the cursor (a key suffix from a
// previous page) and the cursor of the next page, or nil at the end.
func (x *index) list(tenant string, f listFilter, after []byte, limit int) ([]indexEntry, []byte, error) {
	var prefix []byte
	switch {
	case f.batchID != "":
		prefix = append(join("b", tenant, f.batchID), 0)
	case len(f.meta) > 0:
		prefix = append(join("m", tenant, f.meta[f.walk][0], f.meta[f.walk][1]), 0)
	default:
		return nil, nil, errors.New("signer: list needs a filter")
	}
	upper := append(bytes.Clone(prefix[:len(prefix)-1]), 1)
	it, err := x.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: upper})
	if err != nil {
		return nil, nil, err
	}
	defer it.Close()
	ok := it.First()
	if len(after) > 0 {
		ok = it.SeekGE(append(bytes.Clone(prefix), after...))
		if ok && bytes.Equal(it.Key()[len(prefix):], after) {
			ok = it.Next()
		}
	}
	var out []indexEntry
	for ; ok; ok = it.Next() {
		suffix := it.Key()[len(prefix):]
		i := bytes.IndexByte(suffix, 0)
		if i < 0 {
			continue
		}
		e, err := x.entry(string(suffix[:i]), suffix[i+1:])
		if err != nil {
			return nil, nil, err
		}
		if e == nil || e.Tenant != tenant || !matches(e, f) {
			continue
		}
		if len(out) == limit { // one more exists: the cursor is the last one returned
			last := out[len(out)-1]
			return out, append(append([]byte(last.Issuer), 0), last.Serial...), nil
		}
		out = append(out, *e)
	}
	return out, nil, it.Error()
}

func (x *index) entry(issuer string, serial []byte) (*indexEntry, error) {
	return x.load(certKey(issuer, serial))
}

// load reads one entry, nil if there is none.
func (x *index) load(k []byte) (*indexEntry, error) {
	v, c, err := x.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var e indexEntry
	if err := cbor.Unmarshal(v, &e); err != nil {
		return nil, fmt.Errorf("signer: index: damaged entry: %w", err)
	}
	return &e, nil
}

func matches(e *indexEntry, f listFilter) bool {
	if f.batchID != "" && e.BatchID != f.batchID {
		return false
	}
	for _, kv := range f.meta {
		if e.Metadata[kv[0]] != kv[1] {
			return false
		}
	}
	return true
}
