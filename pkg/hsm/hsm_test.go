package hsm_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certmill/certmill/pkg/checkfor"
	"github.com/certmill/certmill/pkg/hsm"
	"github.com/certmill/certmill/pkg/hsm/hsmtest"
	"github.com/certmill/certmill/pkg/secret"
	"github.com/certmill/certmill/pkg/softhsm"
)

func TestGenerateSignVerify(t *testing.T) {
	tok := hsmtest.NewToken(t, 2)
	h := tok.Open(t)
	tests := []struct {
		alg  hsm.Algorithm
		hash crypto.Hash
	}{
		{hsm.ECDSAP256, crypto.SHA256},
		{hsm.ECDSAP384, crypto.SHA384},
		{hsm.RSA2048, crypto.SHA256},
		{hsm.RSA3072, crypto.SHA384},
	}
	for _, tc := range tests {
		t.Run(string(tc.alg), func(t *testing.T) {
			k, err := h.GenerateKey("k-"+string(tc.alg), tc.alg)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := h.GenerateKey("k-"+string(tc.alg), tc.alg); !errors.Is(err, hsm.ErrKeyExists) {
				t.Fatalf("second generate: %v, want ErrKeyExists", err)
			}
			found, err := h.Key("k-" + string(tc.alg))
			if err != nil {
				t.Fatal(err)
			}
			if found.Algorithm() != tc.alg {
				t.Fatalf("found algorithm %s", found.Algorithm())
			}
			h2 := tc.hash.New()
			h2.Write([]byte("certmill"))
			digest := h2.Sum(nil)
			switch pub := k.Public().(type) {
			case *ecdsa.PublicKey:
				sig, err := found.Sign(rand.Reader, digest, tc.hash)
				if err != nil {
					t.Fatal(err)
				}
				if !ecdsa.VerifyASN1(pub, digest, sig) {
					t.Fatal("ECDSA signature does not verify")
				}
			case *rsa.PublicKey:
				sig, err := found.Sign(rand.Reader, digest, tc.hash)
				if err != nil {
					t.Fatal(err)
				}
				if err := rsa.VerifyPKCS1v15(pub, tc.hash, digest, sig); err != nil {
					t.Fatal(err)
				}
				pss := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: tc.hash}
				sig, err = found.Sign(rand.Reader, digest, pss)
				if err != nil {
					t.Fatal(err)
				}
				if err := rsa.VerifyPSS(pub, tc.hash, digest, sig, pss); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	if _, err := h.Key("absent"); !errors.Is(err, hsm.ErrKeyNotFound) {
		t.Fatalf("absent key: %v", err)
	}
}

func TestWrongPINIsClearAndSecret(t *testing.T) {
	tok := hsmtest.NewToken(t, 2)
	cfg := tok.Config
	wrong := "wrong-pin-4f3a9c"
	f := filepath.Join(t.TempDir(), "pin")
	os.WriteFile(f, []byte(wrong), 0o600)
	cfg.PIN = secret.Source{File: f}
	_, err := hsm.Open(cfg, nil)
	if !errors.Is(err, hsm.ErrUnavailable) {
		t.Fatalf("wrong PIN: %v, want ErrUnavailable", err)
	}
	if strings.Contains(err.Error(), wrong) {
		t.Fatalf("error reveals the PIN: %v", err)
	}
	if !strings.Contains(err.Error(), "CKR_PIN_INCORRECT") {
		t.Fatalf("error does not say why: %v", err)
	}
	cfg.PIN = secret.Source{Env: "CERTMILL_TEST_UNSET_PIN"}
	if _, err := hsm.Open(cfg, nil); err == nil || !strings.Contains(err.Error(), "CERTMILL_TEST_UNSET_PIN") {
		t.Fatalf("unset env PIN: %v", err)
	}
}

// TestRecoversWhenSessionsClosed closes every session of the token under
// goroutines that keep signing, as a token reset does, leaving the pool full
// of dead handles (crypto11 #142). Every signature must succeed through a
// new pool. The fault is injected between signatures, not during one:
// SoftHSM2 frees a session that C_CloseAllSessions closes while another
// thread may still be inside C_SignInit with it, and crashes (a use after
// free that a hardware HSM answers with CKR_SESSION_HANDLE_INVALID).
func TestRecoversWhenSessionsClosed(t *testing.T) {
	tok := hsmtest.NewToken(t, 4)
	h := tok.Open(t)
	k, err := h.GenerateKey("device-ca", hsm.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("x"))
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	var inject sync.RWMutex // writers: the fault; readers: one signature each
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				inject.RLock()
				_, err := k.Sign(rand.Reader, digest[:], crypto.SHA256)
				inject.RUnlock()
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	waitFor(t, 10*time.Second, func() bool { return ok.Load() > 100 })
	for range 3 {
		before := ok.Load()
		inject.Lock()
		err := hsm.CloseAllSessions(tok.Config.Module, tok.Config.Token)
		inject.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, func() bool { return ok.Load() > before+100 })
	}
	close(stop)
	wg.Wait()
	if h.Reopens() == 0 {
		t.Fatal("the pool was never reopened, so the fault was not injected")
	}
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d signatures failed across %d reopens; first: %v", n, h.Reopens(), firstErr.Load())
	}
	t.Logf("%d signatures, %d reopens, 0 failures", ok.Load(), h.Reopens())
	if err := h.Ping(); err != nil {
		t.Fatal(err)
	}
}

// TestFailsClearlyWhenTokenReset wipes the token under a running pool: the
// key and the user PIN are gone, so signing must fail with ErrUnavailable
// or ErrKeyNotFound, quickly, and never hang.
func TestFailsClearlyWhenTokenReset(t *testing.T) {
	tok := hsmtest.NewToken(t, 2)
	h := tok.Open(t)
	k, err := h.GenerateKey("gone", hsm.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("x"))
	if _, err := k.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
		t.Fatal(err)
	}
	if err := hsm.ResetToken(tok.Config.Module, tok.Config.Token, tok.SOPIN); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := k.Sign(rand.Reader, digest[:], crypto.SHA256)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, hsm.ErrUnavailable) && !errors.Is(err, hsm.ErrKeyNotFound) {
			t.Fatalf("after reset: %v, want ErrUnavailable or ErrKeyNotFound", err)
		}
		if strings.Contains(err.Error(), tok.PIN.Reveal()) || strings.Contains(err.Error(), tok.SOPIN.Reveal()) {
			t.Fatal("error reveals a PIN")
		}
		t.Logf("after reset: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("Sign hung after the token was reset")
	}
	if err := h.Ping(); err == nil {
		t.Fatal("Ping succeeded on a reset token")
	}
}

// TestRecoversWhenTokenComesBack: the module loses the token (its folder
// goes away, as when a network HSM or a USB token drops off): signatures
// and Ping fail with ErrUnavailable, without hanging; when the folder
// comes back, the next signature works again without restarting the
// process. SoftHSM2 finds a returned token only in a fresh C_Initialize.
func TestRecoversWhenTokenComesBack(t *testing.T) {
	tok := hsmtest.NewToken(t, 2)
	h := tok.Open(t)
	k, err := h.GenerateKey("returns", hsm.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := softhsm.TokenDir()
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("x"))
	if _, err := k.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(dir, dir+".away"); err != nil {
		t.Fatal(err)
	}
	defer os.Rename(dir+".away", dir)
	for i := range 3 {
		if _, err := k.Sign(rand.Reader, digest[:], crypto.SHA256); !errors.Is(err, hsm.ErrUnavailable) {
			t.Fatalf("signature %d without the token: %v, want ErrUnavailable", i, err)
		}
	}
	if err := h.Ping(); !errors.Is(err, hsm.ErrUnavailable) {
		t.Fatalf("Ping without the token: %v, want ErrUnavailable", err)
	}
	if err := os.Rename(dir+".away", dir); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
		t.Fatalf("the token is back, the signature still fails: %v", err)
	}
	if err := h.Ping(); err != nil {
		t.Fatalf("the token is back, Ping still fails: %v", err)
	}
	t.Logf("reopens: %d", h.Reopens())
}

func TestBusyPoolTimesOut(t *testing.T) {
	tok := hsmtest.NewToken(t, 1)
	if _, err := tok.Open(t).GenerateKey("rsa", hsm.RSA3072); err != nil {
		t.Fatal(err)
	}
	tok.Config.SessionWait = time.Millisecond
	k, err := tok.Open(t).Key("rsa")
	if err != nil {
		t.Fatal(err)
	}
	digest := sha512.Sum384([]byte("x"))
	var busy atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				if _, err := k.Sign(rand.Reader, digest[:], crypto.SHA384); errors.Is(err, hsm.ErrBusy) {
					busy.Add(1)
				} else if err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if busy.Load() == 0 {
		t.Fatal("8 goroutines on a pool of 1 with a 1ms wait never saw ErrBusy")
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	err := hsm.Config{}.Validate()
	for _, want := range []string{"hsm.token", "hsm.pin", "hsm.sessions", "hsm.session_wait"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to name %s", err, want)
		}
	}
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	checkfor.True(t, d, cond)
}

// TestLogsHoldNoPIN captures the logs of a signing run, including a lost
// session and a failed login, and searches them for the PINs.
func TestLogsHoldNoPIN(t *testing.T) {
	var logs strings.Builder
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tok := hsmtest.NewToken(t, 2)
	// A wrong PIN first: PKCS#11 logins are per process, so once the right
	// PIN is logged in, a wrong one would not even be checked.
	bad := tok.Config
	f := filepath.Join(t.TempDir(), "pin")
	os.WriteFile(f, []byte("wrong-8d1f2a"), 0o600)
	bad.PIN = secret.Source{File: f}
	if _, err := hsm.Open(bad, log); err != nil {
		log.Error("open failed", "err", err)
	}
	h, err := hsm.Open(tok.Config, log)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	k, err := h.GenerateKey("k", hsm.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("x"))
	k.Sign(rand.Reader, digest[:], crypto.SHA256)
	hsm.CloseAllSessions(tok.Config.Module, tok.Config.Token)
	if _, err := k.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
		t.Fatal(err)
	}
	log.Info("config", "pin", tok.Config.PIN, "value", tok.PIN)
	out := logs.String()
	if !strings.Contains(out, "reopening") || !strings.Contains(out, "open failed") {
		t.Fatalf("logs were not captured:\n%s", out)
	}
	for _, s := range []string{tok.PIN.Reveal(), tok.SOPIN.Reveal(), "wrong-8d1f2a"} {
		if strings.Contains(out, s) {
			t.Fatalf("logs contain a PIN:\n%s", out)
		}
	}
	if fmt.Sprint(tok.PIN) != "REDACTED" || fmt.Sprintf("%v %s %q %+v %#v", tok.PIN, tok.PIN, tok.PIN, tok.PIN, tok.PIN) == "" {
		t.Fatal("secret.Value formats its contents")
	}
	for _, verb := range []string{"%v", "%s", "%q", "%+v", "%#v", "%x"} {
		if got := fmt.Sprintf(verb, tok.PIN); strings.Contains(got, tok.PIN.Reveal()) {
			t.Fatalf("%s reveals the PIN: %s", verb, got)
		}
	}
}
