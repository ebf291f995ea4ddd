package signer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/certmill/certmill/pkg/client"
)

// TestClientSubmit drives the client library the certmill command uses:
// a folder of CSRs in batches, one bad CSR, files and summary out, and a
// second run that replays instead of issuing.
func TestClientSubmit(t *testing.T) {
	e := newEnv(t, nil)
	in := t.TempDir()
	for i := range 25 {
		os.WriteFile(filepath.Join(in, fmt.Sprintf("MTR-%04d.csr", i)), []byte(deviceCSR(t, p256(t), fmt.Sprintf("MTR-%04d", i))), 0o644)
	}
	os.WriteFile(filepath.Join(in, "broken.csr"), []byte("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"), 0o644)
	c, err := client.New(e.url, acmeToken, "")
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	opts := client.SubmitOptions{Issuer: "manufacturing", Profile: "device", Out: out, BatchSize: 10, Paths: []string{in},
		Metadata: map[string]string{"lot": "L7"}, Progress: true, Stderr: os.Stderr}
	s, err := client.Submit(context.Background(), c, opts)
	if err != nil {
		t.Fatal(err)
	}
	if s.Issued != 25 || s.Failed != 1 || s.Failures[0].Name != "broken" || len(s.BatchIDs) != 3 {
		t.Fatalf("summary: %+v", s)
	}
	for _, f := range []string{"MTR-0000.pem", "MTR-0024.pem", "chain.pem", "summary.json"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Fatal(err)
		}
	}
	before := lastSeq(t, e.ledger)
	s2, err := client.Submit(context.Background(), c, opts)
	if err != nil {
		t.Fatal(err)
	}
	if s2.Replayed != 3 || lastSeq(t, e.ledger) != before {
		t.Fatalf("second run: replayed %d batches, ledger grew by %d", s2.Replayed, lastSeq(t, e.ledger)-before)
	}
	var sum client.Summary
	b, _ := os.ReadFile(filepath.Join(out, "summary.json"))
	json.Unmarshal(b, &sum)
	if sum.Serials["MTR-0003"] != s.Serials["MTR-0003"] {
		t.Fatal("the second run wrote other serials")
	}
}
