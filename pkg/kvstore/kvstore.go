// Package kvstore opens the Pebble databases in which the ledger's readers
// (the responder, crlgen) keep their state, and holds the little encoding
// they share: big-endian uint64 values and the last applied sequence.
package kvstore

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// SeqKey holds the last applied ledger sequence.
const SeqKey = "m/seq"

type quiet struct{}

func (quiet) Infof(string, ...any)  {}
func (quiet) Errorf(string, ...any) {}
func (quiet) Fatalf(f string, a ...any) {
	panic(fmt.Sprintf(f, a...))
}

// Open opens or creates a Pebble database in dir. Writes that matter are
// made with pebble.Sync by the callers: Pebble with NoSync loses recent
// writes even on a process crash.
//
// The block cache is 128 MiB: readers answer hot keys from memory, not
// from the page cache through a system call per block.
func Open(dir string) (*pebble.DB, error) {
	cache := pebble.NewCache(128 << 20)
	defer cache.Unref()
	db, err := pebble.Open(dir, &pebble.Options{Logger: quiet{}, Cache: cache})
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	return db, nil
}

// U64 encodes v big-endian, so that keys sort numerically.
func U64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// GetU64 reads a U64 value; a missing key reads as 0.
func GetU64(db *pebble.DB, key string) (uint64, error) {
	v, c, err := db.Get([]byte(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("%s: %d bytes, want 8", key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// SerialKey is prefix followed by the serial zero-padded to 20 octets, so
// that serials sort numerically under the prefix.
func SerialKey(prefix string, serial []byte) []byte {
	k := make([]byte, 0, len(prefix)+20)
	k = append(k, prefix...)
	for range max(20-len(serial), 0) {
		k = append(k, 0)
	}
	return append(k, serial...)
}
