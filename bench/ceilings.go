package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"log"
	mrand "math/rand/v2"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bits-and-blooms/bloom/v3"
	"github.com/cockroachdb/pebble/v2"
	"github.com/fxamacker/cbor/v2"

	"github.com/certmill/certmill/pkg/hsm"
	"github.com/certmill/certmill/pkg/kvstore"
	"github.com/certmill/certmill/pkg/secret"
	"github.com/certmill/certmill/pkg/softhsm"
)

// rate signs for d across g goroutines and returns signatures per second.
func rate(s crypto.Signer, g int, d time.Duration) (float64, error) {
	digest := sha256.Sum256([]byte("certmill bench"))
	return during(g, d, func() error {
		_, err := s.Sign(rand.Reader, digest[:], crypto.SHA256)
		return err
	})
}

// during calls op from g goroutines for d and returns calls per second.
func during(g int, d time.Duration, op func() error) (float64, error) {
	var n atomic.Int64
	var firstErr atomic.Value
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	start := time.Now()
	for range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if err := op(); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return 0, err
	}
	return float64(n.Load()) / time.Since(start).Seconds(), nil
}

// median of runs measurements of f.
func median(runs int, f func() (float64, error)) (float64, error) {
	var xs []float64
	for range runs {
		x, err := f()
		if err != nil {
			return 0, err
		}
		xs = append(xs, x)
	}
	return medianOf(xs), nil
}

type series struct {
	name   string
	x, y   []float64
	dashed bool // a ceiling
	flat   bool // a level across the plot, not points: drawn without markers
}

func (s *series) add(x, y float64) { s.x, s.y = append(s.x, x), append(s.y, y) }

// best is the largest y and its index.
func (s series) best() (float64, int) {
	b, at := 0.0, -1
	for i, y := range s.y {
		if y > b {
			b, at = y, i
		}
	}
	return b, at
}

// sigCeilings is what signatures cost: Go's own P-256 and RSA-2048, and
// SoftHSM2 through pkg/hsm's session pool with the same keys' algorithms.
type sigCeilings struct {
	p256    []series // Go first, then one per pool size
	rsa     []series // Go, then SoftHSM2 at the largest pool
	hsmBest float64
	bestAt  string
}

func measureSignatures(p profile) (*sigCeilings, error) {
	c := &sigCeilings{}
	dir, err := os.MkdirTemp("", "certmill-bench-hsm-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if _, err := softhsm.Use(dir); err != nil {
		return nil, err
	}
	defer os.Unsetenv("SOFTHSM2_CONF")
	sweep := func(name string, s crypto.Signer) (series, error) {
		out := series{name: name}
		for _, g := range p.goroutines {
			v, err := median(p.runs, func() (float64, error) { return rate(s, g, p.sigDur) })
			if err != nil {
				return out, fmt.Errorf("%s: %w", name, err)
			}
			out.add(float64(g), v)
			log.Printf("bench: %s, %d goroutines: %.0f signatures/s", name, g, v)
		}
		return out, nil
	}

	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s, err := sweep("Go crypto/ecdsa P-256 (ceiling)", ec)
	if err != nil {
		return nil, err
	}
	s.dashed = true
	c.p256 = append(c.p256, s)
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	s, err = sweep("Go crypto/rsa 2048 (ceiling)", rk)
	if err != nil {
		return nil, err
	}
	s.dashed = true
	c.rsa = append(c.rsa, s)

	pin := secret.New([]byte("bench-pin"))
	module := hsm.FindSoftHSM2()
	if module == "" {
		return nil, fmt.Errorf("SoftHSM2 is not installed")
	}
	if err := hsm.InitToken(module, "bench", secret.New([]byte("bench-so")), pin); err != nil {
		return nil, err
	}
	for i, pool := range p.pools {
		h, err := hsm.OpenPIN(hsm.Config{Module: module, Token: "bench", Sessions: pool, SessionWait: 10 * time.Second}, pin, nil)
		if err != nil {
			return nil, err
		}
		var k *hsm.Key
		if i == 0 {
			k, err = h.GenerateKey("bench-p256", hsm.ECDSAP256)
		} else {
			k, err = h.Key("bench-p256")
		}
		if err != nil {
			h.Close()
			return nil, err
		}
		s, err := sweep(fmt.Sprintf("SoftHSM2 P-256, pool of %d", pool), k)
		if err != nil {
			h.Close()
			return nil, err
		}
		c.p256 = append(c.p256, s)
		if v, at := s.best(); v > c.hsmBest {
			c.hsmBest, c.bestAt = v, fmt.Sprintf("pool %d, %d goroutines", pool, int(s.x[at]))
		}
		if i == len(p.pools)-1 {
			rk, err := h.GenerateKey("bench-rsa", hsm.RSA2048)
			if err != nil {
				h.Close()
				return nil, err
			}
			s, err := sweep(fmt.Sprintf("SoftHSM2 RSA 2048, pool of %d", pool), rk)
			if err != nil {
				h.Close()
				return nil, err
			}
			c.rsa = append(c.rsa, s)
		}
		h.Close()
	}
	return c, nil
}

// storeCeiling is what the responder's store can do at one size, without
// HTTP, OCSP or locks: Pebble gets of present keys (Zipf s = 1.1 over
// the population, as the OCSP benchmark asks) and of absent ones, and
// bloom filter tests, each from as many goroutines as there are cores.
type storeCeiling struct {
	n                   int
	present, absent, bf float64 // operations/s
	load                time.Duration
	bytesPerKey         float64
	bloomFP             float64 // absent keys the filter let through, of 10,000
}

// measureStore builds a Pebble store of n keys laid out as the responder's
// (c/<issuer>/<serial zero-padded to 20 octets> -> a CBOR status, through
// kvstore.Open, so with the same options and block cache), compacts it,
// and a bloom filter of the same sizing (0.1 % false positives), and
// measures them.
func measureStore(n int, p profile) (*storeCeiling, error) {
	dir, err := os.MkdirTemp("", "certmill-bench-store-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	db, err := kvstore.Open(dir)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	// The responder's status of a good certificate: NotAfter, Revoked,
	// Issued (keys 1, 2 and 5).
	val, err := cbor.Marshal(map[int]any{1: time.Now().AddDate(1, 0, 0).Unix(), 2: false, 5: true})
	if err != nil {
		return nil, err
	}
	rng := mrand.New(mrand.NewPCG(7, 11))
	newSerial := func() []byte {
		// As pkg/serial: 16 octets, top bit clear, bit 126 set.
		var b [16]byte
		for i := 0; i < 16; i += 8 {
			v := rng.Uint64()
			for j := range 8 {
				b[i+j] = byte(v >> (8 * j))
			}
		}
		b[0] = b[0]&0x7f | 0x40
		return b[:]
	}
	serials := make([][]byte, n)
	filter := bloom.NewWithEstimates(uint(n), 0.001)
	start := time.Now()
	batch := db.NewBatch()
	for i := range serials {
		serials[i] = newSerial()
		filter.Add(serials[i])
		if err := batch.Set(kvstore.SerialKey("c/bench/", serials[i]), val, nil); err != nil {
			return nil, err
		}
		if batch.Count() == 10_000 || i == n-1 {
			if err := batch.Commit(pebble.NoSync); err != nil {
				return nil, err
			}
			batch = db.NewBatch()
		}
	}
	if err := db.Flush(); err != nil {
		return nil, err
	}
	// Compacted to the end, so that no compaction runs while we measure
	// and reads meet the fewest levels: the best case, as a ceiling is.
	if err := db.Compact(context.Background(), []byte("c/"), []byte("c0"), true); err != nil {
		return nil, err
	}
	c := &storeCeiling{n: n, load: time.Since(start), bytesPerKey: float64(kvstore.DirSize(dir)) / float64(n)}

	// Each goroutine walks its own precomputed list of keys, so that the
	// random draws are not measured.
	const perG = 1 << 16
	g := runtime.NumCPU()
	zipf := mrand.NewZipf(mrand.New(mrand.NewPCG(1, 2)), 1.1, 1, uint64(n-1))
	present := make([][][]byte, g)
	absent := make([][][]byte, g)
	mixed := make([][][]byte, g)
	for w := range g {
		for i := range perG {
			pk := kvstore.SerialKey("c/bench/", serials[zipf.Uint64()])
			present[w] = append(present[w], pk)
			absent[w] = append(absent[w], kvstore.SerialKey("c/bench/", newSerial()))
			if i%5 == 0 { // the OCSP benchmark's mix: 20 % never issued
				mixed[w] = append(mixed[w], newSerial())
			} else {
				mixed[w] = append(mixed[w], serials[zipf.Uint64()])
			}
		}
	}
	measure := func(keys [][][]byte, op func(k []byte) error) (float64, error) {
		return median(p.runs, func() (float64, error) { return parallelOver(g, p.storeDur, keys, op) })
	}
	get := func(k []byte) error {
		_, closer, err := db.Get(k)
		if err == pebble.ErrNotFound {
			return nil
		}
		if err != nil {
			return err
		}
		return closer.Close()
	}
	if c.present, err = measure(present, get); err != nil {
		return nil, err
	}
	if c.absent, err = measure(absent, get); err != nil {
		return nil, err
	}
	var sink atomic.Int64
	if c.bf, err = measure(mixed, func(k []byte) error {
		if filter.Test(k) {
			sink.Add(0) // keeps the test from being optimised away
		}
		return nil
	}); err != nil {
		return nil, err
	}
	// The set-up checked outside the timed loops: present keys are there,
	// absent ones are not, and the filter lets few absent ones through.
	var in, out, fp int
	for i := range 10_000 {
		if _, cl, err := db.Get(present[0][i]); err == nil {
			in++
			cl.Close()
		}
		if _, cl, err := db.Get(absent[0][i]); err == nil {
			out++
			cl.Close()
		}
		if k := absent[0][i]; filter.Test(k[len(k)-16:]) {
			fp++
		}
	}
	if in != 10_000 || out != 0 {
		return nil, fmt.Errorf("store ceiling: %d of 10000 present keys found, %d of 10000 absent ones", in, out)
	}
	c.bloomFP = float64(fp) / 10_000
	return c, nil
}

// parallelOver runs op over keys[w] in a loop in goroutine w, for d, and
// returns operations per second.
func parallelOver(g int, d time.Duration, keys [][][]byte, op func(k []byte) error) (float64, error) {
	var n atomic.Int64
	var firstErr atomic.Value
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ks := keys[w]
			var mine int64
			for i := 0; ; i++ {
				if i%256 == 0 && !time.Now().Before(deadline) {
					break
				}
				if err := op(ks[i%len(ks)]); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				mine++
			}
			n.Add(mine)
		}()
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return 0, err
	}
	return float64(n.Load()) / time.Since(start).Seconds(), nil
}
