// Command loadtest runs k6-style scenarios, written as YAML, against
// certmill's services with vegeta's library: open-loop arrival rates in
// stages, thresholds as k6 users write them (p99 below X, error rate
// below Y), and checks on the answers themselves (an OCSP status must
// match what the signer's API says of the certificate, not just 200 OK).
// It prints a summary table and exits 1 when a threshold fails.
//
//	go run ./loadtest -scenarios loadtest/scenarios/ci.yaml
//
// Load goes only to loopback addresses, and every run is bounded in time.
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	path := flag.String("scenarios", "loadtest/scenarios/ci.yaml", "scenario file (YAML)")
	flag.Parse()
	f, err := Load(*path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadtest: %v\n", err)
		os.Exit(2)
	}
	reports, err := Run(f)
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadtest: %v\nhint: start the services first (bin/certmill-dev serve -dir demo)\n", err)
		os.Exit(2)
	}
	PrintTable(os.Stdout, reports)
	for _, r := range reports {
		if !r.Passed {
			fmt.Fprintln(os.Stderr, "loadtest: a threshold failed")
			os.Exit(1)
		}
	}
}
