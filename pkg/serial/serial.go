// Package serial makes certificate serial numbers that signers never need
// to coordinate: 128 bits of crypto/rand output, positive, and so at most
// 17 octets in DER (RFC 5280 §4.1.2.2 allows 20; CA/B BR §7.1 asks for at
// least 64 bits of CSPRNG output).
package serial

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"math/big"
	"strings"
)

// Bits is the number of random bits in a serial.
const Bits = 128

// New returns a fresh serial: 128 random bits with the top bit cleared and
// bit 126 set, so every serial is positive, non-zero and exactly 16 octets
// of DER content (no leading zero octet is ever needed), which keeps OCSP
// and CRL keys a fixed width. That leaves 126 bits of randomness.
//
// INVARIANT: 0 < serial < 2^127, DER content length 16 octets.
func New() (*big.Int, error) {
	return newFrom(rand.Reader)
}

func newFrom(r io.Reader) (*big.Int, error) {
	var b [Bits / 8]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return nil, fmt.Errorf("serial: read random: %w", err)
	}
	b[0] = b[0]&0x7f | 0x40
	return new(big.Int).SetBytes(b[:]), nil
}

// Hex is the canonical text form: lower-case hex of the DER content, no
// colons, as the API and file names use.
func Hex(s *big.Int) string { return hex.EncodeToString(s.Bytes()) }

// Parse reads a serial written in hex, with or without colons or a 0x
// prefix. It refuses zero, negative and over-20-octet values.
func Parse(s string) (*big.Int, error) {
	t := strings.TrimPrefix(strings.ToLower(strings.ReplaceAll(s, ":", "")), "0x")
	if len(t)%2 == 1 {
		t = "0" + t // a number: leading zeros do not matter
	}
	b, err := hex.DecodeString(t)
	if err != nil || len(b) == 0 {
		return nil, fmt.Errorf("serial: %q is not hex", s)
	}
	n := new(big.Int).SetBytes(b)
	if len(n.Bytes()) > 20 {
		return nil, fmt.Errorf("serial: %q is longer than 20 octets", s)
	}
	if n.Sign() == 0 {
		return nil, fmt.Errorf("serial: zero is not a serial")
	}
	return n, nil
}

// Set is the high half of the serials that share one ledger message: 64
// bits of crypto/rand output (top bit cleared, bit 62 set, as New does).
// Every serial of the set adds 64 fresh random bits of its own, so each
// serial still carries 126 bits of CSPRNG output and 16 octets of DER
// content; a reader finds a serial's set from the serial alone.
type Set [8]byte

// NewSet draws a fresh set prefix.
func NewSet() (Set, error) {
	var s Set
	if _, err := io.ReadFull(rand.Reader, s[:]); err != nil {
		return s, fmt.Errorf("serial: read random: %w", err)
	}
	s[0] = s[0]&0x7f | 0x40
	return s, nil
}

// New returns a fresh serial in the set.
func (s Set) New() (*big.Int, error) {
	var b [Bits / 8]byte
	copy(b[:8], s[:])
	if _, err := io.ReadFull(rand.Reader, b[8:]); err != nil {
		return nil, fmt.Errorf("serial: read random: %w", err)
	}
	return new(big.Int).SetBytes(b[:]), nil
}

// SetOf returns the set of a serial given as its DER content octets, and
// false for a serial of any other shape (16 octets, bit 126 set).
func SetOf(der []byte) (Set, bool) {
	var s Set
	if len(der) != Bits/8 || der[0]&0xc0 != 0x40 {
		return s, false
	}
	copy(s[:], der[:8])
	return s, true
}

// Hex is the set's subject token.
func (s Set) Hex() string { return hex.EncodeToString(s[:]) }
