package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/schollz/progressbar/v3"
)

// SubmitOptions drive Submit.
type SubmitOptions struct {
	Issuer, Profile string
	Out             string // folder for <name>.pem, chain.pem and summary.json
	BatchSize       int
	Metadata        map[string]string
	Paths           []string
	Progress        bool
	Stderr          io.Writer
}

// Failure is a CSR that got no certificate.
type Failure struct {
	Name   string `json:"name"`
	Index  int    `json:"index"`
	Type   string `json:"type"`
	Reason string `json:"reason"`
}

// Summary is what Submit did; it is also written to summary.json.
type Summary struct {
	Issuer      string            `json:"issuer"`
	Profile     string            `json:"profile"`
	CSRs        int               `json:"csrs"`
	Issued      int               `json:"issued"`
	Failed      int               `json:"failed"`
	Replayed    int               `json:"replayed_batches"`
	Seconds     float64           `json:"seconds"`
	Rate        float64           `json:"certificates_per_second"`
	BatchIDs    []string          `json:"batch_ids"`
	Failures    []Failure         `json:"failures,omitempty"`
	Serials     map[string]string `json:"serials"` // CSR name -> serial
	SummaryFile string            `json:"-"`
}

// Submit reads the CSRs, cuts them into batches, submits each (retrying
// safely), and writes one certificate per CSR, the chain and a summary.
func Submit(ctx context.Context, c *Client, o SubmitOptions) (*Summary, error) {
	csrs, err := ReadCSRs(o.Paths)
	if err != nil {
		return nil, err
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 1000
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, err
	}
	s := &Summary{Issuer: o.Issuer, Profile: o.Profile, CSRs: len(csrs), Serials: map[string]string{}}
	var bar *progressbar.ProgressBar
	if o.Progress {
		bar = progressbar.NewOptions(len(csrs), progressbar.OptionSetWriter(o.Stderr), progressbar.OptionSetDescription("signing"),
			progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("certs"),
			progressbar.OptionSetPredictTime(true), progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
	}
	start := time.Now()
	chainWritten := false
	for lo := 0; lo < len(csrs); lo += o.BatchSize {
		batch := csrs[lo:min(lo+o.BatchSize, len(csrs))]
		key := IdempotencyKey(o.Issuer, o.Profile, batch, o.Metadata)
		r, err := c.SubmitBatch(ctx, o.Issuer, o.Profile, key, o.Metadata, batch)
		if err != nil {
			return s, fmt.Errorf("batch of CSRs %d..%d: %w", lo, lo+len(batch)-1, err)
		}
		s.BatchIDs = append(s.BatchIDs, r.BatchID)
		if r.Replayed {
			s.Replayed++
		}
		if !chainWritten {
			if err := os.WriteFile(filepath.Join(o.Out, "chain.pem"), []byte(r.Chain), 0o644); err != nil {
				return s, err
			}
			chainWritten = true
		}
		for _, res := range r.Results {
			if res.Index < 0 || res.Index >= len(batch) {
				return s, fmt.Errorf("answer names CSR %d of a batch of %d", res.Index, len(batch))
			}
			name := batch[res.Index].Name
			if res.Problem != nil || res.Certificate == "" {
				f := Failure{Name: name, Index: lo + res.Index, Reason: "no certificate"}
				if res.Problem != nil {
					f.Type, f.Reason = res.Problem.Type, res.Problem.Detail
				}
				s.Failures = append(s.Failures, f)
				continue
			}
			if err := os.WriteFile(filepath.Join(o.Out, name+".pem"), []byte(res.Certificate), 0o644); err != nil {
				return s, err
			}
			s.Serials[name] = res.Serial
			s.Issued++
		}
		if bar != nil {
			bar.Add(len(batch))
		}
	}
	if bar != nil {
		bar.Finish()
	}
	s.Failed = len(s.Failures)
	s.Seconds = time.Since(start).Seconds()
	s.Rate = float64(s.Issued) / s.Seconds
	s.SummaryFile = filepath.Join(o.Out, "summary.json")
	b, _ := json.MarshalIndent(s, "", "  ")
	return s, os.WriteFile(s.SummaryFile, append(b, '\n'), 0o644)
}
