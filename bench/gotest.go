package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A goTest is one run of a package's go test benchmarks: the packages'
// own benchmarks are the components, each next to the ceiling it measures
// in the same process.
type goTest struct {
	pkg       string   // "./signer/"
	bench     string   // -bench regexp
	benchtime string   // -benchtime
	count     int      // -count
	env       []string // extra environment, NAME=value
}

// command is the go test command that makes the same run by hand.
func (t goTest) command() string {
	var b strings.Builder
	for _, e := range t.env {
		b.WriteString(e + " ")
	}
	fmt.Fprintf(&b, "go test -run '^$' -bench '%s' -benchtime %s -count %d -timeout 60m %s", t.bench, t.benchtime, t.count, t.pkg)
	return b.String()
}

// A result is one benchmark line: its name without the -GOMAXPROCS
// suffix, its iterations and its values by unit ("ns/op", "certs/s").
type result struct {
	name  string
	iters int64
	vals  map[string]float64
}

// A run is what one goTest gave: every result line in order, the raw
// lines for the appendix, how long it took, and the error if it failed.
type run struct {
	test    goTest
	results []result
	raw     []string
	took    time.Duration
	err     error
}

// median is the median of unit over the results named name; ok is false
// if there are none.
func (r *run) median(name, unit string) (float64, bool) {
	var xs []float64
	for _, res := range r.results {
		if v, ok := res.vals[unit]; ok && res.name == name {
			xs = append(xs, v)
		}
	}
	if len(xs) == 0 {
		return 0, false
	}
	return medianOf(xs), true
}

// n is how many results name has.
func (r *run) n(name string) int {
	k := 0
	for _, res := range r.results {
		if res.name == name {
			k++
		}
	}
	return k
}

func medianOf(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// parseLine reads one line of go test -bench output in the standard
// benchmark format (golang.org/x/perf/benchfmt reads the same):
//
//	BenchmarkOCSP/static-2   300000   13422 ns/op   0.8250 p50-ms   74502 req/s
//
// ok is false for every other line.
func parseLine(line string) (result, bool) {
	f := strings.Fields(line)
	if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
		return result{}, false
	}
	iters, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return result{}, false
	}
	res := result{name: trimProcs(f[0]), iters: iters, vals: map[string]float64{}}
	for i := 2; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return result{}, false
		}
		res.vals[f[i+1]] = v
	}
	return res, true
}

// trimProcs drops the -GOMAXPROCS suffix the testing package appends.
func trimProcs(name string) string {
	i := strings.LastIndexByte(name, '-')
	if i < 0 {
		return name
	}
	if _, err := strconv.Atoi(name[i+1:]); err != nil {
		return name
	}
	return name[:i]
}

// parse reads a whole go test -v output: the result lines, and as raw
// lines those and the failures and logs worth keeping.
func parse(r io.Reader, echo io.Writer) (results []result, raw []string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if res, ok := parseLine(line); ok {
			results = append(results, res)
			raw = append(raw, line)
			fmt.Fprintln(echo, "  "+line)
			continue
		}
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "--- FAIL") || strings.HasPrefix(t, "FAIL") || strings.HasPrefix(t, "panic:") ||
			strings.Contains(line, "_test.go:") {
			raw = append(raw, line)
			fmt.Fprintln(echo, "  "+line)
		}
	}
	return results, raw
}

// runner builds each package's test binary once and runs it in the
// package's folder, with a temporary folder of its own per run.
type runner struct {
	ctx  context.Context // cancelled: kill the running test binary, run no more
	root string          // module root
	tmp  string          // removed at the end
	bins map[string]string
	logs io.Writer // the full output of every run
}

// build compiles the test binaries of pkgs in one go command, so that
// they compile and link in parallel.
func (r *runner) build(pkgs ...string) error {
	dir := filepath.Join(r.tmp, "bin")
	cmd := exec.CommandContext(r.ctx, "go", append([]string{"test", "-c", "-o", dir + "/"}, pkgs...)...)
	cmd.Dir = r.root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go test -c: %v\n%s", err, out)
	}
	for _, p := range pkgs {
		// go test -c -o dir/ names each binary after its package.
		bin := filepath.Join(dir, filepath.Base(strings.TrimSuffix(p, "/"))+".test")
		if _, err := os.Stat(bin); err != nil {
			return fmt.Errorf("go test -c %s: %w", p, err)
		}
		r.bins[p] = bin
	}
	return nil
}

// run runs t. A failed run keeps the results it printed before failing.
func (r *runner) run(t goTest) *run {
	out := &run{test: t}
	bin, ok := r.bins[t.pkg]
	if !ok {
		out.err = fmt.Errorf("%s was not built", t.pkg)
		return out
	}
	tmp, err := os.MkdirTemp(r.tmp, "run-")
	if err != nil {
		out.err = err
		return out
	}
	defer os.RemoveAll(tmp)
	if err := r.ctx.Err(); err != nil {
		out.err = fmt.Errorf("%s: not run: %w", t.command(), err)
		return out
	}
	cmd := exec.CommandContext(r.ctx, bin, "-test.run", "^$", "-test.bench", t.bench, "-test.benchtime", t.benchtime,
		"-test.count", strconv.Itoa(t.count), "-test.timeout", "60m", "-test.v")
	cmd.Dir = filepath.Join(r.root, t.pkg)
	cmd.Env = childEnv(tmp, t.env)
	var buf bytes.Buffer
	cmd.Stdout = io.MultiWriter(&buf, r.logs)
	cmd.Stderr = cmd.Stdout
	log.Printf("bench: %s", t.command())
	start := time.Now()
	err = cmd.Run()
	out.took = time.Since(start)
	out.results, out.raw = parse(&buf, os.Stderr)
	if err != nil {
		out.err = fmt.Errorf("%s: %v", t.command(), err)
		log.Printf("bench: FAILED after %s: %v", out.took.Round(time.Second), err)
	}
	return out
}

// childEnv is this process's environment for a test binary: its own
// TMPDIR, and no SOFTHSM2_CONF, since its tests make their own tokens.
func childEnv(tmp string, extra []string) []string {
	var env []string
	for _, e := range os.Environ() {
		if strings.HasPrefix(e, "SOFTHSM2_CONF=") || strings.HasPrefix(e, "TMPDIR=") {
			continue
		}
		env = append(env, e)
	}
	env = append(env, "TMPDIR="+tmp)
	return append(env, extra...)
}
