// Package ceremony runs the offline root CA's ceremonies on a PKCS#11
// token, with no network and no running service.
//
// Init creates the root token, whose PINs are derived from a fresh 256-bit
// secret; splits that secret into N Shamir shares of which M unlock the
// root again; makes the root key and self-signed certificate; makes each
// issuing CA's key on the online token and certifies it; and signs the
// root's first, empty CRL. Every later root operation (IssueCA, SignCRL,
// RevokeCA) starts with Unlock, which needs M shares of this ceremony.
//
// Each operation appends an event to transcript.json and transcript.txt in
// the output folder: the custodians present, every key's SPKI SHA-256,
// every certificate's and CRL's SHA-256, and the times. Shares, PINs and
// the secret never reach a log, an error or the transcript.
package ceremony

import (
	"crypto"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/certmill/certmill/pkg/hsm"
	"github.com/certmill/certmill/pkg/lint"
	"github.com/certmill/certmill/pkg/profile"
	"github.com/certmill/certmill/pkg/secret"
	"github.com/certmill/certmill/pkg/serial"
	"github.com/certmill/certmill/pkg/shamir"
)

// Deps are what a ceremony needs from its caller.
type Deps struct {
	Log *slog.Logger     // nil: discard
	Now func() time.Time // nil: time.Now
}

func (d Deps) fill() Deps {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return d
}

// State is what the output folder remembers between ceremonies
// (state.json). It holds no secret: the commitment is a hash of the
// 256-bit secret, which cannot be inverted.
type State struct {
	Hierarchy     string            `json:"hierarchy"`
	Ceremony      string            `json:"ceremony"` // id, 128 random bits in hex
	Threshold     int               `json:"threshold"`
	Custodians    int               `json:"custodians"`
	Commitment    string            `json:"commitment"`
	RootToken     string            `json:"root_token"`
	RootKey       string            `json:"root_key"`
	NextCRLNumber int64             `json:"next_crl_number"`
	IssuingCAs    map[string]string `json:"issuing_cas"` // name -> certificate file
	Revoked       []RevokedCA       `json:"revoked,omitempty"`
}

// RevokedCA is an issuing CA certificate on the root CRL.
type RevokedCA struct {
	Name   string    `json:"name"`
	Serial string    `json:"serial"`
	Time   time.Time `json:"time"`
	Reason int       `json:"reason"`
}

func commitment(id string, secret []byte) []byte {
	h := sha256.New()
	h.Write([]byte("certmill ceremony commitment\x00" + id + "\x00"))
	h.Write(secret)
	return h.Sum(nil)
}

func (st *State) verifyCommitment(secret []byte) bool {
	want, err := hex.DecodeString(st.Commitment)
	return err == nil && subtle.ConstantTimeCompare(want, commitment(st.Ceremony, secret)) == 1
}

// rootPINs derives the root token's user and security officer PINs.
func rootPINs(secretBytes []byte) (user, so secret.Value, err error) {
	u, err := hkdf.Key(sha256.New, secretBytes, nil, "certmill root token user PIN", 32)
	if err != nil {
		return user, so, err
	}
	s, err := hkdf.Key(sha256.New, secretBytes, nil, "certmill root token SO PIN", 32)
	if err != nil {
		return user, so, err
	}
	return secret.New([]byte(hex.EncodeToString(u))), secret.New([]byte(hex.EncodeToString(s))), nil
}

// Result is what an operation wrote.
type Result struct {
	Event Event
	Dir   string
}

// Init runs the first ceremony. It refuses an output folder that already
// holds a ceremony and a root token that already exists.
func Init(cfg *Config, d Deps) (*Result, error) {
	d = d.fill()
	if _, err := os.Stat(filepath.Join(cfg.OutDir, "state.json")); err == nil {
		return nil, fmt.Errorf("ceremony: %s already holds a ceremony (hint: use a new out_dir, or issue-ca / crl for later operations)", cfg.OutDir)
	}
	if exists, err := hsm.TokenExists(cfg.Module, cfg.Root.Token); err != nil {
		return nil, err
	} else if exists {
		return nil, fmt.Errorf("ceremony: root token %q exists already: a root token is made once, by init", cfg.Root.Token)
	}
	if err := os.MkdirAll(filepath.Join(cfg.OutDir, "shares"), 0o700); err != nil {
		return nil, err
	}
	ev := Event{Operation: "init", Hierarchy: cfg.Hierarchy, Started: d.Now().UTC()}

	idb := make([]byte, 16)
	sec := make([]byte, 32)
	if _, err := rand.Read(idb); err != nil {
		return nil, err
	}
	if _, err := rand.Read(sec); err != nil {
		return nil, err
	}
	defer clear(sec)
	st := &State{
		Hierarchy: cfg.Hierarchy, Ceremony: hex.EncodeToString(idb),
		Threshold: cfg.Custodians.Threshold, Custodians: len(cfg.Custodians.Names),
		Commitment: hex.EncodeToString(commitment(hex.EncodeToString(idb), sec)),
		RootToken:  cfg.Root.Token, RootKey: cfg.Root.Key.Label,
		NextCRLNumber: 1, IssuingCAs: map[string]string{},
	}
	ev.Ceremony = st.Ceremony
	log := d.Log.With("ceremony", st.Ceremony, "hierarchy", cfg.Hierarchy)
	log.Info("ceremony: init started", "threshold", st.Threshold, "custodians", st.Custodians)

	// The shares first: if writing them fails, no token exists yet.
	parts, err := shamir.Split(sec, st.Threshold, st.Custodians)
	if err != nil {
		return nil, err
	}
	for i, name := range cfg.Custodians.Names {
		sh := Share{Hierarchy: cfg.Hierarchy, Ceremony: st.Ceremony, Custodian: name,
			Index: int(parts[i].X), Total: st.Custodians, Threshold: st.Threshold, Created: ev.Started, Data: parts[i].Y}
		f := filepath.Join(cfg.OutDir, "shares", shareFileName(name))
		if err := writeFile(f, sh.Marshal(), 0o600); err != nil {
			return nil, err
		}
		ev.Custodians = append(ev.Custodians, name)
		ev.Files = append(ev.Files, rel(cfg, f))
		clear(parts[i].Y)
	}

	userPIN, soPIN, err := rootPINs(sec)
	if err != nil {
		return nil, err
	}
	if err := hsm.InitToken(cfg.Module, cfg.Root.Token, soPIN, userPIN); err != nil {
		return nil, err
	}
	log.Info("ceremony: root token created", "token", cfg.Root.Token)
	root, err := hsm.OpenPIN(hsm.Config{Module: cfg.Module, Token: cfg.Root.Token, Sessions: 1, SessionWait: time.Minute}, userPIN, log)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	rootKey, err := root.GenerateKey(cfg.Root.Key.Label, cfg.Root.Key.Algorithm)
	if err != nil {
		return nil, err
	}
	ev.addKey(cfg.Root.Token, rootKey)

	now := d.Now().UTC().Truncate(time.Second)
	sn, err := serial.New()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               cfg.Root.Subject.Name(),
		NotBefore:             now,
		NotAfter:              now.AddDate(0, 0, cfg.Root.ValidityDays),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SubjectKeyId:          profile.KeyID(rootKey.Public()),
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, rootKey.Public(), rootKey)
	if err != nil {
		return nil, fmt.Errorf("ceremony: sign root certificate: %w", err)
	}
	rootCert, err := x509.ParseCertificate(rootDER)
	if err != nil {
		return nil, err
	}
	if err := lintRoot(rootDER); err != nil {
		return nil, fmt.Errorf("ceremony: root certificate: %w", err)
	}
	if err := writeCert(cfg, &ev, "root", rootCert); err != nil {
		return nil, err
	}

	online, err := openOnline(cfg, log)
	if err != nil {
		return nil, err
	}
	defer online.Close()
	for _, ca := range cfg.IssuingCAs {
		if err := issueCA(cfg, st, &ev, online, rootCert, rootKey, ca, d, log); err != nil {
			return nil, err
		}
	}
	if err := signCRL(cfg, st, &ev, rootCert, rootKey, d); err != nil {
		return nil, err
	}
	if err := finish(cfg, st, &ev, d); err != nil {
		return nil, err
	}
	log.Info("ceremony: init done", "out", cfg.OutDir)
	return &Result{Event: ev, Dir: cfg.OutDir}, nil
}

// Root is the unlocked root: M custodians were present.
type Root struct {
	cfg  *Config
	st   *State
	hsm  *hsm.HSM
	key  crypto.Signer
	cert *x509.Certificate
	ev   Event
	d    Deps
	log  *slog.Logger
}

// ReadState reads state.json from the output folder.
func ReadState(cfg *Config) (*State, error) {
	b, err := os.ReadFile(filepath.Join(cfg.OutDir, "state.json"))
	if err != nil {
		return nil, fmt.Errorf("ceremony: no ceremony in %s: %w (hint: run init first)", cfg.OutDir, err)
	}
	st := &State{}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("ceremony: state.json: %w", err)
	}
	return st, nil
}

// Unlock checks the shares and opens the root token. Close the Root after.
func Unlock(cfg *Config, shares []Share, operation string, d Deps) (*Root, error) {
	d = d.fill()
	st, err := ReadState(cfg)
	if err != nil {
		return nil, err
	}
	sec, who, err := combine(st, shares)
	if err != nil {
		d.Log.Warn("ceremony: unlock refused", "operation", operation, "shares", len(shares), "err", err)
		return nil, err
	}
	userPIN, _, err := rootPINs(sec)
	clear(sec)
	if err != nil {
		return nil, err
	}
	log := d.Log.With("ceremony", st.Ceremony, "hierarchy", st.Hierarchy)
	h, err := hsm.OpenPIN(hsm.Config{Module: cfg.Module, Token: st.RootToken, Sessions: 1, SessionWait: time.Minute}, userPIN, log)
	if err != nil {
		return nil, err
	}
	key, err := h.Key(st.RootKey)
	if err != nil {
		h.Close()
		return nil, err
	}
	cert, err := profile.ReadCertificate(filepath.Join(cfg.OutDir, "root.pem"))
	if err != nil {
		h.Close()
		return nil, err
	}
	ev := Event{Operation: operation, Hierarchy: st.Hierarchy, Ceremony: st.Ceremony, Started: d.Now().UTC(), Custodians: who}
	log.Info("ceremony: root unlocked", "operation", operation, "custodians", who)
	return &Root{cfg: cfg, st: st, hsm: h, key: key, cert: cert, ev: ev, d: d, log: log}, nil
}

// Close closes the root token's sessions.
func (r *Root) Close() error { return r.hsm.Close() }

// Certificate is the root certificate.
func (r *Root) Certificate() *x509.Certificate { return r.cert }

// IssueCA makes the key of the issuing CA named in the ceremony file and
// certifies it, then signs a new root CRL. A CA issued before is refused.
func (r *Root) IssueCA(name string) (*Result, error) {
	ca, ok := r.cfg.issuingCA(name)
	if !ok {
		return nil, fmt.Errorf("ceremony: no issuing CA %q in the ceremony file", name)
	}
	if _, done := r.st.IssuingCAs[name]; done {
		return nil, fmt.Errorf("ceremony: issuing CA %q was issued already (hint: add a new entry with a new key label to rotate)", name)
	}
	online, err := openOnline(r.cfg, r.log)
	if err != nil {
		return nil, err
	}
	defer online.Close()
	if err := issueCA(r.cfg, r.st, &r.ev, online, r.cert, r.key, ca, r.d, r.log); err != nil {
		return nil, err
	}
	return r.SignCRL()
}

// RevokeCA puts an issuing CA's certificate on the root CRL and signs it.
// reason is an RFC 5280 CRLReason code (1 keyCompromise, 2 cACompromise,
// 4 superseded, 5 cessationOfOperation ...).
func (r *Root) RevokeCA(name string, reason int) (*Result, error) {
	file, ok := r.st.IssuingCAs[name]
	if !ok {
		return nil, fmt.Errorf("ceremony: issuing CA %q was never issued", name)
	}
	if slices.ContainsFunc(r.st.Revoked, func(x RevokedCA) bool { return x.Name == name }) {
		return nil, fmt.Errorf("ceremony: issuing CA %q is revoked already", name)
	}
	c, err := profile.ReadCertificate(filepath.Join(r.cfg.OutDir, file))
	if err != nil {
		return nil, err
	}
	r.st.Revoked = append(r.st.Revoked, RevokedCA{Name: name, Serial: serial.Hex(c.SerialNumber), Time: r.d.Now().UTC().Truncate(time.Second), Reason: reason})
	return r.SignCRL()
}

// SignCRL signs the next root CRL with every revoked issuing CA on it.
func (r *Root) SignCRL() (*Result, error) {
	if err := signCRL(r.cfg, r.st, &r.ev, r.cert, r.key, r.d); err != nil {
		return nil, err
	}
	if err := finish(r.cfg, r.st, &r.ev, r.d); err != nil {
		return nil, err
	}
	return &Result{Event: r.ev, Dir: r.cfg.OutDir}, nil
}

func openOnline(cfg *Config, log *slog.Logger) (*hsm.HSM, error) {
	hc := hsm.Config{Module: cfg.Module, Token: cfg.Online.Token, PIN: cfg.Online.PIN, Sessions: 1, SessionWait: time.Minute}
	exists, err := hsm.TokenExists(cfg.Module, cfg.Online.Token)
	if err != nil {
		return nil, err
	}
	if !exists {
		if cfg.Online.SOPIN.IsZero() {
			return nil, fmt.Errorf("ceremony: online token %q does not exist and online.so_pin is not set to create it", cfg.Online.Token)
		}
		pin, err := cfg.Online.PIN.Load()
		if err != nil {
			return nil, err
		}
		so, err := cfg.Online.SOPIN.Load()
		if err != nil {
			return nil, err
		}
		if err := hsm.InitToken(cfg.Module, cfg.Online.Token, so, pin); err != nil {
			return nil, err
		}
		log.Info("ceremony: online token created", "token", cfg.Online.Token)
	}
	return hsm.Open(hc, log)
}

func issueCA(cfg *Config, st *State, ev *Event, online *hsm.HSM, rootCert *x509.Certificate, rootKey crypto.Signer, ca IssuingCAConfig, d Deps, log *slog.Logger) error {
	key, err := online.GenerateKey(ca.Key.Label, ca.Key.Algorithm)
	if err != nil {
		return fmt.Errorf("ceremony: issuing CA %s: %w", ca.Name, err)
	}
	ev.addKey(cfg.Online.Token, key)
	now := d.Now().UTC().Truncate(time.Second)
	sn, err := serial.New()
	if err != nil {
		return err
	}
	notAfter := now.AddDate(0, 0, ca.ValidityDays)
	if notAfter.After(rootCert.NotAfter) {
		notAfter = rootCert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               ca.Subject.Name(),
		NotBefore:             now,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		SubjectKeyId:          profile.KeyID(key.Public()),
		CRLDistributionPoints: []string{cfg.Root.CRLURL},
	}
	if cfg.Root.CertURL != "" {
		tmpl.IssuingCertificateURL = []string{cfg.Root.CertURL}
	}
	for _, u := range ca.ExtKeyUsages {
		eku, _ := ExtKeyUsage(u)
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, eku)
	}
	for _, p := range ca.Policies {
		oid, err := x509.ParseOID(p)
		if err != nil {
			return fmt.Errorf("ceremony: issuing CA %s: policy %q: %w", ca.Name, p, err)
		}
		tmpl.Policies = append(tmpl.Policies, oid)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, rootCert, key.Public(), rootKey)
	if err != nil {
		return fmt.Errorf("ceremony: sign issuing CA %s: %w", ca.Name, err)
	}
	if err := lintCA(der); err != nil {
		return fmt.Errorf("ceremony: issuing CA %s: %w", ca.Name, err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return err
	}
	if err := c.CheckSignatureFrom(rootCert); err != nil {
		return fmt.Errorf("ceremony: issuing CA %s does not verify under the root: %w", ca.Name, err)
	}
	if err := writeCert(cfg, ev, ca.Name, c); err != nil {
		return err
	}
	st.IssuingCAs[ca.Name] = ca.Name + ".pem"
	log.Info("ceremony: issuing CA certified", "ca", ca.Name, "serial", serial.Hex(sn))
	return nil
}

func signCRL(cfg *Config, st *State, ev *Event, rootCert *x509.Certificate, rootKey crypto.Signer, d Deps) error {
	now := d.Now().UTC().Truncate(time.Second)
	tmpl := &x509.RevocationList{
		Number:     big.NewInt(st.NextCRLNumber),
		ThisUpdate: now,
		NextUpdate: now.AddDate(0, 0, cfg.Root.CRLValidityDays),
	}
	for _, r := range st.Revoked {
		sn, err := serial.Parse(r.Serial)
		if err != nil {
			return err
		}
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{
			SerialNumber: sn, RevocationTime: r.Time, ReasonCode: r.Reason,
		})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, rootCert, rootKey)
	if err != nil {
		return fmt.Errorf("ceremony: sign root CRL %d: %w", st.NextCRLNumber, err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return err
	}
	if err := crl.CheckSignatureFrom(rootCert); err != nil {
		return fmt.Errorf("ceremony: root CRL does not verify: %w", err)
	}
	if err := lintCRL(der); err != nil {
		return fmt.Errorf("ceremony: root CRL: %w", err)
	}
	// The number is used up before the CRL is written: a crash in between
	// skips a number but never reuses one (RFC 5280 §5.2.3: "monotonically
	// increasing sequence numbers").
	st.NextCRLNumber++
	if err := writeState(cfg, st); err != nil {
		return err
	}
	numbered := filepath.Join(cfg.OutDir, fmt.Sprintf("root-%d.crl", tmpl.Number.Int64()))
	if err := writeFile(numbered, der, 0o644); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(cfg.OutDir, "root.crl"), der, 0o644); err != nil {
		return err
	}
	ev.CRLs = append(ev.CRLs, CRLRecord{
		Number: tmpl.Number.Int64(), SHA256: sha256Hex(der), ThisUpdate: tmpl.ThisUpdate, NextUpdate: tmpl.NextUpdate,
		Entries: len(tmpl.RevokedCertificateEntries), File: rel(cfg, numbered),
	})
	return nil
}

// caLinter lints the root, the issuing CAs and root CRLs with every zlint
// lint (less lint.PublicOnly). No notice is accepted.
var caLinter = sync.OnceValues(func() (*lint.Linter, error) { return lint.New(lint.Options{}) })

// rootLinter accepts one notice: the root lacks digitalSignature because
// the offline root never signs OCSP responses; the issuing CAs' status is
// published on the root CRL only. That CRL covers CA certificates only.
var rootLinter = sync.OnceValues(func() (*lint.Linter, error) {
	return lint.New(lint.Options{AcceptNotices: []string{"n_ca_digital_signature_not_set"}, Config: lint.CACRLConfig})
})

func lintRoot(der []byte) error {
	l, err := rootLinter()
	if err != nil {
		return err
	}
	return l.CheckCertificate(der)
}

func lintCA(der []byte) error {
	l, err := caLinter()
	if err != nil {
		return err
	}
	return l.CheckCertificate(der)
}

func lintCRL(der []byte) error {
	l, err := rootLinter()
	if err != nil {
		return err
	}
	return l.CheckRevocationList(der)
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func writeCert(cfg *Config, ev *Event, name string, c *x509.Certificate) error {
	pemFile := filepath.Join(cfg.OutDir, name+".pem")
	if err := writeFile(pemFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}), 0o644); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(cfg.OutDir, name+".crt"), c.Raw, 0o644); err != nil {
		return err
	}
	ev.Certificates = append(ev.Certificates, CertRecord{
		Name: name, Subject: c.Subject.String(), Issuer: c.Issuer.String(), Serial: serial.Hex(c.SerialNumber),
		SHA256: sha256Hex(c.Raw), SPKISHA256: sha256Hex(c.RawSubjectPublicKeyInfo),
		NotBefore: c.NotBefore, NotAfter: c.NotAfter, File: rel(cfg, pemFile),
	})
	return nil
}

func writeState(cfg *Config, st *State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return writeFile(filepath.Join(cfg.OutDir, "state.json"), append(b, '\n'), 0o644)
}

// writeFile writes atomically: a temporary file, fsync, rename, fsync dir.
func writeFile(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("ceremony: write %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("ceremony: write %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("ceremony: write %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func rel(cfg *Config, path string) string {
	if r, err := filepath.Rel(cfg.OutDir, path); err == nil {
		return r
	}
	return path
}

func marshalSPKI(pub crypto.PublicKey) ([]byte, error) { return x509.MarshalPKIXPublicKey(pub) }
