// Package hsm signs with keys that never leave a PKCS#11 token.
//
// An HSM wraps a crypto11 context: a bounded pool of sessions logged in
// with a PIN read from a file or the environment. Keys are found or made by
// label and returned as *Key, a crypto.Signer for ECDSA P-256 and P-384 and
// RSA 2048 and 3072.
//
// Sessions die: a token is reset, an HSM restarts, another process closes
// them. crypto11 puts a dead session back into its pool (crypto11 #142), so
// a pool that is never replaced fails for ever (step-ca #937, Boulder
// #3468). When a signature fails because the session or login was lost,
// Key.Sign throws the whole context away, opens a new one (new sessions,
// new login) and tries once more; if the token cannot be opened again it
// returns an error wrapping ErrUnavailable. Waiting for a free session is
// bounded by Config.SessionWait and fails with ErrBusy, so nothing hangs.
package hsm

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThalesGroup/crypto11"
	"github.com/miekg/pkcs11"
	"github.com/thales-e-security/pool"

	"github.com/certmill/certmill/pkg/config"
	"github.com/certmill/certmill/pkg/secret"
)

// Sentinel errors callers branch on.
var (
	// ErrUnavailable means the token could not be reached or logged in to,
	// even after reopening every session. Retry later; an operator may need
	// to act (check the HSM, its module, the PIN).
	ErrUnavailable = errors.New("hsm: token unavailable")
	// ErrBusy means no session became free within Config.SessionWait.
	ErrBusy = errors.New("hsm: no free session")
	// ErrKeyNotFound means no key pair on the token has the label.
	ErrKeyNotFound = errors.New("hsm: key not found")
	// ErrKeyExists means GenerateKey was asked for a label already in use.
	ErrKeyExists = errors.New("hsm: key label already in use")
)

// Algorithm names a key type and size that certmill uses.
type Algorithm string

// The algorithms a Key may have.
const (
	ECDSAP256 Algorithm = "ecdsa-p256"
	ECDSAP384 Algorithm = "ecdsa-p384"
	RSA2048   Algorithm = "rsa-2048"
	RSA3072   Algorithm = "rsa-3072"
)

// Valid reports whether a is one of the algorithms above.
func (a Algorithm) Valid() bool {
	switch a {
	case ECDSAP256, ECDSAP384, RSA2048, RSA3072:
		return true
	}
	return false
}

// Config says which token to use and how. The zero value is not usable:
// Token and PIN are required; DefaultConfig fills in the rest.
type Config struct {
	// Module is the path of the PKCS#11 library. Default: SoftHSM2's, as
	// Debian installs it (FindSoftHSM2).
	Module string `yaml:"module"`
	// Token is the label of the token that holds the keys.
	Token string `yaml:"token"`
	// PIN is the user PIN, from a file or an environment variable (never argv).
	PIN secret.Source `yaml:"pin"`
	// Sessions is how many signatures may run at once (the pool's size).
	// Default 4. More than the HSM has cores rarely helps.
	Sessions int `yaml:"sessions"`
	// SessionWait bounds how long an operation waits for a free session.
	// Default 5s; 0 after defaults means wait for ever, which is refused.
	SessionWait time.Duration `yaml:"session_wait"`
}

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	return Config{Module: FindSoftHSM2(), Sessions: 4, SessionWait: 5 * time.Second}
}

// Validate lists every problem with c.
func (c Config) Validate() error { return c.validate(true) }

func (c Config) validate(needPIN bool) error {
	var p config.Problems
	if c.Module == "" {
		p.Addf("hsm.module: no PKCS#11 module given and SoftHSM2 not found (hint: apt-get install softhsm2, or run make setup)")
	}
	if c.Token == "" {
		p.Addf("hsm.token: token label is required")
	}
	if needPIN && c.PIN.IsZero() {
		p.Addf("hsm.pin: give pin.file or pin.env (PINs are never taken from the command line)")
	}
	if c.Sessions < 1 || c.Sessions > 1024 {
		p.Addf("hsm.sessions: %d outside 1..1024", c.Sessions)
	}
	if c.SessionWait <= 0 {
		p.Addf("hsm.session_wait: must be positive, so that no caller waits for ever")
	}
	return p.Err()
}

// FindSoftHSM2 returns the path of SoftHSM2's PKCS#11 module, or "".
func FindSoftHSM2() string {
	for _, p := range []string{
		"/usr/lib/softhsm/libsofthsm2.so",
		"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
		"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
		"/usr/local/lib/softhsm/libsofthsm2.so",
	} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// moduleMu serialises opening crypto11 contexts with this package's own
// raw use of a module (token initialisation), which would otherwise race to
// C_Initialize in this process.
var moduleMu sync.Mutex

// HSM is an open token. It is safe for concurrent use.
type HSM struct {
	cfg Config
	pin secret.Value
	log *slog.Logger

	reopenMu sync.Mutex // serialises reopen and key generation
	cur      atomic.Pointer[generation]
	closed   atomic.Bool
}

// generation is one crypto11 context; a reopen makes the next.
type generation struct {
	ctx    *crypto11.Context
	id     uint64
	closed atomic.Bool
}

// errGenerationClosed is what a closed generation answers; it counts as a
// lost session, so the caller reopens.
var errGenerationClosed = errors.New("hsm: sessions closed after the token was lost")

// close closes the generation's context once. crypto11 finalises the
// module when the process's last context on it closes.
func (g *generation) close() {
	if g.closed.CompareAndSwap(false, true) {
		g.ctx.Close() // waits for in-flight operations on its sessions
	}
}

// Open loads the PIN, opens the token and logs in. log may be nil.
func Open(cfg Config, log *slog.Logger) (*HSM, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pin, err := cfg.PIN.Load()
	if err != nil {
		return nil, fmt.Errorf("hsm: PIN for token %q: %w", cfg.Token, err)
	}
	return OpenPIN(cfg, pin, log)
}

// OpenPIN is Open with a PIN the caller already holds (the root ceremony
// derives it from the custodians' shares); cfg.PIN is ignored.
func OpenPIN(cfg Config, pin secret.Value, log *slog.Logger) (*HSM, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.validate(false); err != nil {
		return nil, err
	}
	h := &HSM{cfg: cfg, pin: pin, log: log.With("token", cfg.Token)}
	ctx, err := h.configure()
	if err != nil {
		return nil, err
	}
	h.cur.Store(&generation{ctx: ctx, id: 1})
	h.log.Info("hsm: token open", "module", cfg.Module, "sessions", cfg.Sessions)
	return h, nil
}

func (h *HSM) configure() (*crypto11.Context, error) {
	moduleMu.Lock()
	defer moduleMu.Unlock()
	ctx, err := crypto11.Configure(&crypto11.Config{
		Path:            h.cfg.Module,
		TokenLabel:      h.cfg.Token,
		Pin:             h.pin.Reveal(),
		MaxSessions:     h.cfg.Sessions + 1, // crypto11 keeps one for the login
		PoolWaitTimeout: h.cfg.SessionWait,
	})
	if err != nil {
		// crypto11's messages name the token and the PKCS#11 code, not the PIN.
		return nil, fmt.Errorf("%w: open token %q with %s: %v (hint: check that the token exists and the PIN is right: softhsm2-util --show-slots)",
			ErrUnavailable, h.cfg.Token, h.cfg.Module, err)
	}
	return ctx, nil
}

// Close closes every session. Keys from this HSM stop working.
func (h *HSM) Close() error {
	if h.closed.Swap(true) {
		return nil
	}
	h.reopenMu.Lock()
	defer h.reopenMu.Unlock()
	h.cur.Load().close()
	return nil
}

// Reopens counts how many times the session pool was replaced; for tests
// and metrics.
func (h *HSM) Reopens() uint64 { return h.cur.Load().id - 1 }

// reopen replaces generation g with a new context, unless another caller
// already did. The old context is closed once its sessions come back.
func (h *HSM) reopen(g *generation) error {
	h.reopenMu.Lock()
	defer h.reopenMu.Unlock()
	if h.closed.Load() {
		return errors.New("hsm: closed")
	}
	if cur := h.cur.Load(); cur.id != g.id {
		return nil // someone else reopened already
	}
	h.log.Warn("hsm: sessions lost, reopening the token", "generation", g.id)
	ctx, err := h.configure()
	if err != nil && !g.closed.Load() {
		// SoftHSM2 (like many modules) scans its tokens only in
		// C_Initialize: a token that went away and came back is found
		// again only after the module is finalised. Close this
		// generation, which finalises it when it is the process's last,
		// and initialise afresh. Until that works, the closed generation
		// stays current and every caller tries again.
		g.close()
		ctx, err = h.configure()
	}
	if err != nil {
		h.log.Error("hsm: reopen failed", "err", err)
		return err
	}
	h.cur.Store(&generation{ctx: ctx, id: g.id + 1})
	go g.close()
	return nil
}

// Ping checks that a session can be had and used, for readiness probes.
func (h *HSM) Ping() error {
	var err error
	for range 2 {
		g := h.cur.Load()
		var r io.Reader
		if g.closed.Load() {
			err = errGenerationClosed
		} else {
			r, err = g.ctx.NewRandomReader()
		}
		if err == nil {
			var b [1]byte
			_, err = r.Read(b[:])
		}
		if err == nil {
			return nil
		}
		if !sessionLost(err) {
			return classify(err)
		}
		if rerr := h.reopen(g); rerr != nil {
			return rerr
		}
	}
	return classify(err)
}

// GenerateKey makes a key pair with the given label on the token. The
// private key is sensitive and not extractable. A label in use is refused.
func (h *HSM) GenerateKey(label string, alg Algorithm) (*Key, error) {
	if label == "" {
		return nil, errors.New("hsm: empty key label")
	}
	if _, err := h.Key(label); err == nil {
		return nil, fmt.Errorf("%w: %q", ErrKeyExists, label)
	} else if !errors.Is(err, ErrKeyNotFound) {
		return nil, err
	}
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	g := h.cur.Load()
	var s crypto11.Signer
	var err error
	switch alg {
	case ECDSAP256:
		s, err = g.ctx.GenerateECDSAKeyPairWithLabel(id, []byte(label), elliptic.P256())
	case ECDSAP384:
		s, err = g.ctx.GenerateECDSAKeyPairWithLabel(id, []byte(label), elliptic.P384())
	case RSA2048:
		s, err = g.ctx.GenerateRSAKeyPairWithLabel(id, []byte(label), 2048)
	case RSA3072:
		s, err = g.ctx.GenerateRSAKeyPairWithLabel(id, []byte(label), 3072)
	default:
		return nil, fmt.Errorf("hsm: unsupported algorithm %q (want one of ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072)", alg)
	}
	if err != nil {
		return nil, fmt.Errorf("hsm: generate %s key %q: %w", alg, label, classify(err))
	}
	h.log.Info("hsm: key generated", "label", label, "alg", alg)
	k := &Key{h: h, label: label, alg: alg, pub: s.Public()}
	k.cache.Store(&keyHandle{gen: g.id, signer: s})
	return k, nil
}

// Key finds the key pair with the given label.
func (h *HSM) Key(label string) (*Key, error) {
	g := h.cur.Load()
	s, err := h.find(g, label)
	if err != nil && sessionLost(err) {
		if rerr := h.reopen(g); rerr != nil {
			return nil, rerr
		}
		g = h.cur.Load()
		s, err = h.find(g, label)
	}
	if err != nil {
		return nil, err
	}
	alg, err := algorithmOf(s.Public())
	if err != nil {
		return nil, fmt.Errorf("hsm: key %q: %w", label, err)
	}
	k := &Key{h: h, label: label, alg: alg, pub: s.Public()}
	k.cache.Store(&keyHandle{gen: g.id, signer: s})
	return k, nil
}

func (h *HSM) find(g *generation, label string) (crypto11.Signer, error) {
	if g.closed.Load() {
		return nil, errGenerationClosed
	}
	s, err := g.ctx.FindKeyPair(nil, []byte(label))
	if err != nil && strings.Contains(err.Error(), "was not found") {
		s, err = nil, nil // crypto11 v1.6 reports absence as an untyped error
	}
	if err != nil {
		return nil, fmt.Errorf("hsm: find key %q: %w", label, classify(err))
	}
	if s == nil {
		return nil, fmt.Errorf("%w: %q on token %q", ErrKeyNotFound, label, h.cfg.Token)
	}
	return s, nil
}

func algorithmOf(pub crypto.PublicKey) (Algorithm, error) {
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		switch p.Curve {
		case elliptic.P256():
			return ECDSAP256, nil
		case elliptic.P384():
			return ECDSAP384, nil
		}
	case *rsa.PublicKey:
		switch p.N.BitLen() {
		case 2048:
			return RSA2048, nil
		case 3072:
			return RSA3072, nil
		}
	}
	return "", fmt.Errorf("unsupported public key %T", pub)
}

// Key is a private key on the token. It is a crypto.Signer and safe for
// concurrent use; it survives a reopen of the HSM's sessions.
type Key struct {
	h     *HSM
	label string
	alg   Algorithm
	pub   crypto.PublicKey
	cache atomic.Pointer[keyHandle]
}

// keyHandle is the key as found in one generation of the HSM's context.
type keyHandle struct {
	gen    uint64
	signer crypto.Signer
}

// Label is the key's CKA_LABEL.
func (k *Key) Label() string { return k.label }

// Algorithm is the key's type and size.
func (k *Key) Algorithm() Algorithm { return k.alg }

// Public returns the public key; it needs no session.
func (k *Key) Public() crypto.PublicKey { return k.pub }

// Sign signs digest in the HSM. ECDSA signatures are ASN.1 DER, as
// crypto.Signer requires; RSA uses PKCS #1 v1.5, or PSS when opts is
// *rsa.PSSOptions. If the session was lost it reopens the token and tries
// once more.
func (k *Key) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		g := k.h.cur.Load()
		var s crypto.Signer
		s, err = k.signer(g)
		if err == nil {
			var sig []byte
			sig, err = s.Sign(r, digest, opts)
			if err == nil {
				return sig, nil
			}
		}
		if !sessionLost(err) {
			break
		}
		if rerr := k.h.reopen(g); rerr != nil {
			return nil, fmt.Errorf("hsm: sign with %q: %w", k.label, rerr)
		}
	}
	return nil, fmt.Errorf("hsm: sign with %q: %w", k.label, classify(err))
}

func (k *Key) signer(g *generation) (crypto.Signer, error) {
	if g.closed.Load() {
		return nil, errGenerationClosed
	}
	if c := k.cache.Load(); c != nil && c.gen == g.id {
		return c.signer, nil
	}
	s, err := k.h.find(g, k.label)
	if err != nil {
		return nil, err
	}
	k.cache.Store(&keyHandle{gen: g.id, signer: s})
	return s, nil
}

// lostCodes are PKCS#11 return values after which a session, its login or
// its object handles cannot be trusted again.
var lostCodes = map[pkcs11.Error]bool{
	pkcs11.CKR_SESSION_HANDLE_INVALID:         true,
	pkcs11.CKR_SESSION_CLOSED:                 true,
	pkcs11.CKR_DEVICE_REMOVED:                 true,
	pkcs11.CKR_DEVICE_ERROR:                   true,
	pkcs11.CKR_TOKEN_NOT_PRESENT:              true,
	pkcs11.CKR_TOKEN_NOT_RECOGNIZED:           true,
	pkcs11.CKR_USER_NOT_LOGGED_IN:             true,
	pkcs11.CKR_OBJECT_HANDLE_INVALID:          true,
	pkcs11.CKR_KEY_HANDLE_INVALID:             true,
	pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED:       true,
	pkcs11.CKR_GENERAL_ERROR:                  true,
	pkcs11.CKR_SESSION_COUNT:                  true,
	pkcs11.CKR_SESSION_READ_ONLY_EXISTS:       true,
	pkcs11.CKR_USER_ANOTHER_ALREADY_LOGGED_IN: true,
}

func sessionLost(err error) bool {
	if err == nil {
		return false
	}
	var code pkcs11.Error
	if errors.As(err, &code) {
		return lostCodes[code]
	}
	// A generation closed by a concurrent reopen.
	return errors.Is(err, errGenerationClosed) || errors.Is(err, pool.ErrClosed) || strings.Contains(err.Error(), "closed Context")
}

// classify maps pool timeouts to ErrBusy and lost sessions to ErrUnavailable.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pool.ErrTimeout):
		return fmt.Errorf("%w: %v (hint: raise hsm.sessions or hsm.session_wait, or lower the load)", ErrBusy, err)
	case sessionLost(err):
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return err
}

// FillDefaults sets the unset fields of c from DefaultConfig, with
// sessions as the pool size when none is given.
func (c *Config) FillDefaults(sessions int) {
	d := DefaultConfig()
	if c.Module == "" {
		c.Module = d.Module
	}
	if c.Sessions == 0 {
		c.Sessions = sessions
	}
	if c.SessionWait == 0 {
		c.SessionWait = d.SessionWait
	}
}
