// Command certmill-dev runs every service on embedded defaults: JetStream
// in-process, a SoftHSM2 token in its folder, the services on loopback.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "certmill-dev: not built yet (issue 9)")
	os.Exit(2)
}
