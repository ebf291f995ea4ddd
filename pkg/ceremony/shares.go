package ceremony

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/certmill/certmill/pkg/shamir"
)

// A share file is plain text meant to be printed, sealed in a
// tamper-evident envelope and kept by one custodian; it can be typed back
// in from paper. The check line catches a mistyped or damaged share before
// the root token is even tried:
//
//	certmill custodian share
//	hierarchy: acme-meters
//	ceremony: 3f0c...
//	custodian: alice
//	share: 1 of 5, threshold 3
//	created: 2026-11-25T11:00:00Z
//	data: 0a1b 2c3d ...
//	check: 9f86d081
const shareMagic = "certmill custodian share"

// Share is one custodian's share as read from its file.
type Share struct {
	Hierarchy string
	Ceremony  string // ceremony id, hex
	Custodian string
	Index     int // x-coordinate, 1..N
	Total     int
	Threshold int
	Created   time.Time
	Data      []byte
}

// Sentinel errors of unlocking.
var (
	ErrTooFewShares   = errors.New("ceremony: too few custodian shares")
	ErrForeignShare   = errors.New("ceremony: share of another ceremony")
	ErrSharesMismatch = errors.New("ceremony: shares do not reconstruct this ceremony's secret")
	ErrBadShare       = errors.New("ceremony: unreadable share")
)

func shareCheck(ceremony string, index int, data []byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s|%d|", ceremony, index)
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))[:8]
}

// Marshal renders s as a share file.
func (s Share) Marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintln(&b, shareMagic)
	fmt.Fprintf(&b, "hierarchy: %s\n", s.Hierarchy)
	fmt.Fprintf(&b, "ceremony: %s\n", s.Ceremony)
	fmt.Fprintf(&b, "custodian: %s\n", s.Custodian)
	fmt.Fprintf(&b, "share: %d of %d, threshold %d\n", s.Index, s.Total, s.Threshold)
	fmt.Fprintf(&b, "created: %s\n", s.Created.UTC().Format(time.RFC3339))
	hexData := hex.EncodeToString(s.Data)
	var groups []string
	for i := 0; i < len(hexData); i += 4 {
		groups = append(groups, hexData[i:min(i+4, len(hexData))])
	}
	fmt.Fprintf(&b, "data: %s\n", strings.Join(groups, " "))
	fmt.Fprintf(&b, "check: %s\n", shareCheck(s.Ceremony, s.Index, s.Data))
	return b.Bytes()
}

// ParseShare reads a share file. Errors say which line is wrong but never
// repeat the share's data.
func ParseShare(b []byte) (Share, error) {
	var s Share
	fields := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	first := true
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if first {
			if line != shareMagic {
				return s, fmt.Errorf("%w: first line is not %q", ErrBadShare, shareMagic)
			}
			first = false
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return s, fmt.Errorf("%w: a line has no 'name: value'", ErrBadShare)
		}
		fields[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	if first {
		return s, fmt.Errorf("%w: empty", ErrBadShare)
	}
	for _, k := range []string{"hierarchy", "ceremony", "custodian", "share", "created", "data", "check"} {
		if fields[k] == "" {
			return s, fmt.Errorf("%w: no %s line", ErrBadShare, k)
		}
	}
	s.Hierarchy, s.Ceremony, s.Custodian = fields["hierarchy"], fields["ceremony"], fields["custodian"]
	if _, err := fmt.Sscanf(fields["share"], "%d of %d, threshold %d", &s.Index, &s.Total, &s.Threshold); err != nil {
		return s, fmt.Errorf("%w: share line: want 'I of N, threshold M'", ErrBadShare)
	}
	if s.Index < 1 || s.Index > s.Total || s.Threshold < 2 || s.Threshold > s.Total || s.Total > 255 {
		return s, fmt.Errorf("%w: share %d of %d, threshold %d is impossible", ErrBadShare, s.Index, s.Total, s.Threshold)
	}
	var err error
	if s.Created, err = time.Parse(time.RFC3339, fields["created"]); err != nil {
		return s, fmt.Errorf("%w: created: %v", ErrBadShare, err)
	}
	s.Data, err = hex.DecodeString(strings.ReplaceAll(fields["data"], " ", ""))
	if err != nil || len(s.Data) == 0 {
		return s, fmt.Errorf("%w: data is not hex (a mistyped character?)", ErrBadShare)
	}
	if shareCheck(s.Ceremony, s.Index, s.Data) != strings.ToLower(fields["check"]) {
		return s, fmt.Errorf("%w: check does not match: the data, ceremony or share number was mistyped or damaged", ErrBadShare)
	}
	return s, nil
}

// ReadShares reads share files. A file that fails names itself.
func ReadShares(paths []string) ([]Share, error) {
	var out []Share
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("ceremony: read share: %w", err)
		}
		s, err := ParseShare(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// combine checks shares against the ceremony state and recovers the secret.
func combine(st *State, shares []Share) ([]byte, []string, error) {
	var ss []shamir.Share
	var who []string
	seen := map[int]bool{}
	for _, s := range shares {
		if s.Ceremony != st.Ceremony {
			return nil, nil, fmt.Errorf("%w: %s's share is of ceremony %s (%s), this is %s (%s)",
				ErrForeignShare, s.Custodian, short(s.Ceremony), s.Hierarchy, short(st.Ceremony), st.Hierarchy)
		}
		if seen[s.Index] {
			return nil, nil, fmt.Errorf("ceremony: share %d (%s) given twice", s.Index, s.Custodian)
		}
		seen[s.Index] = true
		ss = append(ss, shamir.Share{X: byte(s.Index), Y: s.Data})
		who = append(who, s.Custodian)
	}
	if len(ss) < st.Threshold {
		return nil, nil, fmt.Errorf("%w: %d given, %d of %d custodians must be present (hint: pass one -share per custodian)",
			ErrTooFewShares, len(ss), st.Threshold, st.Custodians)
	}
	secret, err := shamir.Combine(ss)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrSharesMismatch, err)
	}
	if !st.verifyCommitment(secret) {
		clear(secret)
		return nil, nil, fmt.Errorf("%w: at least one share is wrong or forged", ErrSharesMismatch)
	}
	return secret, who, nil
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func shareFileName(custodian string) string {
	return "share-" + strconv.Quote(custodian)[1:len(strconv.Quote(custodian))-1] + ".txt"
}
