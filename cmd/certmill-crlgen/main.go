// Command certmill-crlgen issues and serves full and delta CRLs (package crlgen).
//
//	certmill-crlgen -config crlgen.yaml [-check-config]
package main

import (
	"context"
	"log/slog"

	"github.com/certmill/certmill/crlgen"
	"github.com/certmill/certmill/pkg/service"
)

func main() {
	service.Main("crlgen", crlgen.Load, func(ctx context.Context, cfg *crlgen.Config, log *slog.Logger) (service.Service, error) {
		return crlgen.New(ctx, cfg, crlgen.Deps{Log: log})
	})
}
