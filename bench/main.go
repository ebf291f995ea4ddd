// Command bench measures certmill's components next to their ceilings in
// one run and writes a Markdown report with PNG plots.
//
//	go run ./bench -profile quick -out bench/out      # CI-sized, under 3 minutes on 2 cores
//	go run ./bench -profile full  -out docs/bench     # the committed report (make bench)
//
// It measures its own ceilings in-process (Go's P-256 and RSA-2048
// signatures, SoftHSM2 through pkg/hsm's session pool, Pebble gets of
// present and absent keys and bloom filter tests on a store laid out as
// the responder's) and runs the packages' own benchmarks (go test -bench)
// as subprocesses with sizes the profile picks; each of those measures
// its component next to its ceiling in the same process. Every figure is
// the median of several runs of this one sitting; nothing is carried over
// from an earlier run.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// profile is how big and how long each measurement is.
type profile struct {
	// Signature ceilings and the HSM pool: runs of sigDur per point.
	sigDur     time.Duration
	runs       int
	pools      []int
	goroutines []int
	// Store ceilings: runs of storeDur per figure, at each ocspCerts size.
	storeDur time.Duration

	// Component benchmarks: each go test run has -count count.
	count         int
	ledgerTime    string // -benchtime of BenchmarkCommit
	signerTime    string // -benchtime of BenchmarkIssue (a batch slower than this runs once per count)
	signerBatches []int
	crlEntries    []int
	deltaTime     string // -benchtime of BenchmarkDeltaCRL
	getTime       string // -benchtime of BenchmarkConditionalGET
	ocspCerts     []int  // store sizes, one BenchmarkOCSP run each
	ocspRequests  int    // requests per measured round
	freshness     int    // -count of BenchmarkRevocationFreshness (1,000 revocations each); 0 skips it
	peerCerts     int    // population that openssl ocsp, the peer, serves (BenchmarkOCSPOpenSSL)
	peerRequests  int    // requests per measured round of the peer
	neverIssued   int    // fresh never-issued serials asked (BenchmarkNeverIssued), at the smallest store size
}

var profiles = map[string]profile{
	"quick": {
		sigDur: 150 * time.Millisecond, runs: 3, pools: []int{1, 2, 4}, goroutines: []int{1, 2, 4, 8},
		storeDur: 150 * time.Millisecond,
		count:    3, ledgerTime: "300ms", signerTime: "300ms", signerBatches: []int{1, 10, 100, 1000},
		crlEntries: []int{1000, 10_000, 100_000}, deltaTime: "10x", getTime: "300ms",
		ocspCerts: []int{20_000, 100_000, 300_000}, ocspRequests: 20_000, freshness: 0,
		peerCerts: 20_000, peerRequests: 5_000, neverIssued: 20_000,
	},
	"full": {
		sigDur: time.Second, runs: 3, pools: []int{1, 2, 4, 8}, goroutines: []int{1, 2, 4, 8, 16},
		storeDur: time.Second,
		count:    5, ledgerTime: "2s", signerTime: "2s", signerBatches: []int{1, 10, 100, 1000, 10_000},
		crlEntries: []int{10_000, 100_000, 300_000, 1_000_000}, deltaTime: "20x", getTime: "2s",
		ocspCerts: []int{1_000_000, 2_000_000, 5_000_000, 10_000_000}, ocspRequests: 200_000, freshness: 5,
		peerCerts: 1_000_000, peerRequests: 20_000, neverIssued: 1_000_000,
	},
}

func main() { os.Exit(bench()) }

// bench does the work of main and returns the exit code, so that the
// deferred clean-ups run.
func bench() int {
	prof := flag.String("profile", "quick", "quick (CI) or full")
	out := flag.String("out", "bench/out", "folder for report.md and the plots")
	flag.Parse()
	p, ok := profiles[*prof]
	if !ok {
		log.Printf("bench: unknown profile %q\nhint: -profile quick (CI) or -profile full", *prof)
		return 2
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Printf("bench: %v", err)
		return 1
	}
	root, err := moduleRoot()
	if err != nil {
		log.Printf("bench: %v\nhint: run it from the repository, go run ./bench", err)
		return 1
	}
	tmp, err := os.MkdirTemp("", "certmill-bench-")
	if err != nil {
		log.Printf("bench: %v", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	logs, err := os.Create(filepath.Join(*out, "bench.log"))
	if err != nil {
		log.Printf("bench: %v", err)
		return 1
	}
	defer logs.Close()
	log.SetOutput(io.MultiWriter(os.Stderr, logs))
	// On an interrupt the running benchmark is killed, and the temporary
	// folders (stores of up to millions of certificates) go with it.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	r := &report{profile: *prof, p: p, out: *out, started: time.Now(), env: environment(root), ocsp: map[int]*run{}, store: map[int]*storeCeiling{}}
	rn := &runner{ctx: ctx, root: root, tmp: tmp, bins: map[string]string{}, logs: logs}
	err = r.measure(rn)
	if ctx.Err() != nil {
		log.Printf("bench: interrupted; no report written")
		return 1
	}
	if err != nil {
		log.Printf("bench: %v", err)
		return 1
	}
	r.took = time.Since(r.started)
	if err := r.write(); err != nil {
		log.Printf("bench: %v", err)
		return 1
	}
	log.Printf("bench: report in %s (%s)", filepath.Join(*out, "report.md"), r.took.Round(time.Second))
	if fails := r.failures(); len(fails) > 0 {
		log.Printf("bench: %d measurement(s) failed; the report says which:\n  %s", len(fails), strings.Join(fails, "\n  "))
		return 1
	}
	return 0
}

// measure makes every measurement in order, each ceiling next to the
// component it bounds. A component benchmark that fails is reported, and
// the others still run; a ceiling that fails stops the run.
func (r *report) measure(rn *runner) error {
	p := r.p
	if err := r.section("build the test binaries", func() error {
		return rn.build("./pkg/ledger/", "./signer/", "./crlgen/", "./responder/")
	}); err != nil {
		return err
	}
	if err := r.section("signature ceilings and the HSM pool", func() (err error) {
		r.sig, err = measureSignatures(p)
		if err != nil {
			return fmt.Errorf("%w\nhint: make setup installs SoftHSM2", err)
		}
		return r.hsmPlot()
	}); err != nil {
		return err
	}
	r.section("ledger", func() error {
		r.ledger = rn.run(goTest{pkg: "./pkg/ledger/", bench: "^BenchmarkCommit$", benchtime: p.ledgerTime, count: p.count})
		return nil
	})
	r.section("signer", func() error {
		r.signer = rn.run(goTest{pkg: "./signer/", bench: "^BenchmarkIssue$", benchtime: p.signerTime, count: p.count,
			env: []string{"CERTMILL_SIGNER_BATCHES=" + joinInts(p.signerBatches)}})
		return nil
	})
	r.section("CRL generator", func() error {
		r.crlFull = rn.run(goTest{pkg: "./crlgen/", bench: "^BenchmarkFullCRL$", benchtime: "1x", count: p.count,
			env: []string{"CERTMILL_CRL_ENTRIES=" + joinInts(p.crlEntries)}})
		r.crlDelta = rn.run(goTest{pkg: "./crlgen/", bench: "^BenchmarkDeltaCRL$", benchtime: p.deltaTime, count: p.count})
		r.crlGet = rn.run(goTest{pkg: "./crlgen/", bench: "^BenchmarkConditionalGET$", benchtime: p.getTime, count: p.count})
		return nil
	})
	if err := r.section("OCSP responder and its store", func() error {
		for _, n := range p.ocspCerts {
			if rn.ctx.Err() != nil {
				return rn.ctx.Err()
			}
			log.Printf("bench: store ceiling, %d keys", n)
			sc, err := measureStore(n, p)
			if err != nil {
				return fmt.Errorf("store ceiling at %d keys: %w", n, err)
			}
			log.Printf("bench: store of %d keys (loaded in %s): present gets %.0f/s, absent gets %.0f/s, bloom tests %.0f/s",
				n, sc.load.Round(time.Millisecond), sc.present, sc.absent, sc.bf)
			r.store[n] = sc
			r.ocsp[n] = rn.run(goTest{pkg: "./responder/", bench: "^BenchmarkOCSP$", benchtime: strconv.Itoa(p.ocspRequests) + "x", count: p.count,
				env: []string{"CERTMILL_OCSP_CERTS=" + strconv.Itoa(n)}})
		}
		log.Printf("bench: the peer, openssl ocsp, over %d certificates", p.peerCerts)
		r.peer = rn.run(goTest{pkg: "./responder/", bench: "^BenchmarkOCSPOpenSSL$", benchtime: strconv.Itoa(p.peerRequests) + "x", count: p.count,
			env: []string{"CERTMILL_OCSP_CERTS=" + strconv.Itoa(p.peerCerts)}})
		r.never = rn.run(goTest{pkg: "./responder/", bench: "^BenchmarkNeverIssued$", benchtime: strconv.Itoa(p.neverIssued) + "x", count: 1,
			env: []string{"CERTMILL_OCSP_CERTS=" + strconv.Itoa(p.ocspCerts[0])}})
		return nil
	}); err != nil {
		return err
	}
	if p.freshness > 0 {
		r.section("revocation freshness", func() error {
			r.fresh = rn.run(goTest{pkg: "./responder/", bench: "^BenchmarkRevocationFreshness$", benchtime: "1x", count: p.freshness})
			return nil
		})
	}
	return nil
}

// section runs f and notes how long it took.
func (r *report) section(name string, f func() error) error {
	log.Printf("bench: -- %s", name)
	start := time.Now()
	err := f()
	r.sections = append(r.sections, timing{name, time.Since(start)})
	return err
}

type timing struct {
	name string
	took time.Duration
}

func joinInts(ns []int) string {
	var s []string
	for _, n := range ns {
		s = append(s, strconv.Itoa(n))
	}
	return strings.Join(s, ",")
}

// moduleRoot is the nearest folder above the working directory with a
// go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}
