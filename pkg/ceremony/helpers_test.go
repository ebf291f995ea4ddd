package ceremony_test

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readCRL(t *testing.T, path string) *x509.RevocationList {
	t.Helper()
	der, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	return crl
}

// pemCRL writes the DER CRL at path as PEM, for openssl verify -CRLfile.
func pemCRL(t *testing.T, path string) string {
	t.Helper()
	der, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "crl.pem")
	os.WriteFile(out, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), 0o644)
	return out
}

func sha256Colons(b []byte) string {
	h := sha256.Sum256(b)
	s := strings.ToUpper(hex.EncodeToString(h[:]))
	var parts []string
	for i := 0; i < len(s); i += 2 {
		parts = append(parts, s[i:i+2])
	}
	return strings.Join(parts, ":")
}
