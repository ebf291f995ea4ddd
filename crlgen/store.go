package crlgen

import (
	"bytes"
	"errors"
	"fmt"
	"math/big"

	"github.com/cockroachdb/pebble/v2"
	"github.com/fxamacker/cbor/v2"

	"github.com/certmill/certmill/pkg/kvstore"
	"github.com/certmill/certmill/pkg/ledger"
)

// store is crlgen's own Pebble database:
//
//	m/seq                  last applied ledger sequence (8 bytes)
//	r/<issuer>/<serial>    a revocation: rev (CBOR)
//	s/<issuer>/<seq>       the same revocation, by ledger sequence, so that a
//	                       delta CRL reads only what came after its base
//	n/<issuer>             the next CRL number (8 bytes)
//	c/<issuer>/full        the last full CRL: published (CBOR)
//	c/<issuer>/delta       the last delta CRL: published (CBOR)
//	f/<issuer>             the full CRLs published and not yet past their
//	                       nextUpdate, and always the last one, oldest
//	                       first: []fullRef (CBOR), written in one synced
//	                       batch with c/<issuer>/full
//
// INVARIANT: records and the last applied sequence are written in one
// synced batch, and a CRL number is used up (synced) before the CRL that
// carries it is signed, so a crash never loses a revocation that was
// applied nor reuses a number.
type store struct {
	db      *pebble.DB
	dir     string
	minFree uint64 // bytes to keep free: writes stop cleanly before the disk is full
}

// rev is a revocation as crlgen keeps it.
type rev struct {
	Serial         []byte `cbor:"1,keyasint"`
	Time           int64  `cbor:"2,keyasint"` // Unix nanoseconds
	Reason         int    `cbor:"3,keyasint"`
	InvalidityDate int64  `cbor:"4,keyasint,omitempty"`
	NotAfter       int64  `cbor:"5,keyasint"`
	Seq            uint64 `cbor:"6,keyasint"` // ledger sequence that brought it
}

// published is a signed CRL and what it was built from.
type published struct {
	Number     int64  `cbor:"1,keyasint"`
	Base       int64  `cbor:"2,keyasint,omitempty"` // delta: the full CRL's number
	AsOfSeq    uint64 `cbor:"3,keyasint"`           // full: revocations up to this sequence are on it
	ThisUpdate int64  `cbor:"4,keyasint"`           // Unix seconds
	NextUpdate int64  `cbor:"5,keyasint"`
	Entries    int    `cbor:"6,keyasint"`
	DER        []byte `cbor:"7,keyasint"`
}

// fullRef is what later CRLs need of a published full CRL: a delta names
// the oldest current one as its base and lists what came after its
// AsOfSeq; the next full CRL drops an expired entry only once the last
// one, issued after the certificate's notAfter, listed it.
type fullRef struct {
	Number     int64  `cbor:"1,keyasint"`
	AsOfSeq    uint64 `cbor:"2,keyasint"`
	ThisUpdate int64  `cbor:"3,keyasint"` // Unix seconds
	NextUpdate int64  `cbor:"4,keyasint"`
}

func openStore(dir string, minFree uint64) (*store, error) {
	db, err := kvstore.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("crlgen: %w", err)
	}
	return &store{db: db, dir: dir, minFree: minFree}, nil
}

func (s *store) close() error { return s.db.Close() }

func u64(v uint64) []byte { return kvstore.U64(v) }

func (s *store) getU64(key string) (uint64, error) { return kvstore.GetU64(s.db, key) }

func (s *store) lastSeq() (uint64, error) { return s.getU64(kvstore.SeqKey) }

func revKey(issuer string, serial []byte) []byte { return kvstore.SerialKey("r/"+issuer+"/", serial) }

// Apply implements ledger.Applier: revocations are kept (the first one per
// serial), everything else is skipped; the sequence goes in the same
// synced batch.
func (s *store) Apply(es []ledger.Entry, last uint64) error {
	applied, err := s.lastSeq()
	if err != nil {
		return err
	}
	b := s.db.NewBatch()
	defer b.Close()
	inBatch := map[string]bool{} // revocations this batch sets: the first stands here too
	for _, e := range es {
		if e.Seq <= applied || e.Err != nil || e.Record.Kind != ledger.KindRevoked {
			continue
		}
		r := e.Record.Revoked
		sn := new(big.Int).SetBytes(r.Serial).Bytes()
		if len(sn) == 0 || len(sn) > 20 || !ledger.ValidName(r.Issuer) {
			continue
		}
		k := revKey(r.Issuer, sn)
		if inBatch[string(k)] {
			continue
		}
		inBatch[string(k)] = true
		if _, c, err := s.db.Get(k); err == nil {
			c.Close()
			continue // the first revocation stands
		}
		v, err := cbor.Marshal(rev{Serial: sn, Time: r.Time, Reason: r.Reason, InvalidityDate: r.InvalidityDate, NotAfter: r.NotAfter, Seq: e.Seq})
		if err != nil {
			return err
		}
		if err := b.Set(k, v, nil); err != nil {
			return err
		}
		if err := b.Set(append([]byte("s/"+r.Issuer+"/"), u64(e.Seq)...), v, nil); err != nil {
			return err
		}
	}
	if last > applied {
		b.Set([]byte(kvstore.SeqKey), u64(last), nil)
	}
	if err := kvstore.CheckRoom(s.dir, s.minFree); err != nil {
		return err
	}
	return b.Commit(pebble.Sync)
}

// revocations calls f for every revocation of issuer, in serial order.
func (s *store) revocations(issuer string, f func(rev) error) error {
	lo := []byte("r/" + issuer + "/")
	return s.scan(lo, append(append([]byte{}, lo[:len(lo)-1]...), '/'+1), f)
}

// revocationsAfter calls f for every revocation of issuer that came with
// a ledger sequence above seq, in sequence order.
func (s *store) revocationsAfter(issuer string, seq uint64) func(func(rev) error) error {
	return func(f func(rev) error) error {
		p := "s/" + issuer + "/"
		return s.scan(append([]byte(p), u64(seq+1)...), append([]byte(p[:len(p)-1]), '/'+1), f)
	}
}

func (s *store) scan(lo, hi []byte, f func(rev) error) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		var r rev
		if err := cbor.Unmarshal(it.Value(), &r); err != nil {
			return fmt.Errorf("crlgen: damaged revocation %x: %w", it.Key(), err)
		}
		if err := f(r); err != nil {
			return err
		}
	}
	return it.Error()
}

// takeNumber uses up the issuer's next CRL number durably and returns it:
// the next stored number, or floor if that is larger. With the clock in
// nanoseconds as floor (as Boulder numbers its CRLs), a replica rebuilt
// from the ledger on an empty store still numbers above every CRL the
// old one published.
func (s *store) takeNumber(issuer string, floor int64) (int64, error) {
	n, err := s.getU64("n/" + issuer)
	if err != nil {
		return 0, err
	}
	n = max(n, uint64(max(floor, 1)))
	if err := kvstore.CheckRoom(s.dir, s.minFree); err != nil {
		return 0, err
	}
	if err := s.db.Set([]byte("n/"+issuer), u64(n+1), pebble.Sync); err != nil {
		return 0, err
	}
	return int64(n), nil
}

func (s *store) getPublished(issuer, kind string) (*published, error) {
	v, c, err := s.db.Get([]byte("c/" + issuer + "/" + kind))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var p published
	if err := cbor.Unmarshal(v, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

func (s *store) putPublished(issuer, kind string, p *published) error {
	v, err := cbor.Marshal(p)
	if err != nil {
		return err
	}
	return s.db.Set([]byte("c/"+issuer+"/"+kind), v, pebble.Sync)
}

// fulls returns the issuer's full CRLs that f/<issuer> keeps, oldest
// first. A store written before that key existed has its last full CRL.
func (s *store) fulls(issuer string) ([]fullRef, error) {
	v, c, err := s.db.Get([]byte("f/" + issuer))
	if errors.Is(err, pebble.ErrNotFound) {
		p, err := s.getPublished(issuer, "full")
		if err != nil || p == nil {
			return nil, err
		}
		return []fullRef{{Number: p.Number, AsOfSeq: p.AsOfSeq, ThisUpdate: p.ThisUpdate, NextUpdate: p.NextUpdate}}, nil
	}
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var fs []fullRef
	if err := cbor.Unmarshal(v, &fs); err != nil {
		return nil, fmt.Errorf("crlgen: damaged full CRL history of %s: %w", issuer, err)
	}
	return fs, nil
}

// putFull publishes a full CRL and the history that ends with it in one
// synced batch.
func (s *store) putFull(issuer string, p *published, fulls []fullRef) error {
	v, err := cbor.Marshal(p)
	if err != nil {
		return err
	}
	h, err := cbor.Marshal(fulls)
	if err != nil {
		return err
	}
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.Set([]byte("c/"+issuer+"/full"), v, nil); err != nil {
		return err
	}
	if err := b.Set([]byte("f/"+issuer), h, nil); err != nil {
		return err
	}
	return b.Commit(pebble.Sync)
}

// Revocation is what crlgen keeps of one revoked serial.
type Revocation = rev

// ReadState reads the store of a stopped crlgen in dir: every revocation
// by "issuer/serial in hex" (its entry in the sequence index included) and
// the last applied ledger sequence. The fault suite compares it with a
// rebuild from the ledger.
func ReadState(dir string) (map[string]Revocation, uint64, error) {
	st, err := openStore(dir, 0)
	if err != nil {
		return nil, 0, err
	}
	defer st.close()
	seq, err := st.lastSeq()
	if err != nil {
		return nil, 0, err
	}
	m := map[string]Revocation{}
	err = kvstore.ScanSerials(st.db, 'r', func(issuer string, serial, value []byte) error {
		var r rev
		if err := cbor.Unmarshal(value, &r); err != nil {
			return fmt.Errorf("crlgen: damaged revocation %s/%x: %w", issuer, serial, err)
		}
		// The sequence index must hold the same revocation.
		v, c, err := st.db.Get(append([]byte("s/"+issuer+"/"), u64(r.Seq)...))
		if err != nil {
			return fmt.Errorf("crlgen: revocation %s/%x missing from the sequence index: %w", issuer, r.Serial, err)
		}
		var x rev
		err = cbor.Unmarshal(v, &x)
		c.Close()
		if err != nil || !bytes.Equal(x.Serial, r.Serial) {
			return fmt.Errorf("crlgen: sequence index %d disagrees with revocation %s/%x", r.Seq, issuer, r.Serial)
		}
		m[issuer+"/"+ledger.SerialHex(r.Serial)] = r
		return nil
	})
	return m, seq, err
}
