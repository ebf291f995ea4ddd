package signer

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/certmill/certmill/pkg/ledger"
	"github.com/certmill/certmill/pkg/ledger/ledgertest"
	"github.com/certmill/certmill/pkg/serial"
)

// TestIndexRebuildsFromTheLedger: the listing index is derived state. An
// empty folder applied from the stream holds every certificate with its
// metadata and its first revocation, and a second folder built the same
// way lists the same.
func TestIndexRebuildsFromTheLedger(t *testing.T) {
	ctx := context.Background()
	l := ledgertest.Embedded(t)
	set, _ := serial.NewSet()
	var c ledger.Chunk
	c.Guard = ledger.Batch{Tenant: "acme", Issuer: "manufacturing", Profile: "device", Key: "k", BatchID: "b1", NotAfter: time.Now().Add(time.Hour).Unix()}
	for i := range 10 {
		sn, _ := set.New()
		c.Issued = append(c.Issued, ledger.Issued{Issuer: "manufacturing", Serial: sn.Bytes(), Tenant: "acme", Profile: "device", BatchID: "b1", Index: i,
			NotAfter: time.Now().AddDate(1, 0, 0).Unix(), DER: []byte{1}, Metadata: map[string]string{"device_id": "MTR-" + string(rune('A'+i)), "product_line": "E350", "plant": "Zug"}})
		c.Guard.Indexes, c.Guard.Serials = append(c.Guard.Indexes, i), append(c.Guard.Serials, sn.Bytes())
	}
	if _, err := l.CommitChunk(ctx, c); err != nil {
		t.Fatal(err)
	}
	for _, reason := range []int{1, 4} { // the second revocation is refused by the ledger; the first stands
		l.Revoke(ctx, ledger.Revoked{Issuer: "manufacturing", Serial: c.Issued[2].Serial, Time: int64(reason), Reason: reason, Tenant: "acme", NotAfter: c.Issued[2].NotAfter})
	}
	build := func() []indexEntry {
		x, err := openIndex(IndexConfig{Dir: filepath.Join(t.TempDir(), "index"), MetadataKeys: []string{"device_id", "product_line"}})
		if err != nil {
			t.Fatal(err)
		}
		defer x.close()
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := l.Consume(cctx, 0, x, ledger.ConsumeOptions{CaughtUp: func(uint64) { cancel() }}); err != nil && cctx.Err() == nil {
			t.Fatal(err)
		}
		es, next, err := x.list("acme", listFilter{meta: [][2]string{{"product_line", "E350"}}}, nil, 100)
		if err != nil || next != nil {
			t.Fatalf("list: %v, next %x", err, next)
		}
		if one, _, _ := x.list("acme", listFilter{meta: [][2]string{{"device_id", "MTR-C"}}}, nil, 100); len(one) != 1 || one[0].RevokedAt != 1 || one[0].Reason != 1 {
			t.Fatalf("MTR-C: %+v, want revoked at 1 for reason 1", one)
		}
		if plant, _, _ := x.list("acme", listFilter{meta: [][2]string{{"plant", "Zug"}}}, nil, 100); len(plant) != 0 {
			t.Fatalf("a metadata key that is not indexed was walked: %d", len(plant))
		}
		if other, _, _ := x.list("globex", listFilter{batchID: "b1"}, nil, 100); len(other) != 0 {
			t.Fatalf("another tenant lists acme's batch: %d", len(other))
		}
		return es
	}
	a, b := build(), build()
	if len(a) != 10 || len(b) != 10 {
		t.Fatalf("listed %d and %d of 10", len(a), len(b))
	}
	for i := range a {
		if a[i].Issuer != b[i].Issuer || string(a[i].Serial) != string(b[i].Serial) || a[i].RevokedAt != b[i].RevokedAt {
			t.Fatalf("entry %d differs between two rebuilds", i)
		}
	}
}
