// Command certmill is the client manufacturers run: submit CSRs, revoke,
// look up. It needs no PKCS#11 and no NATS.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "certmill: not built yet (issue 5)")
	os.Exit(2)
}
