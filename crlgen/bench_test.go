package crlgen

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certmill/certmill/pkg/hsm"
	"github.com/certmill/certmill/pkg/hsm/hsmtest"
	"github.com/certmill/certmill/pkg/ledger"
	"github.com/certmill/certmill/pkg/profile"
	"github.com/certmill/certmill/pkg/serial"
)

// benchGenerator is a Generator on a fresh store with n revocations of one
// issuer whose key is on a SoftHSM2 token, and the entries for Go's own
// CreateRevocationList.
func benchGenerator(b testing.TB, n int) (*Generator, []x509.RevocationListEntry, *x509.Certificate, crypto.Signer) {
	b.Helper()
	tok := hsmtest.NewToken(b, 2)
	h := tok.Open(b)
	key, err := h.GenerateKey("crl-bench", hsm.ECDSAP256)
	if err != nil {
		b.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().AddDate(1, 0, 0), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		SubjectKeyId: profile.KeyID(key.Public())}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		b.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	st, err := openStore(b.TempDir(), 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.close() })
	entries := make([]x509.RevocationListEntry, 0, n)
	batch := make([]ledger.Entry, 0, 10000)
	notAfter := time.Now().AddDate(5, 0, 0).Unix()
	for i := range n {
		sn, _ := serial.New()
		r := &ledger.Revoked{Issuer: "bench", Serial: sn.Bytes(), Time: time.Now().UnixNano(), Reason: 1 + i%5, NotAfter: notAfter}
		batch = append(batch, ledger.Entry{Seq: uint64(i + 1), Record: ledger.Record{Kind: ledger.KindRevoked, Revoked: r}})
		entries = append(entries, x509.RevocationListEntry{SerialNumber: sn, RevocationTime: time.Unix(0, r.Time), ReasonCode: r.Reason})
		if len(batch) == cap(batch) || i == n-1 {
			if err := st.Apply(batch, uint64(i+1)); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	g := &Generator{cfg: &Config{FullValidity: 7 * 24 * time.Hour, DeltaValidity: time.Hour}, d: Deps{Now: time.Now}, log: slog.New(slog.DiscardHandler), st: st,
		issuers: map[string]*issuer{"bench": {name: "bench", cert: cert, key: key, prof: &profile.Issuer{URLs: profile.URLs{DeltaCRL: "http://127.0.0.1:8082/bench-delta.crl"}}}}}
	g.srv = newOrigin(g)
	return g, entries, cert, key
}

// peakHeap runs f and returns how far the live heap rose above where it was.
func peakHeap(f func()) uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	base := s[0].Value.Uint64()
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	f()
	close(stop)
	<-done
	if peak.Load() < base {
		return 0
	}
	return peak.Load() - base
}

// BenchmarkFullCRL: seconds and peak heap to build and sign a full CRL of
// 100k and 1M entries from the store through the HSM, next to Go's
// x509.CreateRevocationList on the same entries with an in-memory key.
// CERTMILL_CRL_ENTRIES sets the sizes (comma-separated, default
// 100000,1000000).
//
//	go test -run '^$' -bench FullCRL -benchtime 1x -count 3 -timeout 30m ./crlgen/
func BenchmarkFullCRL(b *testing.B) {
	for _, n := range crlEntries(b) {
		g, entries, cert, _ := benchGenerator(b, n)
		memKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		memCert := *cert
		memCert.PublicKey = memKey.Public()
		b.Run(fmt.Sprintf("crlgen/entries=%d", n), func(b *testing.B) {
			var heap uint64
			for range b.N {
				heap = max(heap, peakHeap(func() {
					if _, err := g.Build("bench", Full); err != nil {
						b.Fatal(err)
					}
				}))
			}
			der, _, _ := g.Published("bench", Full)
			b.ReportMetric(float64(heap)/(1<<20), "peak-heap-MiB")
			b.ReportMetric(float64(len(der))/(1<<20), "crl-MiB")
		})
		b.Run(fmt.Sprintf("go-createrevocationlist/entries=%d", n), func(b *testing.B) {
			var heap uint64
			for i := range b.N {
				heap = max(heap, peakHeap(func() {
					// The entries are built inside, as crlgen builds its own.
					es := make([]x509.RevocationListEntry, len(entries))
					copy(es, entries)
					_, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(int64(i + 1)), ThisUpdate: time.Now(),
						NextUpdate: time.Now().Add(time.Hour), RevokedCertificateEntries: es}, &memCert, memKey)
					if err != nil {
						b.Fatal(err)
					}
				}))
			}
			b.ReportMetric(float64(heap)/(1<<20), "peak-heap-MiB")
		})
	}
}

// crlEntries is CERTMILL_CRL_ENTRIES or 100,000 and 1,000,000.
func crlEntries(b *testing.B) []int {
	v := os.Getenv("CERTMILL_CRL_ENTRIES")
	if v == "" {
		return []int{100_000, 1_000_000}
	}
	var ns []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			b.Fatalf("CERTMILL_CRL_ENTRIES=%q: want positive integers separated by commas", v)
		}
		ns = append(ns, n)
	}
	return ns
}

// BenchmarkDeltaCRL: a delta of 1,000 entries over a full CRL of 100k.
func BenchmarkDeltaCRL(b *testing.B) {
	g, _, _, _ := benchGenerator(b, 100_000)
	if _, err := g.Build("bench", Full); err != nil {
		b.Fatal(err)
	}
	batch := make([]ledger.Entry, 1000)
	for i := range batch {
		sn, _ := serial.New()
		batch[i] = ledger.Entry{Seq: uint64(100_001 + i), Record: ledger.Record{Kind: ledger.KindRevoked, Revoked: &ledger.Revoked{
			Issuer: "bench", Serial: sn.Bytes(), Time: time.Now().UnixNano(), Reason: 1, NotAfter: time.Now().AddDate(1, 0, 0).Unix()}}}
	}
	if err := g.st.Apply(batch, 101_000); err != nil {
		b.Fatal(err)
	}
	// A sub-benchmark, so that the set-up above runs once and not again
	// for every round and every -count.
	b.Run("entries=1000", func(b *testing.B) {
		for range b.N {
			res, err := g.Build("bench", Delta)
			if err != nil {
				b.Fatal(err)
			}
			if res.Entries != 1000 {
				b.Fatalf("delta has %d entries", res.Entries)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/delta")
	})
}
