package main

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// report is everything one run measured.
type report struct {
	profile  string
	p        profile
	out      string
	started  time.Time
	took     time.Duration
	sections []timing
	env      env

	sig                       *sigCeilings
	ledger, signer            *run
	crlFull, crlDelta, crlGet *run
	ocsp                      map[int]*run // by store size
	store                     map[int]*storeCeiling
	fresh                     *run
	peer, never               *run // openssl ocsp; never-issued serials
}

// env says where and on what the run was made.
type env struct {
	commit, cpu, mem, kernel, softhsm string
	modules                           map[string]string
}

func environment(root string) env {
	e := env{cpu: cpuModel(), modules: map[string]string{}}
	git := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = root
		out, err := cmd.Output()
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(out))
	}
	e.commit = git("rev-parse", "--short", "HEAD")
	if e.commit == "" {
		e.commit = "unknown (not a git checkout)"
	} else if git("status", "--porcelain", "--untracked-files=no") != "" {
		e.commit += " with uncommitted changes"
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
				e.mem = fmt.Sprintf("%.0f GiB RAM", kb/(1<<20))
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		e.kernel = "Linux " + strings.TrimSpace(string(b))
	}
	if out, err := exec.Command("softhsm2-util", "--version").Output(); err == nil {
		e.softhsm = strings.TrimSpace(string(out))
	}
	if b, err := os.ReadFile(filepath.Join(root, "go.mod")); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			for _, m := range []string{"github.com/nats-io/nats-server/v2", "github.com/cockroachdb/pebble/v2", "github.com/valyala/fasthttp", "github.com/zmap/zlint/v3"} {
				if len(f) >= 2 && f[0] == m {
					e.modules[m] = f[1]
				}
			}
		}
	}
	return e
}

// hsmPlot draws the session pool against Go's P-256.
func (r *report) hsmPlot() error {
	return plotLines(filepath.Join(r.out, "hsm-pool.png"), chart{
		title: "P-256 signatures through the PKCS#11 session pool (SoftHSM2) vs Go's P-256", xlabel: "goroutines signing at once",
		ylabel: "signatures/s", logX: true, xticks: ints(r.p.goroutines)}, r.sig.p256)
}

func goroutines(n int) string {
	if n == 1 {
		return "1 goroutine"
	}
	return strconv.Itoa(n) + " goroutines"
}

func ints(ns []int) []float64 {
	var xs []float64
	for _, n := range ns {
		xs = append(xs, float64(n))
	}
	return xs
}

// sizes lists the n of the results named prefix+n, in order.
func sizes(r *run, prefix string) []int {
	if r == nil {
		return nil
	}
	var ns []int
	for _, res := range r.results {
		if v, ok := strings.CutPrefix(res.name, prefix); ok {
			if n, err := strconv.Atoi(v); err == nil && !slices.Contains(ns, n) {
				ns = append(ns, n)
			}
		}
	}
	slices.Sort(ns)
	return ns
}

// med is r.median, or false when r is missing.
func med(r *run, name, unit string) (float64, bool) {
	if r == nil {
		return 0, false
	}
	return r.median(name, unit)
}

// failures lists what did not run to the end.
func (r *report) failures() []string {
	var out []string
	for _, rn := range r.runs() {
		if rn.err != nil {
			out = append(out, rn.err.Error())
		}
	}
	return out
}

func (r *report) runs() []*run {
	rs := []*run{r.ledger, r.signer, r.crlFull, r.crlDelta, r.crlGet}
	for _, n := range r.p.ocspCerts {
		rs = append(rs, r.ocsp[n])
	}
	rs = append(rs, r.peer, r.never, r.fresh)
	var out []*run
	for _, rn := range rs {
		if rn != nil {
			out = append(out, rn)
		}
	}
	return out
}

// f0 formats a rate; f2 a ratio; na stands in for a missing figure.
func f0(v float64) string { return groupThousands(strconv.FormatFloat(v, 'f', 0, 64)) }
func f2(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }

const na = "— (failed, see below)"

func groupThousands(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func seconds(ns float64) string {
	d := time.Duration(ns)
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	default:
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	}
}

func (r *report) write() error {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	plots := r.plots()

	w("# certmill benchmark report\n\n")
	w("Made by `go run ./bench -profile %s -out %s`", r.profile, r.out)
	if r.profile == "full" {
		w(" (`make bench`)")
	}
	w(" in %s, starting %s.\n\n", r.took.Round(time.Second), r.started.UTC().Format("2006-01-02 15:04 MST"))
	w("| | |\n|---|---|\n")
	w("| commit | `%s` |\n", r.env.commit)
	w("| machine | %s, %d cores, %s, %s |\n", r.env.cpu, runtime.NumCPU(), r.env.mem, r.env.kernel)
	w("| Go | %s %s/%s |\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	w("| HSM | SoftHSM2 %s through pkg/hsm (PKCS#11, crypto11) |\n", r.env.softhsm)
	var mods []string
	for _, m := range slices.Sorted(maps.Keys(r.env.modules)) {
		mods = append(mods, m+" "+r.env.modules[m])
	}
	w("| modules | %s |\n", strings.Join(mods, ", "))
	w("| profile | `%s`: benchmarks with -count %d, ceilings the median of %d runs |\n\n", r.profile, r.p.count, r.p.runs)
	w("Every figure below comes from this one run: each component is measured next to its ceiling in the same sitting ")
	w("(in the same process for the `go test` benchmarks), and each is the median of its runs. ")
	w("The machine may be shared: read the ratios rather than the absolute figures.\n\n")

	r.headline(w)
	r.ceilings(w)
	r.hsmSection(w)
	r.ledgerSection(w)
	r.signerSection(w, plots)
	r.ocspSection(w, plots)
	r.crlSection(w, plots)

	w("## Time taken\n\n| part | took |\n|---|---:|\n")
	for _, s := range r.sections {
		w("| %s | %s |\n", s.name, s.took.Round(time.Second))
	}
	w("| **total** | **%s** |\n\n", r.took.Round(time.Second))

	if fails := r.failures(); len(fails) > 0 || len(plots.errs) > 0 {
		w("## What failed\n\n")
		for _, f := range fails {
			w("- `%s`\n", strings.ReplaceAll(f, "`", "'"))
		}
		for _, e := range plots.errs {
			w("- %s\n", e)
		}
		w("\nThe raw lines in the appendix show what each failed run printed.\n\n")
	}

	w("## Appendix: raw benchmark lines\n\n")
	w("Each component run as `go test` would make it by hand (bench builds each test binary once with `go test -c` ")
	w("and runs it with `-test.v` in the package folder; the full output is in bench.log next to this report when made locally).\n\n")
	for _, rn := range r.runs() {
		w("`%s` (%s)\n\n```\n", rn.test.command(), rn.took.Round(time.Second))
		for _, l := range rn.raw {
			w("%s\n", l)
		}
		w("```\n\n")
	}
	return os.WriteFile(filepath.Join(r.out, "report.md"), []byte(b.String()), 0o644)
}

type writer func(format string, a ...any)

func (r *report) headline(w writer) {
	w("## Headline\n\n")
	w("Ratio = the component's throughput ÷ its ceiling's (for the full CRL, Go's time ÷ ours), measured in the same run; 1.00 would be the ceiling itself.\n\n")
	w("| component | measured | ceiling (same run) | ratio |\n|---|---:|---|---:|\n")
	row := func(name, unit string, v float64, okv bool, ceiling string, c float64, okc bool) {
		m, cs, ratio := na, na, "—"
		if okv {
			m = f0(v) + " " + unit
		}
		if okc {
			cs = f0(c) + " " + unit + " " + ceiling
		}
		if okv && okc && c > 0 {
			ratio = f2(v / c)
		}
		w("| %s | %s | %s | %s |\n", name, m, cs, ratio)
	}
	goBest, _ := r.sig.p256[0].best()
	row(fmt.Sprintf("HSM P-256 signatures (SoftHSM2 pool, best at %s)", r.sig.bestAt), "sig/s", r.sig.hsmBest, true, "Go crypto/ecdsa P-256, best", goBest, true)

	if ns := sizes(r.ledger, "BenchmarkCommit/jetstream/certs="); len(ns) > 0 {
		n := ns[len(ns)-1]
		v, okv := med(r.ledger, fmt.Sprintf("BenchmarkCommit/jetstream/certs=%d", n), "certs/s")
		c, okc := med(r.ledger, fmt.Sprintf("BenchmarkCommit/pebble-sync/certs=%d", n), "certs/s")
		row(fmt.Sprintf("ledger: acknowledged certificates, %d per atomic batch (JetStream, sync always)", n), "certs/s", v, okv, "Pebble, one synced batch", c, okc)
	} else {
		row("ledger: acknowledged certificates", "certs/s", 0, false, "", 0, false)
	}

	if ns := sizes(r.signer, "BenchmarkIssue/batch="); len(ns) > 0 {
		n := ns[len(ns)-1]
		v, okv := med(r.signer, fmt.Sprintf("BenchmarkIssue/batch=%d", n), "certs/s")
		c, okc := med(r.signer, "BenchmarkIssue/floor", "certs/s")
		row(fmt.Sprintf("signer: end to end, batches of %d", n), "certs/s", v, okv, "crypto floor (CSR check, HSM signature, re-check)", c, okc)
	} else {
		row("signer: end to end", "certs/s", 0, false, "", 0, false)
	}

	if n := slices.Max(r.p.ocspCerts); r.ocsp[n] != nil {
		v, okv := med(r.ocsp[n], fmt.Sprintf("BenchmarkOCSP/responder/certs=%d", n), "req/s")
		c, okc := med(r.ocsp[n], "BenchmarkOCSP/static", "req/s")
		row(fmt.Sprintf("OCSP responder, %s certificates in the store", short(float64(n))), "req/s", v, okv, "static fasthttp answer", c, okc)
	}

	v, okv := med(r.crlGet, "BenchmarkConditionalGET/origin", "req/s")
	c, okc := med(r.crlGet, "BenchmarkConditionalGET/static", "req/s")
	row("CRL origin: conditional GET answered 304", "req/s", v, okv, "static fasthttp 304", c, okc)

	if ns := sizes(r.crlFull, "BenchmarkFullCRL/crlgen/entries="); len(ns) > 0 {
		n := ns[len(ns)-1]
		ours, okv := med(r.crlFull, fmt.Sprintf("BenchmarkFullCRL/crlgen/entries=%d", n), "ns/op")
		goT, okc := med(r.crlFull, fmt.Sprintf("BenchmarkFullCRL/go-createrevocationlist/entries=%d", n), "ns/op")
		m, cs, ratio := na, na, "—"
		if okv {
			m = seconds(ours)
		}
		if okc {
			cs = seconds(goT) + " Go x509.CreateRevocationList, in-memory key"
		}
		if okv && okc && ours > 0 {
			ratio = f2(goT / ours)
		}
		w("| full CRL of %s entries, from the store, signed in the HSM | %s | %s | %s |\n", short(float64(n)), m, cs, ratio)
	} else {
		w("| full CRL | %s | %s | — |\n", na, na)
	}
	w("\n")
}

func (r *report) ceilings(w writer) {
	w("## Ceilings\n\n")
	w("Measured by bench itself in this run, with as many goroutines as make them fastest (signatures) or one per core (store).\n\n")
	w("| ceiling | best | bounds |\n|---|---:|---|\n")
	for _, s := range append(slices.Clone(r.sig.p256[:1]), r.sig.rsa...) {
		v, at := s.best()
		w("| %s | %s sig/s (%s) | ", s.name, f0(v), goroutines(int(s.x[at])))
		switch {
		case strings.HasPrefix(s.name, "Go crypto/ecdsa"):
			w("the HSM pool, and every P-256 signature (certificates, OCSP answers, CRLs) |\n")
		case strings.HasPrefix(s.name, "Go crypto/rsa"):
			w("an RSA 2048 issuer in the HSM |\n")
		default:
			w("certificates of an RSA 2048 issuer |\n")
		}
	}
	w("| SoftHSM2 P-256 through the pool | %s sig/s (%s) | the signer's floor, OCSP answers not yet cached, CRL signing |\n", f0(r.sig.hsmBest), r.sig.bestAt)
	for _, n := range r.p.ocspCerts {
		sc := r.store[n]
		if sc == nil {
			continue
		}
		w("| Pebble get, present key (Zipf s = 1.1), store of %s | %s gets/s | an OCSP answer for an issued certificate not in the answer cache |\n", short(float64(n)), f0(sc.present))
		w("| Pebble get, absent key, store of %s | %s gets/s | a bloom false positive (%.2f %% of absent serials here) |\n", short(float64(n)), f0(sc.absent), 100*sc.bloomFP)
		w("| bloom filter test (80 %% present, 20 %% absent), %s serials | %s tests/s | an OCSP answer for a never-issued serial |\n", short(float64(n)), f0(sc.bf))
	}
	w("\n")
}

func (r *report) hsmSection(w writer) {
	w("## HSM session pool\n\n![P-256 signatures per second against goroutines](hsm-pool.png)\n\n")
	w("| series |")
	for _, g := range r.p.goroutines {
		w(" g=%d |", g)
	}
	w("\n|---|%s\n", strings.Repeat("---:|", len(r.p.goroutines)))
	for _, s := range append(slices.Clone(r.sig.p256), r.sig.rsa...) {
		w("| %s |", s.name)
		for _, v := range s.y {
			w(" %s |", f0(v))
		}
		w("\n")
	}
	w("\nSignatures per second, median of %d runs of %s per point.\n\n", r.p.runs, r.p.sigDur)
}

func (r *report) ledgerSection(w writer) {
	w("## Ledger\n\nAcknowledged certificates per second through the ledger (embedded nats-server, file storage, fsync on every write), ")
	w("one chunk of n certificates and its guard per atomic batch, next to Pebble writing the same encoded records in one synced batch.\n\n")
	w("| certificates per batch | JetStream | Pebble synced batch | ratio |\n|---:|---:|---:|---:|\n")
	for _, n := range sizes(r.ledger, "BenchmarkCommit/jetstream/certs=") {
		v, okv := med(r.ledger, fmt.Sprintf("BenchmarkCommit/jetstream/certs=%d", n), "certs/s")
		c, okc := med(r.ledger, fmt.Sprintf("BenchmarkCommit/pebble-sync/certs=%d", n), "certs/s")
		w("| %d | %s | %s | %s |\n", n, orNA(v, okv, f0), orNA(c, okc, f0), ratio(v, okv, c, okc))
	}
	w("\n")
}

func orNA(v float64, ok bool, f func(float64) string) string {
	if !ok {
		return "—"
	}
	return f(v)
}

func ratio(v float64, okv bool, c float64, okc bool) string {
	if !okv || !okc || c == 0 {
		return "—"
	}
	return f2(v / c)
}

func (r *report) signerSection(w writer, pl plotSet) {
	w("## Signer\n\nEnd to end over HTTP (CSR checks, lint, HSM signature, ledger acknowledgement, answer) against batch size, ")
	w("next to the crypto floor measured in the same benchmark on the same HSM pool (per certificate: the CSR's signature check, ")
	w("one HSM signature, the check of the result) and the lint alone.\n\n")
	if pl.signer {
		w("![signer certificates per second against batch size](signer-batch.png)\n\n")
	}
	floor, okf := med(r.signer, "BenchmarkIssue/floor", "certs/s")
	lint, okl := med(r.signer, "BenchmarkIssue/lint-only", "certs/s")
	w("Crypto floor: %s certs/s. Lint only: %s certs/s.\n\n", orNA(floor, okf, f0), orNA(lint, okl, f0))
	w("| batch | certs/s | of the floor | peak RSS (MiB) |\n|---:|---:|---:|---:|\n")
	for _, n := range sizes(r.signer, "BenchmarkIssue/batch=") {
		name := fmt.Sprintf("BenchmarkIssue/batch=%d", n)
		v, okv := med(r.signer, name, "certs/s")
		m, okm := med(r.signer, name, "peak-MiB")
		w("| %d | %s | %s | %s |\n", n, orNA(v, okv, f0), ratio(v, okv, floor, okf), orNA(m, okm, func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }))
	}
	for _, n := range sizes(r.signer, "BenchmarkIssue/lint-every-batch=") {
		name := fmt.Sprintf("BenchmarkIssue/lint-every-batch=%d", n)
		v, okv := med(r.signer, name, "certs/s")
		m, okm := med(r.signer, name, "peak-MiB")
		w("| %d, zlint on every certificate (lint: every) | %s | %s | %s |\n", n, orNA(v, okv, f0), ratio(v, okv, floor, okf), orNA(m, okm, func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }))
	}
	w("\nThe default device profile lints by shape (configs/issuers.yaml, `lint: shape`): zlint runs on a draft of the first ")
	w("certificate of each shape in a batch (pkg/lint.Shape), signed with a throwaway key, and the HSM signs only what it passed; ")
	w("the last row lints every certificate instead. ")
	w("Peak RSS is the whole benchmark process (signer, embedded ledger, client and the CSR pool): an upper bound for the signer.\n\n")
}

func (r *report) ocspSection(w writer, pl plotSet) {
	w("## OCSP responder\n\nRequests per second over 64 connections, Zipf-distributed serials (s = 1.1), 20 %% never issued, ")
	w("1 %% of the store revoked, after one warm-up pass over the 100,000 requests, next to a static fasthttp answer of the same size (the same body and RFC 5019 headers) ")
	w("on the same loopback in the same process; and the store's own ceilings at the same size, measured by bench just before ")
	w("on a store of its own with the responder's layout and options, loaded and then compacted (the best case for reads), ")
	w("one goroutine per core, no HTTP, no locks. Disk per certificate is the responder's store after loading and compaction; ")
	w("RSS per certificate is the benchmark process's resident memory after serving minus before loading, over the population ")
	w("(Pebble's 128 MiB block cache, the bloom filter and the signed answers it keeps, and the 100,000 prepared requests): ")
	w("an upper bound for the responder's own. The never-issued fifth of the requests repeats (a broken fleet asking again), ")
	w("so those answers come from the bounded unknown cache after the warm-up; the fresh column asks about a new never-issued ")
	w("serial every time (an attacker's flood), each answer signed at request time.\n\n")
	if pl.ocsp {
		w("![OCSP requests per second against store size](ocsp-store.png)\n\n")
	}
	w("| certificates | responder req/s | static req/s | ratio | fresh never-issued serials: req/s, ratio | responder disk, RSS per certificate | Pebble gets/s, present | absent | bloom tests/s | bench store: load and compaction, size |\n")
	w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, n := range r.p.ocspCerts {
		rn := r.ocsp[n]
		name := fmt.Sprintf("BenchmarkOCSP/responder/certs=%d", n)
		v, okv := med(rn, name, "req/s")
		c, okc := med(rn, "BenchmarkOCSP/static", "req/s")
		w("| %s | %s | %s | %s |", short(float64(n)), orNA(v, okv, f0), orNA(c, okc, f0), ratio(v, okv, c, okc))
		fv, okf := med(rn, fmt.Sprintf("BenchmarkOCSP/responder-fresh-unknown/certs=%d", n), "req/s")
		w(" %s, %s |", orNA(fv, okf, f0), ratio(fv, okf, c, okc))
		disk, okd := med(rn, name, "disk-B/cert")
		rss, okr := med(rn, name, "rss-B/cert")
		w(" %s B, %s B |", orNA(disk, okd, f0), orNA(rss, okr, f0))
		if sc := r.store[n]; sc != nil {
			w(" %s | %s | %s | %s, %.0f B/key |\n", f0(sc.present), f0(sc.absent), f0(sc.bf), sc.load.Round(10*time.Millisecond), sc.bytesPerKey)
		} else {
			w(" — | — | — | — |\n")
		}
	}
	w("\n### Latency\n\n")
	if pl.latency {
		w("![OCSP latency percentiles](ocsp-latency.png)\n\n")
	}
	w("| server | p50 ms | p90 ms | p99 ms | p99.9 ms |\n|---|---:|---:|---:|---:|\n")
	for _, n := range r.p.ocspCerts {
		for _, name := range []string{"BenchmarkOCSP/static", fmt.Sprintf("BenchmarkOCSP/responder/certs=%d", n)} {
			label := "static, next to " + short(float64(n))
			if strings.Contains(name, "responder") {
				label = "responder, " + short(float64(n))
			}
			w("| %s |", label)
			for _, u := range []string{"p50-ms", "p90-ms", "p99-ms", "p99.9-ms"} {
				v, ok := med(r.ocsp[n], name, u)
				w(" %s |", orNA(v, ok, func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }))
			}
			w("\n")
		}
	}
	w("\nLatency is measured by the client, with 64 requests in flight on 2 cores: it is mostly queueing.\n\n")
	w("### The peer: openssl ocsp\n\n")
	pn := fmt.Sprintf("BenchmarkOCSPOpenSSL/openssl/certs=%d", r.p.peerCerts)
	pv, okp := med(r.peer, pn, "req/s")
	pp99, okp99 := med(r.peer, pn, "p99-ms")
	ov, oko := med(r.ocsp[r.p.peerCerts], fmt.Sprintf("BenchmarkOCSP/responder/certs=%d", r.p.peerCerts), "req/s")
	w("`openssl ocsp` (OpenSSL's own responder, `-multi 2`: a process per core) over an index of %s certificates, 1 %% revoked, ", short(float64(r.p.peerCerts)))
	w("asked exactly as above (same Zipf draw, every fifth serial never issued, 64 connections, POST): %s req/s, p99 %s ms; ",
		orNA(pv, okp, f0), orNA(pp99, okp99, f2))
	w("certmill's responder over the same population: %s req/s, %s times the peer. openssl signs every answer and closes the connection after it.\n\n",
		orNA(ov, oko, f0), ratio(ov, oko, pv, okp))
	w("### Never good for a never-issued serial\n\n")
	gv, okg := med(r.never, "BenchmarkNeverIssued", "good")
	uv, oku := med(r.never, "BenchmarkNeverIssued", "unknown")
	av, oka := med(r.never, "BenchmarkNeverIssued", "answers/s")
	w("%s fresh random serials asked of the responder's answer path over a store of %s certificates: %s good, %s unknown (%s answers/s, each signed). ",
		short(float64(r.p.neverIssued)), short(float64(r.p.ocspCerts[0])), orNA(gv, okg, f0), orNA(uv, oku, f0), orNA(av, oka, f0))
	w("The benchmark fails on any good answer (invariant 4).\n\n")
	w("### Revocation freshness\n\n")
	if r.p.freshness == 0 {
		w("Not measured in the `%s` profile (1,000 revocations a run take several seconds): the full profile measures it.\n\n", r.profile)
		return
	}
	p50, ok50 := med(r.fresh, "BenchmarkRevocationFreshness", "p50-ms")
	p99, ok99 := med(r.fresh, "BenchmarkRevocationFreshness", "p99-ms")
	runs := 0
	if r.fresh != nil {
		runs = r.fresh.n("BenchmarkRevocationFreshness")
	}
	w("From calling the signer's revocation API to OCSP answering revoked, polled over HTTP, 1,000 revocations a run, %d of %d runs completed: ", runs, r.p.freshness)
	w("p50 %s ms, p99 %s ms (medians over the runs). Invariant 5 asks for under 1 s.\n\n",
		orNA(p50, ok50, f2), orNA(p99, ok99, f2))
}

func (r *report) crlSection(w writer, pl plotSet) {
	w("## CRL generator\n\nA full CRL built from the store and signed in the HSM, next to Go's x509.CreateRevocationList on the same entries with an in-memory key.\n\n")
	if pl.crl {
		w("![full CRL time against entries](crl-full.png)\n\n")
	}
	w("| entries | crlgen | Go CreateRevocationList | ratio (Go ÷ crlgen) | CRL MiB | crlgen peak heap MiB | Go peak heap MiB |\n")
	w("|---:|---:|---:|---:|---:|---:|---:|\n")
	mib := func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }
	for _, n := range sizes(r.crlFull, "BenchmarkFullCRL/crlgen/entries=") {
		ours, oko := med(r.crlFull, fmt.Sprintf("BenchmarkFullCRL/crlgen/entries=%d", n), "ns/op")
		goT, okg := med(r.crlFull, fmt.Sprintf("BenchmarkFullCRL/go-createrevocationlist/entries=%d", n), "ns/op")
		size, oks := med(r.crlFull, fmt.Sprintf("BenchmarkFullCRL/crlgen/entries=%d", n), "crl-MiB")
		h1, okh1 := med(r.crlFull, fmt.Sprintf("BenchmarkFullCRL/crlgen/entries=%d", n), "peak-heap-MiB")
		h2, okh2 := med(r.crlFull, fmt.Sprintf("BenchmarkFullCRL/go-createrevocationlist/entries=%d", n), "peak-heap-MiB")
		w("| %s | %s | %s | %s | %s | %s | %s |\n", short(float64(n)), orNA(ours, oko, seconds), orNA(goT, okg, seconds),
			ratio(goT, okg, ours, oko), orNA(size, oks, mib), orNA(h1, okh1, mib), orNA(h2, okh2, mib))
	}
	d, okd := med(r.crlDelta, "BenchmarkDeltaCRL/entries=1000", "ms/delta")
	w("\nA delta CRL of 1,000 entries over a full CRL of 100,000: %s ms.\n\n", orNA(d, okd, f2))
	v, okv := med(r.crlGet, "BenchmarkConditionalGET/origin", "req/s")
	c, okc := med(r.crlGet, "BenchmarkConditionalGET/static", "req/s")
	w("Conditional GETs answered 304 over 64 connections: the origin %s req/s, a static fasthttp 304 %s req/s (ratio %s).\n\n",
		orNA(v, okv, f0), orNA(c, okc, f0), ratio(v, okv, c, okc))
}

// plotSet says which plots were drawn.
type plotSet struct {
	signer, ocsp, latency, crl bool
	errs                       []string
}

func (r *report) plots() plotSet {
	var ps plotSet
	try := func(ok *bool, name string, err error) {
		if err != nil {
			ps.errs = append(ps.errs, fmt.Sprintf("plot %s: %v", name, err))
			return
		}
		*ok = true
	}

	// Signer: certs/s against batch size, floor and lint as lines.
	if ns := sizes(r.signer, "BenchmarkIssue/batch="); len(ns) > 0 {
		e2e := series{name: "signer, end to end over HTTP"}
		for _, n := range ns {
			if v, ok := med(r.signer, fmt.Sprintf("BenchmarkIssue/batch=%d", n), "certs/s"); ok {
				e2e.add(float64(n), v)
			}
		}
		ss := []series{}
		lo, hi := float64(ns[0]), float64(ns[len(ns)-1])
		if v, ok := med(r.signer, "BenchmarkIssue/floor", "certs/s"); ok {
			ss = append(ss, series{name: "crypto floor (same run)", x: []float64{lo, hi}, y: []float64{v, v}, dashed: true, flat: true})
		}
		if v, ok := med(r.signer, "BenchmarkIssue/lint-only", "certs/s"); ok {
			ss = append(ss, series{name: "lint alone (same run)", x: []float64{lo, hi}, y: []float64{v, v}, dashed: true, flat: true})
		}
		ss = append(ss, e2e)
		try(&ps.signer, "signer-batch.png", plotLines(filepath.Join(r.out, "signer-batch.png"), chart{
			title: "Signer: certificates per second against batch size", xlabel: "CSRs per batch", ylabel: "certificates/s",
			logX: true, xticks: ints(ns)}, ss))
	}

	// OCSP: req/s against store size, static next to it.
	resp := series{name: "responder"}
	static := series{name: "static fasthttp answer (ceiling)", dashed: true}
	var lat []bars
	cats := []string{"p50", "p90", "p99", "p99.9"}
	percentiles := func(rn *run, name, label string) {
		b := bars{name: label}
		for _, u := range []string{"p50-ms", "p90-ms", "p99-ms", "p99.9-ms"} {
			v, ok := med(rn, name, u)
			if !ok {
				return
			}
			b.values = append(b.values, v)
		}
		lat = append(lat, b)
	}
	// The static answer first, so that it takes the ceiling's colour: the
	// one measured next to the largest store.
	if n := slices.Max(r.p.ocspCerts); r.ocsp[n] != nil {
		percentiles(r.ocsp[n], "BenchmarkOCSP/static", "static answer (ceiling), same run as "+short(float64(n)))
	}
	for _, n := range r.p.ocspCerts {
		name := fmt.Sprintf("BenchmarkOCSP/responder/certs=%d", n)
		if v, ok := med(r.ocsp[n], name, "req/s"); ok {
			resp.add(float64(n), v)
		}
		if v, ok := med(r.ocsp[n], "BenchmarkOCSP/static", "req/s"); ok {
			static.add(float64(n), v)
		}
		percentiles(r.ocsp[n], name, "responder, "+short(float64(n))+" certificates")
	}
	if len(resp.x) > 0 || len(static.x) > 0 {
		try(&ps.ocsp, "ocsp-store.png", plotLines(filepath.Join(r.out, "ocsp-store.png"), chart{
			title: "OCSP responder: requests per second against store size", xlabel: "certificates in the store",
			ylabel: "requests/s (64 connections)", logX: true, xticks: ints(r.p.ocspCerts)}, []series{static, resp}))
	}
	if len(lat) > 0 {
		try(&ps.latency, "ocsp-latency.png", plotBars(filepath.Join(r.out, "ocsp-latency.png"),
			"OCSP latency percentiles (client side, 64 connections)", "milliseconds", cats, lat))
	}

	// CRL: time against entries.
	if ns := sizes(r.crlFull, "BenchmarkFullCRL/crlgen/entries="); len(ns) > 0 {
		ours := series{name: "crlgen: from the store, signed in SoftHSM2"}
		goS := series{name: "Go x509.CreateRevocationList, in-memory key", dashed: true}
		for _, n := range ns {
			if v, ok := med(r.crlFull, fmt.Sprintf("BenchmarkFullCRL/crlgen/entries=%d", n), "ns/op"); ok {
				ours.add(float64(n), v/1e9)
			}
			if v, ok := med(r.crlFull, fmt.Sprintf("BenchmarkFullCRL/go-createrevocationlist/entries=%d", n), "ns/op"); ok {
				goS.add(float64(n), v/1e9)
			}
		}
		try(&ps.crl, "crl-full.png", plotLines(filepath.Join(r.out, "crl-full.png"), chart{
			title: "Full CRL: time to build and sign against entries", xlabel: "revoked certificates in the CRL", ylabel: "seconds",
			logX: true, logY: true, xticks: ints(ns)}, []series{goS, ours}))
	}
	return ps
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}
