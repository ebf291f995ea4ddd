// Package shamir splits a secret into n shares of which any m recover it,
// by Shamir's scheme over GF(2^8) with the AES polynomial x^8+x^4+x^3+x+1.
//
// Each byte of the secret is the constant term of its own random polynomial
// of degree m-1; share i holds that polynomial evaluated at x_i, a distinct
// non-zero x-coordinate. Fewer than m shares reveal nothing about the secret,
// which is why a caller must check the recovered secret against a commitment:
// Combine cannot tell m wrong shares from m right ones.
//
// Arithmetic is branch-free on secret data (no log tables), so the time it
// takes does not depend on the shares.
package shamir

import (
	"crypto/rand"
	"errors"
	"fmt"
)

// Sentinel errors callers branch on.
var (
	ErrThreshold = errors.New("shamir: threshold must satisfy 2 <= m <= n <= 255")
	ErrShares    = errors.New("shamir: shares are inconsistent")
	ErrTooFew    = errors.New("shamir: too few shares")
)

// Share is one custodian's piece: its x-coordinate and one y per secret byte.
type Share struct {
	X byte
	Y []byte
}

// Split returns n shares of secret, any m of which recover it.
// The x-coordinates are 1..n. secret must not be empty.
func Split(secret []byte, m, n int) ([]Share, error) {
	if m < 2 || m > n || n > 255 {
		return nil, ErrThreshold
	}
	if len(secret) == 0 {
		return nil, errors.New("shamir: empty secret")
	}
	shares := make([]Share, n)
	for i := range shares {
		shares[i] = Share{X: byte(i + 1), Y: make([]byte, len(secret))}
	}
	coeffs := make([]byte, m) // coeffs[0] is the secret byte
	for j, s := range secret {
		coeffs[0] = s
		if _, err := rand.Read(coeffs[1:]); err != nil {
			return nil, fmt.Errorf("shamir: random coefficients: %w", err)
		}
		for i := range shares {
			shares[i].Y[j] = eval(coeffs, shares[i].X)
		}
	}
	clear(coeffs)
	return shares, nil
}

// Combine recovers the secret from at least two shares by Lagrange
// interpolation at x = 0. Shares must have distinct non-zero X and equal
// lengths. Given fewer shares than the threshold it returns a wrong secret
// without error: verify the result against a commitment.
func Combine(shares []Share) ([]byte, error) {
	if len(shares) < 2 {
		return nil, ErrTooFew
	}
	size := len(shares[0].Y)
	seen := map[byte]bool{}
	for _, s := range shares {
		if s.X == 0 || seen[s.X] || len(s.Y) != size || size == 0 {
			return nil, ErrShares
		}
		seen[s.X] = true
	}
	secret := make([]byte, size)
	for i, si := range shares {
		// Lagrange basis at 0: prod_{j != i} x_j / (x_j - x_i); minus is xor.
		num, den := byte(1), byte(1)
		for j, sj := range shares {
			if i == j {
				continue
			}
			num = mul(num, sj.X)
			den = mul(den, sj.X^si.X)
		}
		basis := mul(num, inv(den))
		for k := range secret {
			secret[k] ^= mul(si.Y[k], basis)
		}
	}
	return secret, nil
}

// eval computes the polynomial with the given coefficients at x (Horner).
func eval(coeffs []byte, x byte) byte {
	var y byte
	for i := len(coeffs) - 1; i >= 0; i-- {
		y = mul(y, x) ^ coeffs[i]
	}
	return y
}

// mul multiplies in GF(2^8) without data-dependent branches.
func mul(a, b byte) byte {
	var p byte
	for range 8 {
		p ^= a & -(b & 1)
		hi := a >> 7
		a = a<<1 ^ 0x1b&-hi
		b >>= 1
	}
	return p
}

// inv returns a^-1 as a^254 (a^255 = 1 for a != 0); inv(0) is 0.
func inv(a byte) byte {
	r := a
	for range 6 {
		r = mul(r, r)
		r = mul(r, a)
	}
	return mul(r, r)
}
