package serial

import (
	"bytes"
	"encoding/asn1"
	"testing"
)

func TestNewIsPositiveSixteenOctets(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 10000 {
		s, err := New()
		if err != nil {
			t.Fatal(err)
		}
		if s.Sign() <= 0 {
			t.Fatalf("serial %s not positive", s)
		}
		der, err := asn1.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		// tag, length, 16 content octets
		if len(der) != 18 || der[2]&0x80 != 0 || der[2] == 0 {
			t.Fatalf("serial %x: DER %x is not 16 content octets", s, der)
		}
		if seen[s.String()] {
			t.Fatalf("repeated serial %x", s)
		}
		seen[s.String()] = true
	}
}

func TestNewFromFixedBits(t *testing.T) {
	t.Parallel()
	all1, _ := newFrom(bytes.NewReader(bytes.Repeat([]byte{0xff}, 16)))
	all0, _ := newFrom(bytes.NewReader(make([]byte, 16)))
	if all1.BitLen() != 127 || all0.BitLen() != 127 {
		t.Fatalf("bit lengths %d %d, want 127", all1.BitLen(), all0.BitLen())
	}
	if _, err := newFrom(bytes.NewReader(nil)); err == nil {
		t.Fatal("short random source accepted")
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{"0x0A:bc", "0abc", true},
		{"7f", "7f", true},
		{"abc", "0abc", true},
		{"000abc", "0abc", true},
		{"000102030405060708090a0b0c0d0e0f1011121314", "0102030405060708090a0b0c0d0e0f1011121314", true},
		{"00", "", false},
		{"xyz", "", false},
		{"", "", false},
		{"0102030405060708090a0b0c0d0e0f101112131415", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			got, err := Parse(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("Parse(%q) err = %v", tc.in, err)
			}
			if tc.ok && Hex(got) != tc.want {
				t.Fatalf("Parse(%q) = %s", tc.in, Hex(got))
			}
		})
	}
}
