// Package configs embeds the shipped configuration files, so that
// certmill-dev runs on them without a checkout.
package configs

import "embed"

// FS holds ceremony.yaml, issuers.yaml, signer.yaml, crlgen.yaml and responder.yaml.
//
//go:embed *.yaml
var FS embed.FS
