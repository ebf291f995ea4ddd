// Package fault lets the fault suite (make chaos) kill a process at a named
// point of its work, such as between the HSM signature and the ledger's
// acknowledgement. Built without the "faults" tag, as every shipped binary
// is, Point does nothing and compiles away.
//
// With the tag, CERTMILL_FAULTS lists points and their probability:
//
//	CERTMILL_FAULTS=signer.after-sign=0.05,signer.after-ack=0.05
//
// At a chosen point the process writes "fault: <name>" on stderr, so that
// the suite can count what it injected, and sends itself SIGKILL: no
// deferred function, no flush, no graceful anything.
package fault
