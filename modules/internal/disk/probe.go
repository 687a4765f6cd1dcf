package disk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/ec2init/ec2init/agent/sys"
)

// Signature is what blkid's low-level probe finds on a device: a
// filesystem (or swap, LVM, RAID member: Type) and a partition table
// (PTType).
type Signature struct {
	Type, Label, UUID, PTType string
}

// Empty reports whether nothing was found: no filesystem, no partition
// table.
func (s Signature) Empty() bool { return s.Type == "" && s.PTType == "" }

// String says what was found, for logs: `ext4 filesystem labelled "data"`.
func (s Signature) String() string {
	var parts []string
	if s.Type != "" {
		t := s.Type + " signature"
		if s.Label != "" {
			t += fmt.Sprintf(" labelled %q", s.Label)
		}
		parts = append(parts, t)
	}
	if s.PTType != "" {
		parts = append(parts, s.PTType+" partition table")
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, " and ")
}

// probeTimeout bounds one blkid run.
const probeTimeout = time.Minute

// Probe reports what the device at the root path dev holds, from
// `blkid -p` (the on-disk signatures, not a cache). Any doubt is an error:
// a device that cannot be read, blkid missing or failing, output it does
// not write when it finds nothing. Callers treat an error as "in use".
func (v View) Probe(ctx context.Context, dev string) (Signature, error) {
	hp, err := v.HostPath(dev)
	if err != nil {
		return Signature{}, err
	}
	// blkid says "nothing found" (exit 2) for a device it cannot open as
	// well: reading a byte first tells the two apart.
	if err := v.readable(dev); err != nil {
		return Signature{}, err
	}
	var out bytes.Buffer
	res, err := v.env.Runner.Run(ctx, sys.Cmd{
		Name:    "blkid",
		Argv:    []string{"blkid", "-p", "-o", "export", hp},
		Env:     map[string]string{"LANG": "C"},
		Output:  &out,
		Timeout: probeTimeout,
	})
	if err != nil {
		return Signature{}, fmt.Errorf("probing %s: %w", dev, err)
	}
	text := strings.TrimSpace(out.String())
	switch res.ExitCode {
	case 0:
	case 2:
		if text == "" {
			return Signature{}, nil
		}
		return Signature{}, fmt.Errorf("probing %s: blkid: %s", dev, firstLine(text))
	default:
		// 8: more than one signature (ambivalent): certainly not empty.
		return Signature{}, fmt.Errorf("probing %s: blkid exited %d: %s", dev, res.ExitCode, firstLine(text))
	}
	return parseExport(dev, text)
}

// readable opens the device and reads its first byte.
func (v View) readable(dev string) error {
	full, err := v.env.Root.Path(dev)
	if err != nil {
		return err
	}
	f, err := os.Open(full)
	if err != nil {
		return fmt.Errorf("probing %s: %w", dev, err)
	}
	defer f.Close()
	if _, err := f.Read(make([]byte, 1)); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("probing %s: %w", dev, err)
	}
	return nil
}

// parseExport reads blkid's KEY=value lines (values backslash-escaped).
func parseExport(dev, text string) (Signature, error) {
	var s Signature
	for _, line := range strings.Split(text, "\n") {
		k, val, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return Signature{}, fmt.Errorf("probing %s: unexpected blkid output %q", dev, firstLine(line))
		}
		val = unbackslash(val)
		switch k {
		case "TYPE":
			s.Type = val
		case "LABEL":
			s.Label = val
		case "UUID":
			s.UUID = val
		case "PTTYPE":
			s.PTType = val
		}
	}
	return s, nil
}

func unbackslash(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// FirstLine is the first line of command output, trimmed and bounded, for
// error messages.
func FirstLine(s string) string { return firstLine(s) }
