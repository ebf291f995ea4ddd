// Package ceremonytest runs real root ceremonies on SoftHSM2 for tests:
// the smart-meter hierarchy of configs/ceremony.yaml with token labels of
// the test's own.
package ceremonytest

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/certmill/certmill/pkg/ceremony"
	"github.com/certmill/certmill/pkg/hsm"
	"github.com/certmill/certmill/pkg/hsm/hsmtest"
)

// Config writes a 3-of-5 ceremony file named after name, with the shipped
// three issuing CAs plus extra YAML list items appended to issuing_cas, and
// loads it. Nothing is run.
func Config(t testing.TB, name, extra string) *ceremony.Config {
	t.Helper()
	hsmtest.Setup(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "online.pin"), []byte("online-pin-"+name+"-7c1e"), 0o600)
	os.WriteFile(filepath.Join(dir, "online.so-pin"), []byte("online-so-"+name+"-93aa"), 0o600)
	_, self, _, _ := runtime.Caller(0)
	src, err := os.ReadFile(filepath.Join(filepath.Dir(self), "../../../configs/ceremony.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	y := string(src)
	y = strings.ReplaceAll(y, "out_dir: ../demo/ceremony", "out_dir: out")
	y = strings.ReplaceAll(y, "../demo/online", "online")
	y = strings.ReplaceAll(y, "certmill-root", "root-"+name)
	y = strings.ReplaceAll(y, "certmill-online", "online-"+name)
	y = strings.ReplaceAll(y, "hierarchy: acme-meters", "hierarchy: acme-"+name)
	y += extra
	f := filepath.Join(dir, "ceremony.yaml")
	os.WriteFile(f, []byte(y), 0o600)
	cfg, err := ceremony.Load(f)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Hierarchy is a finished init: the root and issuing CAs on SoftHSM2.
type Hierarchy struct {
	Config *ceremony.Config
	// Online opens the online token (the signer's), pool of the given size.
	Online hsm.Config
}

// New runs init for the shipped hierarchy and returns it.
func New(t testing.TB, name string) *Hierarchy {
	t.Helper()
	cfg := Config(t, name, "")
	if _, err := ceremony.Init(cfg, ceremony.Deps{}); err != nil {
		t.Fatal(err)
	}
	hc := hsm.DefaultConfig()
	hc.Module = cfg.Module
	hc.Token = cfg.Online.Token
	hc.PIN = cfg.Online.PIN
	return &Hierarchy{Config: cfg, Online: hc}
}

// File is the path of a file the ceremony wrote (root.pem, manufacturing.pem ...).
func (h *Hierarchy) File(name string) string { return filepath.Join(h.Config.OutDir, name) }

// KeyLabel is the online key label of the issuing CA named name.
func (h *Hierarchy) KeyLabel(t testing.TB, name string) string {
	for _, ca := range h.Config.IssuingCAs {
		if ca.Name == name {
			return ca.Key.Label
		}
	}
	t.Fatalf("ceremonytest: no issuing CA %q", name)
	return ""
}
