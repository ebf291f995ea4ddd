package signer_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certmill/certmill/pkg/hsm"
	"github.com/certmill/certmill/pkg/lint"
	"github.com/certmill/certmill/signer"
)

// BenchmarkIssue measures end-to-end issuance (HTTP, CSR checks, lint,
// HSM signature, ledger acknowledgement, answer) in certificates/s for
// batches of 1 to 10,000, next to the crypto floor measured in the same
// run on the same HSM pool: per certificate, the CSR's signature check,
// one HSM signature and the check of the result's signature.
//
// CERTMILL_SIGNER_BATCHES sets the batch sizes (comma-separated, default
// 1,100,1000,10000); go run ./bench picks smaller ones for its quick run.
//
//	go test -run '^$' -bench Issue -benchtime 3x -count 3 ./signer/
func BenchmarkIssue(b *testing.B) {
	batches := benchBatches(b)
	e := newEnv(b, nil)
	// Twice the largest batch, so that no batch repeats a CSR.
	pool := 2 * max(slices.Max(batches), 500)
	csrs := make([]string, pool)
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(pool); i = next.Add(1) - 1 {
				csrs[i] = deviceCSR(b, p256(b), fmt.Sprintf("MTR-%06d", i))
			}
		}()
	}
	wg.Wait()

	b.Run("floor", func(b *testing.B) {
		h, err := hsm.Open(e.h.Online, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer h.Close()
		k, err := h.Key(e.h.KeyLabel(b, "manufacturing"))
		if err != nil {
			b.Fatal(err)
		}
		blk, _ := pem.Decode([]byte(csrs[0]))
		var n atomic.Int64
		b.ResetTimer()
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n.Add(1) <= int64(b.N) {
					csr, _ := x509.ParseCertificateRequest(blk.Bytes)
					if err := csr.CheckSignature(); err != nil {
						b.Error(err)
					}
					d := sha256.Sum256(blk.Bytes)
					sig, err := k.Sign(rand.Reader, d[:], crypto.SHA256)
					if err != nil {
						b.Error(err)
						return
					}
					if !ecdsa.VerifyASN1(k.Public().(*ecdsa.PublicKey), d[:], sig) {
						b.Error("bad signature")
					}
				}
			}()
		}
		wg.Wait()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
	})

	b.Run("lint-only", func(b *testing.B) {
		r := e.submit(b, "manufacturing", "device", acmeToken, "lint-sample", batchBody(csrs[0]))
		blk, _ := pem.Decode([]byte(r.Results[0].Certificate))
		l, _ := lint.New(lint.Options{})
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				l.Certificate(blk.Bytes)
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
	})

	used := 1
	run := func(e *env, name string, n int) {
		b.Run(name, func(b *testing.B) {
			b.ResetTimer()
			for i := range b.N {
				if used+n > pool {
					used = 1 // CSRs may repeat across batches, never within one
				}
				body := batchBody(csrs[used : used+n]...)
				used += n
				b.StartTimer()
				r := e.submit(b, "manufacturing", "device", acmeToken, fmt.Sprintf("bench-%d-%d-%d", n, i, time.Now().UnixNano()), body)
				b.StopTimer()
				if r.Issued != n {
					b.Fatalf("issued %d of %d", r.Issued, n)
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "certs/s")
			// Peak RSS of this process (signer, embedded ledger, client
			// and the CSR pool together): an upper bound for the signer.
			b.ReportMetric(float64(peakRSS())/(1<<20), "peak-MiB")
		})
	}
	// The default profile (configs/issuers.yaml: device, lint: shape).
	for _, n := range batches {
		run(e, fmt.Sprintf("batch=%d", n), n)
	}
	// The same with zlint on every certificate (lint: every), at the
	// largest batch size up to 1,000: what linting each one costs.
	every := newEnv(b, func(c *signer.Config) {
		src, err := os.ReadFile(c.IssuersFile)
		if err != nil {
			b.Fatal(err)
		}
		os.WriteFile(c.IssuersFile, bytes.Replace(src, []byte("        lint: shape\n"), []byte("        lint: every\n"), 1), 0o600)
	})
	n := batches[0]
	for _, m := range batches {
		if m <= 1000 {
			n = m
		}
	}
	run(every, fmt.Sprintf("lint-every-batch=%d", n), n)
}

// benchBatches is CERTMILL_SIGNER_BATCHES or 1, 100, 1000, 10000.
func benchBatches(b *testing.B) []int {
	v := os.Getenv("CERTMILL_SIGNER_BATCHES")
	if v == "" {
		return []int{1, 100, 1000, 10000}
	}
	var ns []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			b.Fatalf("CERTMILL_SIGNER_BATCHES=%q: want positive integers separated by commas", v)
		}
		ns = append(ns, n)
	}
	return ns
}

// peakRSS is VmHWM from /proc/self/status, in bytes.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb << 10
		}
	}
	return 0
}
