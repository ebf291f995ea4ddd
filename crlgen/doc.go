// Package crlgen will be the CRL generator and CDN origin, as a library: Config, New, Run(ctx).
// cmd/certmill-crlgen is its thin main. Tracked in issue 7; nothing here yet.
package crlgen
