// Command certmill-responder answers OCSP (package responder).
//
//	certmill-responder -config responder.yaml [-check-config]
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/certmill/certmill/responder"
)

func main() {
	cfgPath := flag.String("config", "responder.yaml", "configuration file (YAML)")
	check := flag.Bool("check-config", false, "validate the configuration and exit")
	flag.Parse()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	cfg, err := responder.Load(*cfgPath)
	if err == nil {
		cfg.Defaults()
		err = cfg.Validate()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "certmill-responder: %v\nhint: fix the configuration; every problem is listed\n", err)
		os.Exit(2)
	}
	if *check {
		fmt.Println("certmill-responder: configuration OK")
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	g, err := responder.New(ctx, cfg, responder.Deps{Log: log})
	if err != nil {
		fmt.Fprintf(os.Stderr, "certmill-responder: %v\n", err)
		os.Exit(1)
	}
	defer g.Close()
	if err := g.Run(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "certmill-responder: %v\n", err)
		os.Exit(1)
	}
}
