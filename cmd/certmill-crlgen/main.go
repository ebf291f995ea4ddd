// Command certmill-crlgen runs the CRL generator and CDN origin (package crlgen).
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "certmill-crlgen: not built yet (issue 7)")
	fmt.Fprintln(os.Stderr, "hint: make demo runs what exists today: the root ceremony")
	os.Exit(2)
}
