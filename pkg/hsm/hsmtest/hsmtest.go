// Package hsmtest makes real SoftHSM2 tokens for tests.
//
// SoftHSM2 reads SOFTHSM2_CONF once, when the module is first initialised in
// a process, so every token of a test binary lives in one token directory
// that the first call creates; each test gets its own token by label.
package hsmtest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/certmill/certmill/pkg/hsm"
	"github.com/certmill/certmill/pkg/secret"
	"github.com/certmill/certmill/pkg/softhsm"
)

var (
	setupOnce sync.Once
	setupErr  error
)

// Setup points SOFTHSM2_CONF at a fresh token directory for this process.
// It fails the test when SoftHSM2 is not installed: run make setup.
func Setup(t testing.TB) {
	t.Helper()
	setupOnce.Do(func() {
		var dir string
		dir, setupErr = os.MkdirTemp("", "certmill-softhsm-")
		if setupErr != nil {
			return
		}
		_, setupErr = softhsm.Use(dir)
	})
	if setupErr != nil {
		t.Fatalf("hsmtest: %v", setupErr)
	}
	if hsm.FindSoftHSM2() == "" {
		t.Fatal("hsmtest: SoftHSM2 is not installed (hint: make setup)")
	}
}

// Token is a fresh token and the configuration to open it.
type Token struct {
	Config hsm.Config
	PIN    secret.Value
	SOPIN  secret.Value
}

// NewToken initialises a token with random PINs; the user PIN is in a
// file in t.TempDir(). sessions sets the pool size.
func NewToken(t testing.TB, sessions int) Token {
	t.Helper()
	Setup(t)
	label := "t-" + randHex(8)
	pin, so := secret.New([]byte(randHex(16))), secret.New([]byte(randHex(16)))
	cfg := hsm.DefaultConfig()
	cfg.Token = label
	cfg.Sessions = sessions
	if err := hsm.InitToken(cfg.Module, label, so, pin); err != nil {
		t.Fatal(err)
	}
	pinFile := filepath.Join(t.TempDir(), "pin")
	if err := os.WriteFile(pinFile, pin.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.PIN = secret.Source{File: pinFile}
	return Token{Config: cfg, PIN: pin, SOPIN: so}
}

// Open opens tok and closes it when the test ends.
func (tok Token) Open(t testing.TB) *hsm.HSM {
	t.Helper()
	h, err := hsm.Open(tok.Config, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
