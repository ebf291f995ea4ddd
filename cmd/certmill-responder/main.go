// Command certmill-responder runs the OCSP responder (package responder).
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "certmill-responder: not built yet (issue 6)")
	fmt.Fprintln(os.Stderr, "hint: make demo runs what exists today: the root ceremony")
	os.Exit(2)
}
