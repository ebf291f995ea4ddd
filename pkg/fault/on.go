//go:build faults

package fault

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Enabled reports whether this build can inject faults.
const Enabled = true

var points = parse(os.Getenv("CERTMILL_FAULTS"))

func parse(s string) map[string]float64 {
	m := map[string]float64{}
	for _, f := range strings.Split(s, ",") {
		name, p, ok := strings.Cut(strings.TrimSpace(f), "=")
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(p, 64); err == nil && v > 0 {
			m[name] = v
		}
	}
	return m
}

// Point kills the process with the probability CERTMILL_FAULTS gives name.
func Point(name string) {
	p, ok := points[name]
	if !ok || rand.Float64() >= p {
		return
	}
	fmt.Fprintf(os.Stderr, "fault: %s\n", name) // os.Stderr is unbuffered
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the signal is on its way
}
