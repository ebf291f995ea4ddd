package signer

import "testing"

func TestNegotiate(t *testing.T) {
	t.Parallel()
	for accept, want := range map[string]string{
		"":                                  "application/json",
		"application/pkix-cert":             "application/pkix-cert",
		"application/x-pem-file":            "application/x-pem-file",
		"application/pem-certificate-chain": "application/x-pem-file",
		"application/json, application/pkix-cert;q=0.1": "application/json",
		"application/pkix-cert;q=0":                     "application/json",
		"application/pkix-cert, */*":                    "application/pkix-cert",
		"*/*;q=0.5, application/x-pem-file;q=0.6":       "application/x-pem-file",
		"text/html, application/pkix-cert;q=0.9":        "application/pkix-cert",
		"Application/PKIX-Cert":                         "application/pkix-cert",
		"text/html":                                     "application/json",
		"application/pkix-cert;q=2, nonsense;;":         "application/json",
	} {
		if got := negotiate(accept); got != want {
			t.Errorf("Accept %q: %s, want %s", accept, got, want)
		}
	}
}
