package ledger

import (
	"math/big"
	"sync"
)

// Status is what a reader knows of one certificate.
type Status struct {
	Issued  *Issued
	Revoked *Revoked
}

// Good reports whether the certificate was issued and is not revoked.
func (s Status) Good() bool { return s.Issued != nil && s.Revoked == nil }

// MemState is the reference reader: the rules every reader of the ledger
// follows, kept in memory. The responder's and crlgen's stores are tested
// against it.
//
// INVARIANT: applying an entry twice changes nothing (entries at or below
// LastSeq are skipped, and each apply is itself idempotent); a revocation
// is never undone or replaced, whatever order records come in.
type MemState struct {
	mu struct {
		sync.Mutex
		certs   map[string]*Status
		lastSeq uint64
		skipped int
	}
}

// NewMemState returns an empty state.
func NewMemState() *MemState {
	m := &MemState{}
	m.mu.certs = map[string]*Status{}
	return m
}

func certKey(issuer string, serial []byte) string { return issuer + "/" + SerialHex(serial) }

// Apply implements Applier.
func (m *MemState) Apply(entries []Entry, lastSeq uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range entries {
		if e.Seq <= m.mu.lastSeq {
			continue
		}
		if e.Err != nil {
			m.mu.skipped++
			continue
		}
		ApplyRecord(m.mu.certs, e.Record)
	}
	if lastSeq > m.mu.lastSeq {
		m.mu.lastSeq = lastSeq
	}
	return nil
}

// ApplyRecord applies one record to a map of statuses by the ledger's
// rules; it is idempotent on its own, whatever the sequence numbers say.
func ApplyRecord(certs map[string]*Status, r Record) {
	switch r.Kind {
	case KindIssued:
		k := certKey(r.Issued.Issuer, r.Issued.Serial)
		s := certs[k]
		if s == nil {
			s = &Status{}
			certs[k] = s
		}
		if s.Issued == nil {
			s.Issued = r.Issued
		}
	case KindRevoked:
		k := certKey(r.Revoked.Issuer, r.Revoked.Serial)
		s := certs[k]
		if s == nil {
			s = &Status{}
			certs[k] = s
		}
		if s.Revoked == nil { // the first revocation stands
			s.Revoked = r.Revoked
		}
	}
}

// Get returns the status of one serial (zero if unknown).
func (m *MemState) Get(issuer string, serial *big.Int) Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.mu.certs[certKey(issuer, serial.Bytes())]; s != nil {
		return *s
	}
	return Status{}
}

// LastSeq is the last applied stream sequence.
func (m *MemState) LastSeq() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mu.lastSeq
}

// Len is how many certificates the state knows.
func (m *MemState) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.mu.certs)
}

// Skipped is how many records could not be decoded and were skipped.
func (m *MemState) Skipped() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mu.skipped
}

// Snapshot copies every status, by "issuer/serial in hex".
func (m *MemState) Snapshot() map[string]Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]Status, len(m.mu.certs))
	for k, s := range m.mu.certs {
		out[k] = *s
	}
	return out
}
