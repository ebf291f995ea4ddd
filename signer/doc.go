// Package signer will be the batch signing service, as a library: Config, New, Run(ctx).
// cmd/certmill-signer is its thin main. Tracked in issue 5; nothing here yet.
package signer
