package ledger_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/certmill/certmill/pkg/ledger"
	"github.com/certmill/certmill/pkg/ledger/ledgertest"
	"github.com/certmill/certmill/pkg/serial"
)

// BenchmarkCommit measures acknowledged certificates per second through
// the ledger (embedded nats-server, file storage, fsync on every write),
// one chunk of n certificates plus its guard per atomic batch, next to
// Pebble writing the same encoded records in one synced batch: the cost of
// the same durability without replication or a network hop.
//
//	go test -run '^$' -bench Commit -count 5 ./pkg/ledger/
func BenchmarkCommit(b *testing.B) {
	for _, n := range []int{1, 100, 999} {
		pool := make([][]ledger.Issued, 0, 64)
		for range 64 {
			pool = append(pool, issued("manufacturing", n))
		}
		b.Run(fmt.Sprintf("jetstream/certs=%d", n), func(b *testing.B) {
			l := ledgertest.Embedded(b)
			ctx := context.Background()
			b.ResetTimer()
			for i := range b.N {
				c := chunk(fmt.Sprint("bench-", i), 1, 0, pool[i%len(pool)])
				// New serial sets each time so that nothing is a duplicate.
				var set serial.Set
				for j := range c.Issued {
					if j%ledger.SetSize == 0 {
						set, _ = serial.NewSet()
					}
					c.Issued[j].Serial = append(set[:], pool[i%len(pool)][j].Serial[8:]...)
				}
				if _, err := l.CommitChunk(ctx, c); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "certs/s")
		})
		b.Run(fmt.Sprintf("pebble-sync/certs=%d", n), func(b *testing.B) {
			db, err := pebble.Open(b.TempDir(), &pebble.Options{Logger: quietLogger{}})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			b.ResetTimer()
			for i := range b.N {
				batch := db.NewBatch()
				for j, is := range pool[i%len(pool)] {
					v, _ := ledger.Encode(ledger.Record{Kind: ledger.KindIssued, Issued: &is})
					batch.Set([]byte(fmt.Sprintf("iss/%d/%d", i, j)), v, nil)
				}
				if err := batch.Commit(pebble.Sync); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "certs/s")
		})
	}
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(f string, a ...any) {
	panic(fmt.Sprintf(f, a...))
}
