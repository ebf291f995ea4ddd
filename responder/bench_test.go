package responder

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"log/slog"
	"math"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/golang-lru/v2"
	"github.com/valyala/fasthttp"
	"golang.org/x/crypto/ocsp"

	"github.com/certmill/certmill/pkg/hsm"
	"github.com/certmill/certmill/pkg/hsm/hsmtest"
	"github.com/certmill/certmill/pkg/kvstore"
	"github.com/certmill/certmill/pkg/ledger"
	"github.com/certmill/certmill/pkg/profile"
	"github.com/certmill/certmill/pkg/serial"
)

// benchN is the population: CERTMILL_OCSP_CERTS, default 200,000 (the
// issue's 10 M takes minutes to load: set it for the full run).
func benchN() int {
	if n, err := strconv.Atoi(os.Getenv("CERTMILL_OCSP_CERTS")); err == nil && n > 0 {
		return n
	}
	return 200_000
}

// BenchmarkOCSP loads n certificates (1 % revoked) into a real store and
// asks about Zipf-distributed serials, 20 % of them never issued, over 64
// connections, next to a static fasthttp answer of the same size on the
// same loopback in the same run.
//
//	CERTMILL_OCSP_CERTS=1000000 go test -run '^$' -bench OCSP -benchtime 200000x -count 3 ./responder/
func BenchmarkOCSP(b *testing.B) {
	n := benchN()
	runtime.GC()
	baseRSS := rssBytes()
	bp := newBenchPopulation(b, n)
	r, caCert, serials, diskBytes := bp.r, bp.ca, bp.serials, bp.diskBytes
	defer bp.st.close()
	b.Logf("population %d (1 %% revoked) loaded in %s, compactions settled %s later; store %.1f bytes/certificate on disk",
		n, bp.load.Round(time.Millisecond), bp.settled.Round(time.Millisecond), float64(diskBytes)/float64(n))
	r.srv = &fasthttp.Server{Handler: r.handle, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, MaxRequestBodySize: 4096}

	// Requests: Zipf over the issued serials (s = 1.1), 20 % never issued.
	reqs := zipfRequests(serials, caCert)
	// The population's serials are no longer needed: drop them, so that
	// what the process holds above baseRSS is the responder's (store,
	// bloom filter, Pebble cache, answers) plus the 100,000 requests.
	serials, bp.serials = nil, nil
	runtime.GC()
	debug.FreeOSMemory()
	// The static answer is the same size on the wire: the same body and
	// the same RFC 5019 headers, as a file server would send them.
	sample := sampleAnswer(b, r, reqs[1])
	static := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		h := &ctx.Response.Header
		h.SetContentTypeBytes(contentTypeOCSP)
		h.SetCanonical(hdrETag, sample.etag)
		h.SetCanonical(hdrLastModified, sample.lastMod)
		h.SetCanonical(hdrExpires, sample.expires)
		h.SetCanonical(hdrCacheControl, staticCacheControl)
		ctx.SetBody(sample.der)
	}}
	var warm onceEach
	// fresh: the never-issued fifth of the requests are new serials every
	// time (an attacker's flood), so each one is signed at request time.
	for _, tc := range []struct {
		name  string
		srv   *fasthttp.Server
		fresh bool
	}{{"static", static, false}, {fmt.Sprintf("responder/certs=%d", n), r.srv, false}, {fmt.Sprintf("responder-fresh-unknown/certs=%d", n), r.srv, true}} {
		b.Run(tc.name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			go tc.srv.Serve(ln)
			defer ln.Close()
			c := &fasthttp.HostClient{Addr: ln.Addr().String(), MaxConns: 64}
			url := "http://" + ln.Addr().String() + "/bench"
			// Warm up: one pass over the request pool, as a responder that has
			// run for a while has signed and kept its hot answers. Once per
			// server: the testing package calls this function again for every
			// round and every -count, and the answers are kept by then.
			warm.Do(tc.srv, func() {
				var wg sync.WaitGroup
				var i atomic.Int64
				for range 16 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						req, resp, release := ocspPost(url)
						defer release()
						for j := i.Add(1) - 1; j < pool; j = i.Add(1) - 1 {
							req.SetBody(reqs[j])
							c.Do(req, resp)
						}
					}()
				}
				wg.Wait()
			})
			var fresh [][]byte
			if tc.fresh {
				fresh = make([][]byte, b.N/5+1)
				for i := range fresh {
					sn, _ := serial.New()
					fresh[i], _ = ocsp.CreateRequest(&x509.Certificate{SerialNumber: sn}, caCert, &ocsp.RequestOptions{Hash: crypto.SHA1})
				}
			}
			askOCSP(b, ln.Addr().String(), 64, false, func(i int64) []byte {
				if tc.fresh && i%5 == 0 {
					return fresh[i/5]
				}
				return reqs[i%pool]
			})
			if tc.srv == r.srv && !tc.fresh {
				b.ReportMetric(float64(diskBytes)/float64(n), "disk-B/cert")
				b.ReportMetric(float64(rssBytes()-baseRSS)/float64(n), "rss-B/cert")
			}
		})
	}
}

// settle waits, up to five minutes, until the store has run no compaction
// for half a second: the load may leave a backlog that would take the
// cores from the server being measured, which a responder that has run
// for a while does not have. Up to 300k certificates it waits 0.5-0.7 s
// here, so the backlog is small at those sizes.
func settle(db *pebble.DB) time.Duration {
	start := time.Now()
	for quiet := 0; quiet < 5 && time.Since(start) < 5*time.Minute; time.Sleep(100 * time.Millisecond) {
		if db.Metrics().Compact.NumInProgress == 0 {
			quiet++
		} else {
			quiet = 0
		}
	}
	return time.Since(start)
}

// onceEach runs f once per key.
type onceEach struct {
	mu   sync.Mutex
	done map[any]bool
}

func (o *onceEach) Do(key any, f func()) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.done[key] {
		return
	}
	if o.done == nil {
		o.done = map[any]bool{}
	}
	o.done[key] = true
	f()
}

func loadIssuerFrom(cert *x509.Certificate, key *hsm.Key) (*issuer, error) {
	return newIssuer("bench", cert, key)
}

// staticCacheControl has the length of the responder's with its default
// one-hour validity (max-age up to 1800).
var staticCacheControl = []byte("max-age=1800, public, no-transform, must-revalidate")

func sampleAnswer(b *testing.B, r *Responder, req []byte) *answer {
	var q request
	if err := decodeRequest(req, &q); err != nil {
		b.Fatal(err)
	}
	a, err := r.answer(r.issuers[0], &q.ids[0])
	if err != nil {
		b.Fatal(err)
	}
	return a
}

// rssBytes is VmRSS from /proc/self/status, in bytes.
func rssBytes() int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// benchPopulation is a responder over a real store of n certificates, 1 %
// of them revoked, with a delegated responder certified by a CA key in
// SoftHSM2, caught up and ready to answer (no HTTP server).
type benchPopulation struct {
	r             *Responder
	st            *store
	ca            *x509.Certificate
	serials       []*big.Int
	diskBytes     int64
	load, settled time.Duration
}

func newBenchPopulation(b *testing.B, n int) *benchPopulation {
	tok := hsmtest.NewToken(b, 2)
	h := tok.Open(b)
	caKey, err := h.GenerateKey("ocsp-bench-ca", hsm.ECDSAP256)
	if err != nil {
		b.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench CA", Organization: []string{"Acme"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(5, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, SubjectKeyId: profile.KeyID(caKey.Public())}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, caKey.Public(), caKey)
	caCert, _ := x509.ParseCertificate(der)
	dir := b.TempDir()
	st, err := openStore(dir, uint(n), 0)
	if err != nil {
		b.Fatal(err)
	}
	serials := make([]*big.Int, n)
	notAfter := time.Now().AddDate(1, 0, 0).Unix()
	batch := make([]ledger.Entry, 0, 10000)
	t0 := time.Now()
	for i := range n {
		sn, _ := serial.New()
		serials[i] = sn
		batch = append(batch, ledger.Entry{Seq: uint64(2*i + 1), Record: ledger.Record{Kind: ledger.KindIssued, Issued: &ledger.Issued{Issuer: "bench", Serial: sn.Bytes(), NotAfter: notAfter}}})
		if i%100 == 0 {
			batch = append(batch, ledger.Entry{Seq: uint64(2*i + 2), Record: ledger.Record{Kind: ledger.KindRevoked, Revoked: &ledger.Revoked{Issuer: "bench", Serial: sn.Bytes(), Time: time.Now().UnixNano(), Reason: 1, NotAfter: notAfter}}})
		}
		if len(batch) >= 9999 || i == n-1 {
			if err := st.Apply(batch, uint64(2*i+2)); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	load := time.Since(t0)
	st.db.Flush()
	settled := settle(st.db)
	diskBytes := kvstore.DirSize(dir)
	r := &Responder{cfg: &Config{ResponseValidity: time.Hour, ResponderValidity: 48 * time.Hour, MaxRequestBytes: 16 << 10}, log: slog.New(slog.DiscardHandler), st: st}
	st.onChange = r.forget
	r.unknown, _ = lru.New[cacheKey, *answer](50_000) // the default unknown_cache
	is, err := loadIssuerFrom(caCert, caKey)
	if err != nil {
		b.Fatal(err)
	}
	if err := r.certify(is); err != nil {
		b.Fatal(err)
	}
	r.issuers = []*issuer{is}
	r.caught.Store(true)
	return &benchPopulation{r: r, st: st, ca: caCert, serials: serials, diskBytes: diskBytes, load: load, settled: settled}
}

// BenchmarkNeverIssued asks the responder's answer path (no HTTP) about
// fresh random serials against a population of CERTMILL_OCSP_CERTS
// certificates, and counts the answers: not one may be good (invariant
// 4). Bloom false positives go to the store and come back unknown.
//
//	go test -run '^$' -bench NeverIssued -benchtime 1000000x ./responder/
func BenchmarkNeverIssued(b *testing.B) {
	bp := newBenchPopulation(b, benchN())
	defer bp.st.close()
	is := bp.r.issuers[0]
	var good, unknown, other atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			sn, err := serial.New()
			if err != nil {
				b.Error(err)
				return
			}
			a, err := bp.r.answer(is, &certID{hash: crypto.SHA1, serial: intContent(sn)})
			if err != nil {
				b.Error(err)
				return
			}
			resp, err := ocsp.ParseResponse(a.der, nil)
			switch {
			case err != nil:
				b.Error(err)
				return
			case resp.Status == ocsp.Good:
				good.Add(1)
			case resp.Status == ocsp.Unknown:
				unknown.Add(1)
			default:
				other.Add(1)
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "answers/s")
	b.ReportMetric(float64(good.Load()), "good")
	b.ReportMetric(float64(unknown.Load()), "unknown")
	if good.Load() != 0 || other.Load() != 0 {
		b.Fatalf("never-issued serials: %d good, %d neither good nor unknown, of %d", good.Load(), other.Load(), b.N)
	}
}

// ocspPost is a pooled OCSP POST to url and its response; release
// returns both to fasthttp's pools.
func ocspPost(url string) (*fasthttp.Request, *fasthttp.Response, func()) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	req.SetRequestURI(url)
	req.Header.SetMethod("POST")
	req.Header.SetContentType("application/ocsp-request")
	return req, resp, func() { fasthttp.ReleaseRequest(req); fasthttp.ReleaseResponse(resp) }
}

// askOCSP sends b.N OCSP requests by POST from 64 goroutines over at most
// conns connections to addr, the i-th with body(i), and reports requests
// per second and the latency percentiles the clients saw. closeEach asks
// for a new connection per request (a server that answers one connection
// at a time).
func askOCSP(b *testing.B, addr string, conns int, closeEach bool, body func(i int64) []byte) {
	c := &fasthttp.HostClient{Addr: addr, MaxConns: conns, MaxConnWaitTimeout: 30 * time.Second}
	url := "http://" + addr + "/bench"
	var mu sync.Mutex
	var lat []time.Duration
	var next int64
	b.SetParallelism(32) // 64 goroutines on 2 cores: 64 connections
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, resp, release := ocspPost(url)
		defer release()
		if closeEach {
			req.SetConnectionClose()
		}
		var mine []time.Duration
		for pb.Next() {
			mu.Lock()
			i := next
			next++
			mu.Unlock()
			req.SetBody(body(i))
			t := time.Now()
			if err := c.DoTimeout(req, resp, 30*time.Second); err != nil || resp.StatusCode() != 200 {
				b.Errorf("%v %d", err, resp.StatusCode())
				return
			}
			mine = append(mine, time.Since(t))
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	if len(lat) > 0 {
		q := func(f float64) float64 {
			return float64(lat[int(math.Min(float64(len(lat)-1), float64(len(lat))*f))].Microseconds()) / 1000
		}
		b.ReportMetric(q(0.5), "p50-ms")
		b.ReportMetric(q(0.9), "p90-ms")
		b.ReportMetric(q(0.99), "p99-ms")
		b.ReportMetric(q(0.999), "p99.9-ms")
	}
}

// pool is how many requests the OCSP benchmarks prepare and cycle through.
const pool = 100_000

// zipfRequests prepares the benchmarks' requests: Zipf over serials
// (s = 1.1, the same draw every run), every fifth a never-issued serial.
func zipfRequests(serials []*big.Int, ca *x509.Certificate) [][]byte {
	reqs := make([][]byte, pool)
	zipf := mrand.NewZipf(mrand.New(mrand.NewPCG(1, 2)), 1.1, 1, uint64(len(serials)-1))
	for i := range reqs {
		var sn *big.Int
		if i%5 == 0 {
			sn, _ = serial.New()
		} else {
			sn = serials[zipf.Uint64()]
		}
		reqs[i], _ = ocsp.CreateRequest(&x509.Certificate{SerialNumber: sn}, ca, &ocsp.RequestOptions{Hash: crypto.SHA1})
	}
	return reqs
}

// BenchmarkHandleCached runs the handler on a fasthttp.RequestCtx, no
// network, for POSTs whose answers are cached: what a request costs the
// responder itself, allocations included.
//
//	go test -run '^$' -bench HandleCached -benchmem ./responder/
func BenchmarkHandleCached(b *testing.B) {
	bp := newBenchPopulation(b, 10_000)
	defer bp.st.close()
	reqs := zipfRequests(bp.serials, bp.ca)[:1000]
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("POST")
	ctx.Request.SetRequestURI("/bench")
	ctx.Request.Header.SetContentType("application/ocsp-request")
	for _, q := range reqs { // sign and keep every answer first
		ctx.Request.SetBody(q)
		bp.r.handle(&ctx)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		ctx.Request.SetBody(reqs[i%len(reqs)])
		ctx.Response.Reset()
		bp.r.handle(&ctx)
	}
}
