// Package kvstore opens the Pebble databases in which the ledger's readers
// (the responder, crlgen) keep their state, and holds the little encoding
// they share: big-endian uint64 values and the last applied sequence.
package kvstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/cockroachdb/pebble/v2"
)

// SeqKey holds the last applied ledger sequence.
const SeqKey = "m/seq"

// logger keeps Pebble quiet, except for a fatal error: Pebble calls
// Fatalf when it cannot go on (a WAL write failed on a full disk, for
// one) and requires that it not return. The process says so plainly and
// exits; what was synced is safe, and the store reopens when the cause is
// gone.
type logger struct{ dir string }

func (logger) Infof(string, ...any)  {}
func (logger) Errorf(string, ...any) {}
func (l logger) Fatalf(f string, a ...any) {
	fmt.Fprintf(os.Stderr, "certmill: store %s: fatal: %s\nhint: free space or fix the disk under %s, then start again; synced writes are safe and the store resumes from the ledger\n",
		l.dir, fmt.Sprintf(f, a...), l.dir)
	os.Exit(1)
}

// ErrDiskLow means a store refused a write to keep MinFree bytes free.
var ErrDiskLow = errors.New("kvstore: disk space below the reserve")

// CheckRoom returns ErrDiskLow when the file system holding dir has fewer
// than min bytes available. Readers check before each write so that a
// filling disk stops them cleanly, before Pebble meets ENOSPC.
func CheckRoom(dir string, min uint64) error {
	if min == 0 {
		return nil
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return fmt.Errorf("kvstore: statfs %s: %w", dir, err)
	}
	if free := st.Bavail * uint64(st.Bsize); free < min {
		return fmt.Errorf("%w: %d bytes free under %s, keeping %d (hint: free space there, or lower min_free_bytes)", ErrDiskLow, free, dir, min)
	}
	return nil
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
	db, err := pebble.Open(dir, &pebble.Options{Logger: logger{dir}, Cache: cache})
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

// ScanSerials calls f for every key under prefix (one octet, such as "c")
// that SerialKey made with prefix+"/"+issuer+"/", in key order, with the
// issuer, the serial's 20 padded octets and the value (valid only during
// the call).
func ScanSerials(db *pebble.DB, prefix byte, f func(issuer string, serial, value []byte) error) error {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefix, '/'}, UpperBound: []byte{prefix, '/' + 1}})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()[2:]
		i := len(k) - 21 // "<issuer>/" + 20 octets
		if i < 1 {
			continue
		}
		if err := f(string(k[:i]), k[i+1:], it.Value()); err != nil {
			return err
		}
	}
	return it.Error()
}

// DirSize is the bytes of the files directly in dir (a Pebble store's).
func DirSize(dir string) int64 {
	var n int64
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && !fi.IsDir() {
			n += fi.Size()
		}
	}
	return n
}
