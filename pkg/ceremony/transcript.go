package ceremony

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/certmill/certmill/pkg/hsm"
)

// Event is one ceremony operation as the transcript records it.
type Event struct {
	Operation    string       `json:"operation"`
	Hierarchy    string       `json:"hierarchy"`
	Ceremony     string       `json:"ceremony"`
	Started      time.Time    `json:"started"`
	Finished     time.Time    `json:"finished"`
	Host         string       `json:"host"`
	Custodians   []string     `json:"custodians"` // present (unlock) or given a share (init)
	Keys         []KeyRecord  `json:"keys,omitempty"`
	Certificates []CertRecord `json:"certificates,omitempty"`
	CRLs         []CRLRecord  `json:"crls,omitempty"`
	Files        []string     `json:"share_files,omitempty"`
}

// KeyRecord is a key made in this operation.
type KeyRecord struct {
	Token      string        `json:"token"`
	Label      string        `json:"label"`
	Algorithm  hsm.Algorithm `json:"algorithm"`
	SPKISHA256 string        `json:"spki_sha256"`
}

// CertRecord is a certificate signed in this operation.
type CertRecord struct {
	Name       string    `json:"name"`
	Subject    string    `json:"subject"`
	Issuer     string    `json:"issuer"`
	Serial     string    `json:"serial"`
	SHA256     string    `json:"sha256"`
	SPKISHA256 string    `json:"spki_sha256"`
	NotBefore  time.Time `json:"not_before"`
	NotAfter   time.Time `json:"not_after"`
	File       string    `json:"file"`
}

// CRLRecord is a CRL signed in this operation.
type CRLRecord struct {
	Number     int64     `json:"number"`
	SHA256     string    `json:"sha256"`
	ThisUpdate time.Time `json:"this_update"`
	NextUpdate time.Time `json:"next_update"`
	Entries    int       `json:"entries"`
	File       string    `json:"file"`
}

func (ev *Event) addKey(token string, k *hsm.Key) {
	spki, err := marshalSPKI(k.Public())
	fp := ""
	if err == nil {
		fp = sha256Hex(spki)
	}
	ev.Keys = append(ev.Keys, KeyRecord{Token: token, Label: k.Label(), Algorithm: k.Algorithm(), SPKISHA256: fp})
}

// finish stamps the event and appends it to both transcripts.
func finish(cfg *Config, st *State, ev *Event, d Deps) error {
	ev.Finished = d.Now().UTC()
	ev.Host, _ = os.Hostname()
	var events []Event
	jf := filepath.Join(cfg.OutDir, "transcript.json")
	if b, err := os.ReadFile(jf); err == nil {
		if err := json.Unmarshal(b, &events); err != nil {
			return fmt.Errorf("ceremony: transcript.json is damaged: %w", err)
		}
	}
	events = append(events, *ev)
	b, err := json.MarshalIndent(events, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFile(jf, append(b, '\n'), 0o644); err != nil {
		return err
	}
	tf := filepath.Join(cfg.OutDir, "transcript.txt")
	old, _ := os.ReadFile(tf)
	return writeFile(tf, append(old, ev.Text()...), 0o644)
}

// Text renders the event for people: to read aloud, print and sign.
func (ev *Event) Text() []byte {
	var b bytes.Buffer
	line := strings.Repeat("=", 72)
	fmt.Fprintf(&b, "%s\n%s ceremony: %s\n%s\n", line, ev.Hierarchy, ev.Operation, line)
	fmt.Fprintf(&b, "ceremony id:  %s\n", ev.Ceremony)
	fmt.Fprintf(&b, "host:         %s\n", ev.Host)
	fmt.Fprintf(&b, "started:      %s\n", ev.Started.Format(time.RFC3339))
	fmt.Fprintf(&b, "finished:     %s\n", ev.Finished.Format(time.RFC3339))
	who := "present"
	if ev.Operation == "init" {
		who = "given a share"
	}
	fmt.Fprintf(&b, "custodians %s: %s\n", who, strings.Join(ev.Custodians, ", "))
	for _, k := range ev.Keys {
		fmt.Fprintf(&b, "\nkey %s on token %s (%s)\n  SPKI SHA-256 %s\n", k.Label, k.Token, k.Algorithm, colons(k.SPKISHA256))
	}
	for _, c := range ev.Certificates {
		fmt.Fprintf(&b, "\ncertificate %s (%s)\n  subject  %s\n  issuer   %s\n  serial   %s\n  valid    %s to %s\n  SHA-256  %s\n  SPKI     %s\n",
			c.Name, c.File, c.Subject, c.Issuer, c.Serial, c.NotBefore.Format(time.RFC3339), c.NotAfter.Format(time.RFC3339), colons(c.SHA256), colons(c.SPKISHA256))
	}
	for _, c := range ev.CRLs {
		fmt.Fprintf(&b, "\nroot CRL number %d (%s), %d entries\n  this update %s, next update %s\n  SHA-256  %s\n",
			c.Number, c.File, c.Entries, c.ThisUpdate.Format(time.RFC3339), c.NextUpdate.Format(time.RFC3339), colons(c.SHA256))
	}
	if len(ev.Files) > 0 {
		fmt.Fprintf(&b, "\nshare files (hand each to its custodian, then delete them here):\n")
		for _, f := range ev.Files {
			fmt.Fprintf(&b, "  %s\n", f)
		}
	}
	fmt.Fprintf(&b, "\nsigned by the custodians present: ______________________________\n\n")
	return b.Bytes()
}

func colons(h string) string {
	var parts []string
	for i := 0; i+2 <= len(h); i += 2 {
		parts = append(parts, strings.ToUpper(h[i:i+2]))
	}
	return strings.Join(parts, ":")
}
