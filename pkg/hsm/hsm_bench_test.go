package hsm_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/certmill/certmill/pkg/hsm"
	"github.com/certmill/certmill/pkg/hsm/hsmtest"
)

// BenchmarkSign measures P-256 signatures per second through the session
// pool for pool sizes 1..8 and 1..16 goroutines, next to Go's own P-256
// signing in the same run: the ceiling a software HSM could approach.
//
//	go test -run '^$' -bench Sign -count 5 ./pkg/hsm/
func BenchmarkSign(b *testing.B) {
	digest := sha256.Sum256([]byte("certmill"))
	goroutines := []int{1, 2, 4, 8, 16}
	raw, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, g := range goroutines {
		b.Run(fmt.Sprintf("go-p256/g=%d", g), func(b *testing.B) { parallel(b, g, raw, digest[:]) })
	}
	for _, pool := range []int{1, 2, 4, 8} {
		tok := hsmtest.NewToken(b, pool)
		h := tok.Open(b)
		k, err := h.GenerateKey("bench", hsm.ECDSAP256)
		if err != nil {
			b.Fatal(err)
		}
		for _, g := range goroutines {
			b.Run(fmt.Sprintf("pool=%d/g=%d", pool, g), func(b *testing.B) { parallel(b, g, k, digest[:]) })
		}
	}
}

// parallel signs b.N times across g goroutines and reports signatures/s.
func parallel(b *testing.B, g int, s crypto.Signer, digest []byte) {
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if _, err := s.Sign(rand.Reader, digest, crypto.SHA256); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sig/s")
}
