// Command certmill-signer runs the signing service (package signer).
//
//	certmill-signer -config signer.yaml [-check-config]
package main

import (
	"context"
	"log/slog"

	"github.com/certmill/certmill/pkg/service"
	"github.com/certmill/certmill/signer"
)

func main() {
	service.Main("signer", signer.Load, func(ctx context.Context, cfg *signer.Config, log *slog.Logger) (service.Service, error) {
		return signer.New(ctx, cfg, signer.Deps{Log: log})
	})
}
