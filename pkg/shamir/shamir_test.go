package shamir

import (
	"bytes"
	"crypto/rand"
	"testing"
)

func TestFieldInverse(t *testing.T) {
	t.Parallel()
	for a := 1; a < 256; a++ {
		if got := mul(byte(a), inv(byte(a))); got != 1 {
			t.Fatalf("a=%d: a*inv(a) = %d, want 1", a, got)
		}
	}
	// 0x53 * 0xCA = 1 is the FIPS-197 worked example.
	if mul(0x53, 0xca) != 1 {
		t.Fatal("mul(0x53, 0xca) != 1")
	}
}

func TestSplitCombine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		m, n int
	}{
		{"2of2", 2, 2},
		{"3of5", 3, 5},
		{"5of5", 5, 5},
		{"4of10", 4, 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			secret := make([]byte, 32)
			rand.Read(secret)
			shares, err := Split(secret, tc.m, tc.n)
			if err != nil {
				t.Fatal(err)
			}
			// Every window of m consecutive shares recovers the secret.
			for start := 0; start+tc.m <= tc.n; start++ {
				got, err := Combine(shares[start : start+tc.m])
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, secret) {
					t.Fatalf("shares %d..%d: wrong secret", start, start+tc.m)
				}
			}
			// m-1 shares give something else (probability 2^-256 of a match).
			got, err := Combine(shares[:tc.m-1+boolInt(tc.m == 2)])
			if tc.m > 2 && err == nil && bytes.Equal(got, secret) {
				t.Fatal("m-1 shares recovered the secret")
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	if _, err := Split([]byte("x"), 1, 3); err != ErrThreshold {
		t.Fatalf("m=1: %v", err)
	}
	if _, err := Split([]byte("x"), 4, 3); err != ErrThreshold {
		t.Fatalf("m>n: %v", err)
	}
	s, _ := Split([]byte("secret"), 2, 3)
	if _, err := Combine([]Share{s[0], s[0]}); err != ErrShares {
		t.Fatalf("duplicate x: %v", err)
	}
	if _, err := Combine(s[:1]); err != ErrTooFew {
		t.Fatalf("one share: %v", err)
	}
	short := Share{X: s[1].X, Y: s[1].Y[:2]}
	if _, err := Combine([]Share{s[0], short}); err != ErrShares {
		t.Fatalf("short share: %v", err)
	}
}
