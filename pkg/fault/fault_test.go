//go:build faults

package fault

import "testing"

func TestParse(t *testing.T) {
	m := parse("signer.after-sign=0.25, signer.after-ack=1,bad,zero=0,nan=x")
	if len(m) != 2 || m["signer.after-sign"] != 0.25 || m["signer.after-ack"] != 1 {
		t.Fatalf("parse: %v", m)
	}
	Point("not-listed") // must return
}
