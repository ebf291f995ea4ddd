package tenant

import (
	"strings"
	"testing"
)

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	s, err := NewSet([]*Tenant{
		{Name: "acme", TokenSHA256: HashToken("tok-a"), Issuers: map[string][]string{"manufacturing": {"device"}}},
		{Name: "globex", TokenSHA256: HashToken("tok-g")},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		header string
		want   string
	}{
		{"Bearer tok-a", "acme"},
		{"Bearer tok-g", "globex"},
		{"Bearer tok-x", ""},
		{"bearer tok-a", "acme"},
		{"BEARER  tok-a", "acme"},
		{"Bearer tok-a extra", ""},
		{"Bearertok-a", ""},
		{"Bearer ", ""},
		{"tok-a", ""},
		{"Basic dG9rLWE=", ""},
		{"", ""},
	}
	for _, tc := range tests {
		got := s.Authenticate([]byte(tc.header))
		if (got == nil && tc.want != "") || (got != nil && got.Name != tc.want) {
			t.Errorf("%q: %v, want %q", tc.header, got, tc.want)
		}
	}
	a := s.Authenticate([]byte("Bearer tok-a"))
	if !a.Allowed("manufacturing", "device") || a.Allowed("manufacturing", "gateway") || a.Allowed("firmware", "device") {
		t.Fatal("Allowed is wrong")
	}
}

func TestNewSetRefuses(t *testing.T) {
	t.Parallel()
	_, err := NewSet([]*Tenant{
		{Name: "a.b", TokenSHA256: HashToken("x")},
		{Name: "ok", TokenSHA256: "the-token-itself"},
		{Name: "ok2", TokenSHA256: HashToken("x")},
	})
	for _, want := range []string{`"a.b"`, "64 hex digits", "share a token"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NewSet: %v, want it to name %s", err, want)
		}
	}
}
