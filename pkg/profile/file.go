package profile

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/certmill/certmill/pkg/config"
)

// File is an issuers file: every issuing CA and its profiles.
type File struct {
	Issuers []*Issuer `yaml:"issuers"`
}

// Validate compiles every issuer and lists every problem.
func (f *File) Validate() error {
	var errs []error
	seen := map[string]bool{}
	for _, iss := range f.Issuers {
		if seen[iss.Name] {
			errs = append(errs, fmt.Errorf("issuers: %q appears twice", iss.Name))
		}
		seen[iss.Name] = true
		if err := iss.Compile(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(f.Issuers) == 0 {
		errs = append(errs, errors.New("issuers: none"))
	}
	return errors.Join(errs...)
}

// Issuer returns the issuer named name, or nil.
func (f *File) Issuer(name string) *Issuer {
	for _, iss := range f.Issuers {
		if iss.Name == name {
			return iss
		}
	}
	return nil
}

// Load reads and validates an issuers file.
func Load(path string) (*File, error) {
	f := &File{}
	if err := config.Load(path, f); err != nil {
		return nil, err
	}
	for _, iss := range f.Issuers {
		if iss.Certificate != "" && !filepath.IsAbs(iss.Certificate) {
			iss.Certificate = filepath.Join(filepath.Dir(path), iss.Certificate)
		}
	}
	return f, nil
}

// LoadCertificate reads the issuer's CA certificate (PEM) from Certificate.
func (iss *Issuer) LoadCertificate() (*x509.Certificate, error) {
	if iss.Certificate == "" {
		return nil, fmt.Errorf("issuer %s: no certificate file named", iss.Name)
	}
	c, err := ReadCertificate(iss.Certificate)
	if err != nil {
		return nil, fmt.Errorf("issuer %s: %w (hint: run certmill-ceremony init first)", iss.Name, err)
	}
	return c, nil
}

// ReadCertificate reads the first PEM CERTIFICATE block of a file.
func ReadCertificate(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}
