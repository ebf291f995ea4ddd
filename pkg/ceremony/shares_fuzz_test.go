package ceremony

import (
	"bytes"
	"testing"
	"time"
)

// FuzzParseShare: a share typed back in from paper may be anything. It
// must never panic, and what parses must marshal back to a file that
// parses to the same share.
func FuzzParseShare(f *testing.F) {
	good := Share{Hierarchy: "acme", Ceremony: "00ff", Custodian: "alice", Index: 2, Total: 5, Threshold: 3,
		Created: time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC), Data: []byte{1, 2, 3, 4, 5}}
	f.Add(good.Marshal())
	f.Add([]byte(shareMagic + "\nshare: 1 of 1, threshold 2\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseShare(b)
		if err != nil {
			return
		}
		again, err := ParseShare(s.Marshal())
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if again.Index != s.Index || !bytes.Equal(again.Data, s.Data) || again.Ceremony != s.Ceremony {
			t.Fatal("round trip changed the share")
		}
	})
}
