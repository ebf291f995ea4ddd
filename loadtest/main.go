// Command loadtest runs k6-style scenarios, written as YAML, against
// certmill's services with vegeta's library: open-loop arrival rates in
// stages, scenarios one after the other or at the same time (a parallel
// group, as k6 runs its scenarios), thresholds as k6 users write them
// (p99 below X, error rate below Y, revoked within Z), and checks on the
// answers themselves: an OCSP status must match what the ledger says, a
// batch must give each CSR a certificate for its own key, a revocation
// must show in OCSP in time and never turn back to good.
//
//	go run ./loadtest -scenarios loadtest/scenarios/ci.yaml -out loadtest/out
//
// It prints a summary table, writes summary.md, summary.json and
// plot.png (latency and rate per second) into a folder of its own under
// -out, and exits 1 when a threshold fails, 2 when it could not run.
// Load goes only to loopback addresses, and every run is bounded in time
// and in the number of requests.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	path := flag.String("scenarios", "loadtest/scenarios/ci.yaml", "scenario file (YAML)")
	out := flag.String("out", "loadtest/out", "folder for each run's report (a folder per run)")
	flag.Parse()
	f, err := Load(*path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadtest: %v\n", err)
		os.Exit(2)
	}
	res, err := Run(f)
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadtest: %v\nhint: start the services first (bin/certmill-dev serve -dir demo)\n", err)
		os.Exit(2)
	}
	PrintTable(os.Stdout, res.Reports)
	dir := filepath.Join(*out, res.RunID+"-"+strings.TrimSuffix(filepath.Base(*path), filepath.Ext(*path)))
	if err := WriteReport(dir, *path, res); err != nil {
		fmt.Fprintf(os.Stderr, "loadtest: report: %v\n", err)
		os.Exit(2)
	}
	fmt.Printf("loadtest: report in %s (summary.md, plot.png)\n", dir)
	if !res.Passed() {
		fmt.Fprintln(os.Stderr, "loadtest: a threshold failed")
		os.Exit(1)
	}
}
