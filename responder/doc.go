// Package responder will be the OCSP responder, as a library: Config, New, Run(ctx).
// cmd/certmill-responder is its thin main. Tracked in issue 6; nothing here yet.
package responder
