// Command bench measures certmill's components next to their ceilings in
// one run and writes a Markdown report with PNG plots.
//
//	go run ./bench -profile quick -out bench/out      # CI-sized, about a minute
//	go run ./bench -profile full  -out docs/bench     # the committed report
//
// Every figure is the median of -runs runs; every component is reported as
// a ratio of a ceiling measured in the same run on the same machine.
package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certmill/certmill/pkg/hsm"
	"github.com/certmill/certmill/pkg/secret"
	"github.com/certmill/certmill/pkg/softhsm"
)

type profile struct {
	dur        time.Duration
	runs       int
	pools      []int
	goroutines []int
}

var profiles = map[string]profile{
	"quick": {dur: 300 * time.Millisecond, runs: 3, pools: []int{1, 2, 4, 8}, goroutines: []int{1, 2, 4, 8, 16}},
	"full":  {dur: 2 * time.Second, runs: 5, pools: []int{1, 2, 4, 8}, goroutines: []int{1, 2, 3, 4, 6, 8, 12, 16}},
}

func main() {
	prof := flag.String("profile", "quick", "quick (CI) or full")
	out := flag.String("out", "bench/out", "folder for report.md and the plots")
	flag.Parse()
	p, ok := profiles[*prof]
	if !ok {
		log.Fatalf("bench: unknown profile %q (quick or full)", *prof)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	r := &report{profile: *prof, p: p, out: *out}
	if err := r.hsmPool(); err != nil {
		log.Fatalf("bench: %v\nhint: make setup installs SoftHSM2", err)
	}
	if err := r.write(); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("bench: report in %s\n", filepath.Join(*out, "report.md"))
}

// rate signs for d across g goroutines and returns signatures per second.
func rate(s crypto.Signer, g int, d time.Duration) (float64, error) {
	digest := sha256.Sum256([]byte("certmill bench"))
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
				if _, err := s.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
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
	slices.Sort(xs)
	return xs[len(xs)/2], nil
}

type series struct {
	name string
	x    []int
	y    []float64
}

type report struct {
	profile string
	p       profile
	out     string
	hsm     []series
	rawBest float64
	hsmBest float64
	bestAt  string
}

func (r *report) hsmPool() error {
	dir, err := os.MkdirTemp("", "certmill-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if _, err := softhsm.Use(dir); err != nil {
		return err
	}
	raw, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s := series{name: "Go crypto/ecdsa P-256 (ceiling)"}
	for _, g := range r.p.goroutines {
		v, err := median(r.p.runs, func() (float64, error) { return rate(raw, g, r.p.dur) })
		if err != nil {
			return err
		}
		s.x, s.y = append(s.x, g), append(s.y, v)
		r.rawBest = max(r.rawBest, v)
		log.Printf("go p256 g=%d: %.0f sig/s", g, v)
	}
	r.hsm = append(r.hsm, s)

	pin := secret.New([]byte("bench-pin"))
	module := hsm.FindSoftHSM2()
	if err := hsm.InitToken(module, "bench", secret.New([]byte("bench-so")), pin); err != nil {
		return err
	}
	for i, pool := range r.p.pools {
		h, err := hsm.OpenPIN(hsm.Config{Module: module, Token: "bench", Sessions: pool, SessionWait: 10 * time.Second}, pin, nil)
		if err != nil {
			return err
		}
		var k *hsm.Key
		if i == 0 {
			k, err = h.GenerateKey("bench-p256", hsm.ECDSAP256)
		} else {
			k, err = h.Key("bench-p256")
		}
		if err != nil {
			return err
		}
		s := series{name: fmt.Sprintf("SoftHSM2, pool of %d", pool)}
		for _, g := range r.p.goroutines {
			v, err := median(r.p.runs, func() (float64, error) { return rate(k, g, r.p.dur) })
			if err != nil {
				return err
			}
			s.x, s.y = append(s.x, g), append(s.y, v)
			if v > r.hsmBest {
				r.hsmBest, r.bestAt = v, fmt.Sprintf("pool %d, %d goroutines", pool, g)
			}
			log.Printf("softhsm pool=%d g=%d: %.0f sig/s", pool, g, v)
		}
		r.hsm = append(r.hsm, s)
		h.Close()
	}
	return plotLines(filepath.Join(r.out, "hsm-pool.png"), "P-256 signatures through the PKCS#11 session pool",
		"goroutines signing at once", "signatures/s", r.hsm)
}

func (r *report) write() error {
	var b strings.Builder
	commit, _ := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	cpu := cpuModel()
	fmt.Fprintf(&b, "# certmill benchmark report\n\n")
	fmt.Fprintf(&b, "Profile `%s`: median of %d runs of %s each. Commit `%s`, %s, %d cores, %s, %s.\n\n",
		r.profile, r.p.runs, r.p.dur, strings.TrimSpace(string(commit)), cpu, runtime.NumCPU(), runtime.Version(), time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "Made again with `go run ./bench -profile %s -out %s`.\n\n", r.profile, r.out)
	fmt.Fprintf(&b, "## Headline\n\n| component | measured | ceiling | ratio |\n|---|---:|---:|---:|\n")
	fmt.Fprintf(&b, "| HSM P-256 signatures/s (best: %s) | %.0f | %.0f (Go P-256, same cores) | %.2f |\n\n", r.bestAt, r.hsmBest, r.rawBest, r.hsmBest/r.rawBest)
	fmt.Fprintf(&b, "## HSM session pool\n\n![signatures per second against goroutines](hsm-pool.png)\n\n")
	fmt.Fprintf(&b, "| series |")
	for _, g := range r.p.goroutines {
		fmt.Fprintf(&b, " g=%d |", g)
	}
	fmt.Fprintf(&b, "\n|---|%s\n", strings.Repeat("---:|", len(r.p.goroutines)))
	for _, s := range r.hsm {
		fmt.Fprintf(&b, "| %s |", s.name)
		for _, v := range s.y {
			fmt.Fprintf(&b, " %.0f |", v)
		}
		fmt.Fprintln(&b)
	}
	return os.WriteFile(filepath.Join(r.out, "report.md"), []byte(b.String()), 0o644)
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
