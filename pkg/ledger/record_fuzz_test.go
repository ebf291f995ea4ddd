package ledger

import (
	"bytes"
	"testing"
)

// FuzzDecode: records come off the network. Decode must never panic, and
// a record that decodes must encode and decode to the same record.
func FuzzDecode(f *testing.F) {
	seed, _ := Encode(Record{Kind: KindIssued, Issued: &Issued{Issuer: "m", Serial: []byte{1, 2}, DER: []byte{3}, Metadata: map[string]string{"a": "b"}}})
	f.Add(seed)
	seed, _ = Encode(Record{Kind: KindRevoked, Revoked: &Revoked{Issuer: "m", Serial: []byte{1}, Reason: 1}})
	f.Add(seed)
	seed, _ = Encode(Record{Kind: KindIssuedSet, Set: &IssuedSet{Issuer: "m", Set: []byte{0x40, 1, 2, 3, 4, 5, 6, 7}, Certs: []Issued{{Issuer: "m", Serial: []byte{1}}}}})
	f.Add(seed)
	seed, _ = Encode(Record{Kind: KindBatch, Batch: &Batch{Tenant: "t", Serials: [][]byte{{1}}, Indexes: []int{0}}})
	f.Add(seed)
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Decode(b)
		if err != nil {
			return
		}
		again, err := Encode(r)
		if err != nil {
			t.Fatalf("encode a decoded record: %v", err)
		}
		r2, err := Decode(again)
		if err != nil {
			t.Fatalf("decode a re-encoded record: %v", err)
		}
		again2, _ := Encode(r2)
		if !bytes.Equal(again, again2) {
			t.Fatal("encoding is not stable")
		}
	})
}
