package test

import (
	"testing"

	"github.com/certmill/certmill/crlgen"
	"github.com/certmill/certmill/pkg/ceremony"
	"github.com/certmill/certmill/pkg/profile"
	"github.com/certmill/certmill/responder"
	"github.com/certmill/certmill/signer"
)

// TestShippedConfigs loads and validates every configuration file we ship.
func TestShippedConfigs(t *testing.T) {
	t.Parallel()
	if _, err := ceremony.Load("../configs/ceremony.yaml"); err != nil {
		t.Error(err)
	}
	if _, err := profile.Load("../configs/issuers.yaml"); err != nil {
		t.Error(err)
	}
	cg, err := crlgen.Load("../configs/crlgen.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cg.Defaults()
	if err := cg.Validate(); err != nil {
		t.Error(err)
	}
	rc, err := responder.Load("../configs/responder.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rc.Defaults()
	if err := rc.Validate(); err != nil {
		t.Error(err)
	}
	c, err := signer.Load("../configs/signer.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c.Defaults()
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
}
