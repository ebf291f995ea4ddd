package main

import (
	"io"
	"strings"
	"testing"
)

func TestParseLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, line string
		ok         bool
		want       result
	}{
		{"metrics", "BenchmarkOCSP/responder/certs=200000-2         \t  300000\t     39615 ns/op\t         2.403 p50-ms\t     25243 req/s", true,
			result{name: "BenchmarkOCSP/responder/certs=200000", iters: 300000, vals: map[string]float64{"ns/op": 39615, "p50-ms": 2.403, "req/s": 25243}}},
		{"no procs suffix", "BenchmarkIssue/floor 5000 257266 ns/op", true,
			result{name: "BenchmarkIssue/floor", iters: 5000, vals: map[string]float64{"ns/op": 257266}}},
		{"name ends in a number", "BenchmarkCommit/jetstream/certs=999-2 12 219035362 ns/op", true,
			result{name: "BenchmarkCommit/jetstream/certs=999", iters: 12, vals: map[string]float64{"ns/op": 219035362}}},
		{"name line of -v", "BenchmarkOCSP/static", false, result{}},
		{"failure", "BenchmarkRevocationFreshness-2   \t--- FAIL: BenchmarkRevocationFreshness", false, result{}},
		{"odd fields", "BenchmarkX-2 10 5 ns/op 7", false, result{}},
		{"log", "    bench_test.go:117: population 100000 loaded", false, result{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, ok := parseLine(tc.line)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			if got.name != tc.want.name || got.iters != tc.want.iters || len(got.vals) != len(tc.want.vals) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			for k, v := range tc.want.vals {
				if got.vals[k] != v {
					t.Errorf("%s = %v, want %v", k, got.vals[k], v)
				}
			}
		})
	}
}

func TestMedian(t *testing.T) {
	t.Parallel()
	out := "BenchmarkA-2 1 10 x/s\nBenchmarkB-2 1 99 x/s\nBenchmarkA-2 1 30 x/s\nBenchmarkA-2 1 20 x/s\nBenchmarkC-2 1 1 x/s\nBenchmarkC-2 1 3 x/s\n"
	res, raw := parse(strings.NewReader(out), io.Discard)
	r := &run{results: res, raw: raw}
	if v, ok := r.median("BenchmarkA", "x/s"); !ok || v != 20 {
		t.Errorf("median A = %v %v, want 20", v, ok)
	}
	if v, ok := r.median("BenchmarkC", "x/s"); !ok || v != 2 {
		t.Errorf("median C = %v %v, want 2 (mean of the middle two)", v, ok)
	}
	if _, ok := r.median("BenchmarkA", "ns/op"); ok {
		t.Error("a unit no line has has a median")
	}
	if len(raw) != 6 {
		t.Errorf("%d raw lines, want 6", len(raw))
	}
}

func TestShort(t *testing.T) {
	t.Parallel()
	for v, want := range map[float64]string{1: "1", 1500: "1.5k", 20000: "20k", 1e6: "1M", 2.5e6: "2.5M", 10e6: "10M", 0.25: "0.25"} {
		if got := short(v); got != want {
			t.Errorf("short(%v) = %q, want %q", v, got, want)
		}
	}
}
