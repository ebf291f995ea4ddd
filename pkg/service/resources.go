package service

import (
	"context"
	"log/slog"

	"github.com/certmill/certmill/pkg/hsm"
	"github.com/certmill/certmill/pkg/ledger"
)

// Resources are the HSM and the ledger a service works with. Shared ones
// (certmill-dev, tests) are used as they are; the others are opened from
// the configuration and closed by Close.
type Resources struct {
	HSM     *hsm.HSM
	Ledger  *ledger.Ledger
	closers []func()
}

// Open fills in what is not shared.
func Open(ctx context.Context, hc hsm.Config, lc ledger.Config, sharedHSM *hsm.HSM, sharedLedger *ledger.Ledger, log *slog.Logger) (*Resources, error) {
	r := &Resources{HSM: sharedHSM, Ledger: sharedLedger}
	var err error
	if r.HSM == nil {
		if r.HSM, err = hsm.Open(hc, log); err != nil {
			return nil, err
		}
		h := r.HSM
		r.closers = append(r.closers, func() { h.Close() })
	}
	if r.Ledger == nil {
		if r.Ledger, err = ledger.Open(ctx, lc, log); err != nil {
			r.Close()
			return nil, err
		}
		r.closers = append(r.closers, r.Ledger.Close)
	}
	return r, nil
}

// Close closes what Open opened, in reverse order.
func (r *Resources) Close() {
	for i := len(r.closers) - 1; i >= 0; i-- {
		r.closers[i]()
	}
	r.closers = nil
}

// Owned is what a service opened, closed in reverse order by Close.
type Owned []func()

// Add records a closer.
func (o *Owned) Add(close func()) { *o = append(*o, close) }

// Close runs the closers, last added first, once.
func (o *Owned) Close() {
	for i := len(*o) - 1; i >= 0; i-- {
		(*o)[i]()
	}
	*o = nil
}
