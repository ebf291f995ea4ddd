package hsm

import (
	"errors"
	"fmt"

	"github.com/miekg/pkcs11"

	"github.com/certmill/certmill/pkg/secret"
)

// withModule runs f on a raw handle to the PKCS#11 module at path. If the
// module is already initialised in this process (an open HSM), it is shared
// and left initialised; otherwise it is finalised afterwards.
func withModule(path string, f func(*pkcs11.Ctx) error) error {
	moduleMu.Lock()
	defer moduleMu.Unlock()
	p := pkcs11.New(path)
	if p == nil {
		return fmt.Errorf("%w: cannot load PKCS#11 module %s (hint: apt-get install softhsm2, or run make setup)", ErrUnavailable, path)
	}
	defer p.Destroy()
	err := p.Initialize()
	owned := err == nil
	if err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
		return fmt.Errorf("%w: initialise %s: %v", ErrUnavailable, path, err)
	}
	if owned {
		defer p.Finalize()
	}
	return f(p)
}

// findSlot returns the slot whose token has label, or with label "" the
// first slot with an uninitialised token (SoftHSM2 always keeps one free).
func findSlot(p *pkcs11.Ctx, label string) (uint, error) {
	slots, err := p.GetSlotList(true)
	if err != nil {
		return 0, fmt.Errorf("list slots: %w", err)
	}
	for _, s := range slots {
		ti, err := p.GetTokenInfo(s)
		if err != nil {
			continue
		}
		initialised := ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED != 0
		if label == "" && !initialised {
			return s, nil
		}
		if label != "" && initialised && ti.Label == label {
			return s, nil
		}
	}
	if label == "" {
		return 0, errors.New("no free slot for a new token")
	}
	return 0, fmt.Errorf("no token labelled %q", label)
}

// InitToken creates a token labelled label in the module's free slot, with
// the given security officer and user PINs. It refuses a label in use.
// This is what `softhsm2-util --init-token` does, without PINs on argv.
func InitToken(module, label string, soPIN, userPIN secret.Value) error {
	if len(label) > 32 {
		return fmt.Errorf("hsm: token label %q longer than 32 bytes", label)
	}
	return withModule(module, func(p *pkcs11.Ctx) error {
		if _, err := findSlot(p, label); err == nil {
			return fmt.Errorf("hsm: token %q exists already", label)
		}
		slot, err := findSlot(p, "")
		if err != nil {
			return fmt.Errorf("hsm: init token %q: %w", label, err)
		}
		if err := p.InitToken(slot, soPIN.Reveal(), label); err != nil {
			return fmt.Errorf("hsm: init token %q: %w", label, err)
		}
		// The token has a new slot id in SoftHSM2 once initialised.
		slot, err = findSlot(p, label)
		if err != nil {
			return fmt.Errorf("hsm: init token %q: %w", label, err)
		}
		sh, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
		if err != nil {
			return fmt.Errorf("hsm: init token %q: open session: %w", label, err)
		}
		defer p.CloseSession(sh)
		if err := p.Login(sh, pkcs11.CKU_SO, soPIN.Reveal()); err != nil {
			return fmt.Errorf("hsm: init token %q: security officer login: %w", label, err)
		}
		defer p.Logout(sh)
		if err := p.InitPIN(sh, userPIN.Reveal()); err != nil {
			return fmt.Errorf("hsm: init token %q: set user PIN: %w", label, err)
		}
		return nil
	})
}

// TokenExists reports whether an initialised token has label.
func TokenExists(module, label string) (bool, error) {
	found := false
	err := withModule(module, func(p *pkcs11.Ctx) error {
		_, err := findSlot(p, label)
		found = err == nil
		return nil
	})
	return found, err
}

// CloseAllSessions closes every session of this process on the token, as
// an HSM reset or a token removal would, and so logs it out. It exists for
// fault-injection tests and operators' drills; a running HSM recovers.
func CloseAllSessions(module, label string) error {
	return withModule(module, func(p *pkcs11.Ctx) error {
		slot, err := findSlot(p, label)
		if err != nil {
			return err
		}
		return p.CloseAllSessions(slot)
	})
}

// ResetToken closes every session and re-initialises the token with a new
// security officer PIN and no user PIN: all keys are gone and logins fail,
// as after a factory reset. For fault-injection tests.
func ResetToken(module, label string, soPIN secret.Value) error {
	return withModule(module, func(p *pkcs11.Ctx) error {
		slot, err := findSlot(p, label)
		if err != nil {
			return err
		}
		if err := p.CloseAllSessions(slot); err != nil {
			return err
		}
		return p.InitToken(slot, soPIN.Reveal(), label)
	})
}
