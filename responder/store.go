package responder

import (
	"errors"
	"fmt"
	"math/big"
	"sync"

	"github.com/bits-and-blooms/bloom/v3"
	"github.com/cockroachdb/pebble/v2"
	"github.com/fxamacker/cbor/v2"

	"github.com/certmill/certmill/pkg/kvstore"
	"github.com/certmill/certmill/pkg/ledger"
)

// store is the responder's Pebble database:
//
//	m/seq                 last applied ledger sequence
//	c/<issuer>/<serial>   status (CBOR)
//
// and, in memory, one bloom filter per issuer of every serial it has a
// record of. A serial the filter has never seen was never issued: it is
// answered unknown without a disk read. A false positive costs a lookup.
//
// INVARIANT: statuses and the last applied sequence are written in one
// synced batch; a revoked status is never replaced.
type store struct {
	db *pebble.DB
	mu struct {
		sync.RWMutex
		blooms map[string]*bloom.BloomFilter
	}
	capacity uint
	dir      string
	minFree  uint64                             // bytes to keep free: writes stop cleanly before the disk is full
	onChange func(issuer string, serial []byte) // a status changed: drop cached answers
}

// status is what the responder knows of one serial.
type status struct {
	NotAfter  int64 `cbor:"1,keyasint"`
	Revoked   bool  `cbor:"2,keyasint"`
	RevokedAt int64 `cbor:"3,keyasint,omitempty"` // Unix nanoseconds
	Reason    int   `cbor:"4,keyasint,omitempty"`
	Issued    bool  `cbor:"5,keyasint"` // false: a revocation arrived first
}

func openStore(dir string, capacity uint, minFree uint64) (*store, error) {
	db, err := kvstore.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("responder: %w", err)
	}
	s := &store{db: db, capacity: capacity, dir: dir, minFree: minFree}
	s.mu.blooms = map[string]*bloom.BloomFilter{}
	// Rebuild the filters from disk.
	err = kvstore.ScanSerials(db, 'c', func(issuer string, serial, _ []byte) error {
		s.filter(issuer).Add(trim(serial))
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func trim(serial []byte) []byte { return new(big.Int).SetBytes(serial).Bytes() }

// filter returns the issuer's bloom filter, making it. Lock must be held
// for writing by callers that may create one.
func (s *store) filter(issuer string) *bloom.BloomFilter {
	f := s.mu.blooms[issuer]
	if f == nil {
		// Sized for the expected population at a 0.1 % false-positive rate.
		f = bloom.NewWithEstimates(s.capacity, 0.001)
		s.mu.blooms[issuer] = f
	}
	return f
}

func (s *store) close() error { return s.db.Close() }

func (s *store) lastSeq() (uint64, error) { return kvstore.GetU64(s.db, kvstore.SeqKey) }

func statusKey(issuer string, serial []byte) []byte {
	return kvstore.SerialKey("c/"+issuer+"/", serial)
}

// get returns the status of a serial; ok is false if there is no record.
func (s *store) get(issuer string, serial []byte) (st status, ok bool, err error) {
	s.mu.RLock()
	f := s.mu.blooms[issuer]
	maybe := f != nil && f.Test(serial)
	s.mu.RUnlock()
	if !maybe {
		return st, false, nil
	}
	v, c, err := s.db.Get(statusKey(issuer, serial))
	if errors.Is(err, pebble.ErrNotFound) {
		return st, false, nil // a false positive: one lookup, no wrong answer
	}
	if err != nil {
		return st, false, err
	}
	defer c.Close()
	if err := cbor.Unmarshal(v, &st); err != nil {
		return st, false, fmt.Errorf("responder: damaged status for %x: %w", serial, err)
	}
	return st, true, nil
}

// Apply implements ledger.Applier.
func (s *store) Apply(es []ledger.Entry, last uint64) error {
	applied, err := s.lastSeq()
	if err != nil {
		return err
	}
	b := s.db.NewBatch()
	defer b.Close()
	pending := map[string]status{}
	var changed []ledger.Entry
	for _, e := range es {
		if e.Seq <= applied || e.Err != nil {
			continue
		}
		var issuer string
		var serial []byte
		switch e.Record.Kind {
		case ledger.KindIssued:
			issuer, serial = e.Record.Issued.Issuer, e.Record.Issued.Serial
		case ledger.KindRevoked:
			issuer, serial = e.Record.Revoked.Issuer, e.Record.Revoked.Serial
		default:
			continue
		}
		serial = trim(serial)
		if !ledger.ValidName(issuer) || len(serial) == 0 || len(serial) > 20 {
			continue
		}
		k := statusKey(issuer, serial)
		st, seen := pending[string(k)]
		if !seen {
			old, ok, err := s.getDisk(k)
			if err != nil {
				return err
			}
			if ok {
				st = old
			}
		}
		next := st
		switch e.Record.Kind {
		case ledger.KindIssued:
			next.Issued = true
			next.NotAfter = max(next.NotAfter, e.Record.Issued.NotAfter)
		case ledger.KindRevoked:
			if !next.Revoked { // the first revocation stands
				r := e.Record.Revoked
				next.Revoked, next.RevokedAt, next.Reason = true, r.Time, r.Reason
				next.NotAfter = max(next.NotAfter, r.NotAfter)
			}
		}
		if next == st && seen {
			continue
		}
		pending[string(k)] = next
		changed = append(changed, e)
	}
	for k, st := range pending {
		v, err := cbor.Marshal(st)
		if err != nil {
			return err
		}
		b.Set([]byte(k), v, nil)
	}
	if last > applied {
		b.Set([]byte(kvstore.SeqKey), kvstore.U64(last), nil)
	}
	if err := kvstore.CheckRoom(s.dir, s.minFree); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return err
	}
	// Filters and caches follow the durable state.
	s.mu.Lock()
	for _, e := range changed {
		issuer, serial := entryKey(e)
		s.filter(issuer).Add(serial)
	}
	s.mu.Unlock()
	if s.onChange != nil {
		for _, e := range changed {
			s.onChange(entryKey(e))
		}
	}
	return nil
}

func entryKey(e ledger.Entry) (string, []byte) {
	if e.Record.Kind == ledger.KindIssued {
		return e.Record.Issued.Issuer, trim(e.Record.Issued.Serial)
	}
	return e.Record.Revoked.Issuer, trim(e.Record.Revoked.Serial)
}

func (s *store) getDisk(k []byte) (status, bool, error) {
	var st status
	v, c, err := s.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return st, false, nil
	}
	if err != nil {
		return st, false, err
	}
	defer c.Close()
	return st, true, cbor.Unmarshal(v, &st)
}

// Status is what the responder keeps of one serial.
type Status = status

// ReadState reads the store of a stopped responder in dir: the status of
// every serial by "issuer/serial in hex" and the last applied ledger
// sequence. The fault suite compares it with a rebuild from the ledger.
func ReadState(dir string) (map[string]Status, uint64, error) {
	db, err := kvstore.Open(dir)
	if err != nil {
		return nil, 0, err
	}
	defer db.Close()
	seq, err := kvstore.GetU64(db, kvstore.SeqKey)
	if err != nil {
		return nil, 0, err
	}
	m := map[string]Status{}
	err = kvstore.ScanSerials(db, 'c', func(issuer string, serial, v []byte) error {
		var st status
		if err := cbor.Unmarshal(v, &st); err != nil {
			return fmt.Errorf("responder: %s/%x: %w", issuer, serial, err)
		}
		m[issuer+"/"+ledger.SerialHex(serial)] = st
		return nil
	})
	return m, seq, err
}
