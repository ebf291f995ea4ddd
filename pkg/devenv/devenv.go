// Package devenv is certmill-dev: every service in one process on the
// embedded defaults, as `vault server -dev` does. JetStream runs
// in-process, the SoftHSM2 tokens live in the folder, the root ceremony
// runs on first start (3 of 5 custodians, shares in the folder), and the
// signer, crlgen and the responder listen on loopback.
package devenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/certmill/certmill/configs"
	"github.com/certmill/certmill/crlgen"
	"github.com/certmill/certmill/pkg/ceremony"
	"github.com/certmill/certmill/pkg/hsm"
	"github.com/certmill/certmill/pkg/ledger"
	"github.com/certmill/certmill/pkg/secret"
	"github.com/certmill/certmill/pkg/softhsm"
	"github.com/certmill/certmill/pkg/tenant"
	"github.com/certmill/certmill/responder"
	"github.com/certmill/certmill/signer"
)

// Options say where certmill-dev keeps its state and listens. The
// certificates name the default OCSP and CRL addresses.
type Options struct {
	Dir         string // default "certmill-dev"
	SignerAddr  string // default 127.0.0.1:8443
	OCSPAddr    string // default 127.0.0.1:8081
	CRLAddr     string // default 127.0.0.1:8082
	NATSAddr    string // default 127.0.0.1:4222, for external readers and tools
	MonitorAddr string // default 127.0.0.1:8222
	Log         *slog.Logger
	Out         io.Writer // the console
}

func (o *Options) defaults() {
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&o.Dir, "certmill-dev")
	def(&o.SignerAddr, "127.0.0.1:8443")
	def(&o.OCSPAddr, "127.0.0.1:8081")
	def(&o.CRLAddr, "127.0.0.1:8082")
	def(&o.NATSAddr, "127.0.0.1:4222")
	def(&o.MonitorAddr, "127.0.0.1:8222")
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
}

// randomFile makes a file of random hex (0600) unless it exists.
func randomFile(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	b := make([]byte, 16)
	rand.Read(b)
	return os.WriteFile(path, []byte(hex.EncodeToString(b)), 0o600)
}

// writeConfig writes an embedded configuration into dir with its demo
// paths made relative to dir.
func writeConfig(dir, name string) (string, error) {
	b, err := configs.FS.ReadFile(name)
	if err != nil {
		return "", err
	}
	s := strings.ReplaceAll(string(b), "../demo/", "")
	p := filepath.Join(dir, name)
	return p, os.WriteFile(p, []byte(s), 0o600)
}

// Serve runs everything until ctx ends.
func Serve(ctx context.Context, o Options) error {
	o.defaults()
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if _, err := softhsm.Use(dir); err != nil {
		return err
	}
	for _, f := range []string{"online.pin", "online.so-pin", "dev-token"} {
		if err := randomFile(filepath.Join(dir, f)); err != nil {
			return err
		}
	}
	cerFile, err := writeConfig(dir, "ceremony.yaml")
	if err != nil {
		return err
	}
	issuersFile, err := writeConfig(dir, "issuers.yaml")
	if err != nil {
		return err
	}
	cer, err := ceremony.Load(cerFile)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(cer.OutDir, "state.json")); errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(o.Out, "certmill-dev: first start: root ceremony with %d of %d custodians\n", cer.Custodians.Threshold, len(cer.Custodians.Names))
		if _, err := ceremony.Init(cer, ceremony.Deps{Log: o.Log}); err != nil {
			return err
		}
	}
	token, err := secret.Source{File: filepath.Join(dir, "dev-token")}.Load()
	if err != nil {
		return err
	}

	l, err := ledger.Open(ctx, ledger.Config{Dir: filepath.Join(dir, "ledger"), Listen: o.NATSAddr, Monitor: o.MonitorAddr}, o.Log)
	if err != nil {
		return err
	}
	defer l.Close()
	hc := hsm.Config{Token: cer.Online.Token, PIN: cer.Online.PIN}
	hc.FillDefaults(4)
	h, err := hsm.Open(hc, o.Log)
	if err != nil {
		return err
	}
	defer h.Close()
	lc := ledger.Config{Dir: filepath.Join(dir, "ledger")} // shared below; named for validation only
	all := map[string][]string{"manufacturing": {"device"}, "firmware": {"firmware-signer"}, "codeverify": {"gateway"}}
	sg, err := signer.New(ctx, &signer.Config{Listen: o.SignerAddr, InsecurePlainHTTP: true, IssuersFile: issuersFile, HSM: hc, Ledger: lc, Lint: true,
		Index:   signer.IndexConfig{Dir: filepath.Join(dir, "signer-index")},
		Tenants: []*tenant.Tenant{{Name: "acme-meters", TokenSHA256: tenant.HashToken(token.Reveal()), Issuers: all}}},
		signer.Deps{Log: o.Log, HSM: h, Ledger: l})
	if err != nil {
		return err
	}
	defer sg.Close()
	cg, err := crlgen.New(ctx, &crlgen.Config{Listen: o.CRLAddr, Dir: filepath.Join(dir, "crlgen"), IssuersFile: issuersFile, RootDir: cer.OutDir, HSM: hc, Ledger: lc},
		crlgen.Deps{Log: o.Log, HSM: h, Ledger: l})
	if err != nil {
		return err
	}
	defer cg.Close()
	rs, err := responder.New(ctx, &responder.Config{Listen: o.OCSPAddr, Dir: filepath.Join(dir, "responder"), IssuersFile: issuersFile, HSM: hc, Ledger: lc},
		responder.Deps{Log: o.Log, HSM: h, Ledger: l})
	if err != nil {
		return err
	}
	defer rs.Close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 3)
	var wg sync.WaitGroup
	for name, run := range map[string]func(context.Context) error{"signer": sg.Run, "crlgen": cg.Run, "responder": rs.Run} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(ctx); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	fmt.Fprintf(o.Out, `certmill-dev: running (Ctrl-C stops it)
  signer API   http://%s/v1   (tenant acme-meters; token in %s)
  OCSP         http://%s/{manufacturing,firmware,codeverify}
  CRLs         http://%s/{issuer}.crl, {issuer}-delta.crl, root.crl
  ledger       nats://%s (JetStream, monitoring http://%s)
  folder       %s (tokens, ceremony, shares, stores)
  try          export CERTMILL_URL=http://%s CERTMILL_TOKEN=$(cat %s)
               certmill submit -issuer manufacturing -profile device -out certs/ csrs/
`, o.SignerAddr, filepath.Join(dir, "dev-token"), o.OCSPAddr, o.CRLAddr, o.NATSAddr, o.MonitorAddr, dir, o.SignerAddr, filepath.Join(dir, "dev-token"))
	select {
	case <-ctx.Done():
		err = nil
	case err = <-errc:
	}
	cancel()
	wg.Wait()
	return err
}
