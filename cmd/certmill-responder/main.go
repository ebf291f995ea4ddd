// Command certmill-responder answers OCSP (package responder).
//
//	certmill-responder -config responder.yaml [-check-config]
package main

import (
	"context"
	"log/slog"

	"github.com/certmill/certmill/pkg/service"
	"github.com/certmill/certmill/responder"
)

func main() {
	service.Main("responder", responder.Load, func(ctx context.Context, cfg *responder.Config, log *slog.Logger) (service.Service, error) {
		return responder.New(ctx, cfg, responder.Deps{Log: log})
	})
}
