// Command certmill-signer runs the batch signing service (package signer).
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "certmill-signer: not built yet (issue 5)")
	fmt.Fprintln(os.Stderr, "hint: make demo runs what exists today: the root ceremony")
	os.Exit(2)
}
