package signer_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/certmill/certmill/pkg/problem"
	"github.com/certmill/certmill/signer"
)

// TestListCertificates: a tenant lists its certificates by batch and by
// metadata, page by page, sees a revocation at once (the listing waits
// for the index to hold what the ledger had), and never another tenant's.
func TestListCertificates(t *testing.T) {
	e := newEnv(t, nil)
	body := func(line string, ids ...string) []byte {
		type entry struct {
			CSR      string            `json:"csr"`
			Metadata map[string]string `json:"metadata"`
		}
		var es []entry
		for _, id := range ids {
			es = append(es, entry{deviceCSR(t, p256(t), id), map[string]string{"device_id": id}})
		}
		b, _ := json.Marshal(map[string]any{"metadata": map[string]string{"product_line": line}, "csrs": es})
		return b
	}
	var ids []string
	for i := range 23 {
		ids = append(ids, fmt.Sprintf("MTR-%04d", i))
	}
	a := e.submit(t, "manufacturing", "device", acmeToken, "list-a", body("E350", ids...))
	e.submit(t, "manufacturing", "device", acmeToken, "list-b", body("E450", "MTR-0003", "MTR-9000"))
	e.submit(t, "manufacturing", "device", globexToken, "list-g", body("E350", "GX-0001", "GX-0002"))

	list := func(token, query string) (int, signer.ListResponse, []byte) {
		st, _, b := e.do(t, "GET", "/v1/certificates?"+query, token, "", "", nil)
		var r signer.ListResponse
		if st == 200 {
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatal(err)
			}
		}
		return st, r, b
	}
	// By batch, in pages of 5: every certificate once, then no next.
	seen := map[string]bool{}
	after := ""
	for pages := 0; ; pages++ {
		q := "batch_id=" + a.BatchID + "&limit=5"
		if after != "" {
			q += "&after=" + after
		}
		st, r, b := list(acmeToken, q)
		if st != 200 || pages > 10 {
			t.Fatalf("page %d: %d %s", pages, st, b)
		}
		for _, c := range r.Certificates {
			if seen[c.Serial] || c.BatchID != a.BatchID || c.Tenant != "acme" || c.Certificate != "" {
				t.Fatalf("page %d: %+v (seen %v)", pages, c, seen[c.Serial])
			}
			seen[c.Serial] = true
		}
		if r.Next == "" {
			break
		}
		after = r.Next
	}
	if len(seen) != 23 {
		t.Fatalf("listed %d of the batch's 23", len(seen))
	}
	// By metadata, one tenant only.
	if _, r, _ := list(acmeToken, "metadata.product_line=E350&limit=1000"); len(r.Certificates) != 23 {
		t.Fatalf("acme's E350: %d, want 23", len(r.Certificates))
	}
	if _, r, _ := list(globexToken, "metadata.product_line=E350"); len(r.Certificates) != 2 || r.Certificates[0].Tenant != "globex" {
		t.Fatalf("globex's E350: %+v", r.Certificates)
	}
	if _, r, _ := list(globexToken, "batch_id="+a.BatchID); len(r.Certificates) != 0 {
		t.Fatalf("globex sees acme's batch: %d", len(r.Certificates))
	}
	// One device across product lines, and both filters at once.
	_, r, _ := list(acmeToken, "metadata.device_id=MTR-0003")
	if len(r.Certificates) != 2 {
		t.Fatalf("MTR-0003 in all lines: %d, want 2", len(r.Certificates))
	}
	_, r, _ = list(acmeToken, "metadata.device_id=MTR-0003&metadata.product_line=E350")
	if len(r.Certificates) != 1 || r.Certificates[0].Serial != a.Results[3].Serial || r.Certificates[0].Metadata["product_line"] != "E350" {
		t.Fatalf("MTR-0003 of E350: %+v", r.Certificates)
	}
	// A revocation shows at once.
	if st, _, b := e.do(t, "POST", "/v1/certificates/"+a.Results[3].Serial+"/revoke", acmeToken, "application/json", "", []byte(`{"reason":"keyCompromise"}`)); st != 200 {
		t.Fatalf("revoke: %d %s", st, b)
	}
	_, r, _ = list(acmeToken, "metadata.device_id=MTR-0003&metadata.product_line=E350")
	if len(r.Certificates) != 1 || r.Certificates[0].Status != "revoked" || r.Certificates[0].Reason != "keyCompromise" {
		t.Fatalf("after the revocation: %+v", r.Certificates)
	}
	// Bad requests.
	for _, q := range []string{"", "limit=10", "batch_id=x&limit=0", "batch_id=x&limit=1001", "batch_id=x&after=%%%", "batch_id=x&colour=red", "metadata.plant=Zug", "metadata.device_id=" + url.QueryEscape("a\x01b")} {
		st, _, b := list(acmeToken, q)
		if st != 400 || !strings.Contains(string(b), problem.Prefix+problem.BadRequest) {
			t.Errorf("?%s: %d %s, want 400 and a problem", q, st, b)
		}
	}
	if st, _, _ := list("", "batch_id=x"); st != 401 {
		t.Errorf("no token: %d", st)
	}
	// Metadata that cannot be listed is refused at submission.
	bad, _ := json.Marshal(map[string]any{"metadata": map[string]string{"line\x00": "x"}, "csrs": []map[string]string{{"csr": deviceCSR(t, p256(t), "MTR-1")}}})
	if st, _, b := e.do(t, "POST", "/v1/issuers/manufacturing/profiles/device/batches", acmeToken, "application/json", "bad-md", bad); st != 400 {
		t.Errorf("metadata with a NUL: %d %s", st, b)
	}
}
