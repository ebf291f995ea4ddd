//go:build !faults

package fault

// Point does nothing in a build without the "faults" tag.
func Point(string) {}

// Enabled reports whether this build can inject faults.
const Enabled = false
