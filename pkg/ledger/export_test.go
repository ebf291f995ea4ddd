package ledger

import "context"

// HoldsAfter is holdsAfter, for the tests.
func (l *Ledger) HoldsAfter(ctx context.Context, seq uint64) (bool, error) {
	return l.holdsAfter(ctx, seq)
}
