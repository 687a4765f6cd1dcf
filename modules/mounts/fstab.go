package mounts

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ec2init/ec2init/modules/internal/disk"
)

// Marker is the mount option that marks ec2init's own fstab lines, as
// comment=cloudconfig marks cloud-init's: mount(8) ignores it, and each run
// replaces the lines that carry it and no other.
const Marker = "comment=ec2init"

// Entry is one fstab line's six fields.
type Entry [6]string

// fstab is /etc/fstab split into the lines ec2init leaves alone (kept
// verbatim, comments and blank lines included) and its own.
type fstab struct {
	foreign []string
	// foreignSpecs maps each foreign entry's fs_spec to its line.
	foreignSpecs map[string]string
	own          []string
}

func parseFstab(text string) fstab {
	f := fstab{foreignSpecs: map[string]string{}}
	text = strings.TrimSuffix(text, "\n")
	if text == "" {
		return f
	}
	for _, line := range strings.Split(text, "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			f.foreign = append(f.foreign, line)
			continue
		}
		if len(fields) >= 4 && hasOption(fields[3], Marker) {
			f.own = append(f.own, line)
			continue
		}
		f.foreign = append(f.foreign, line)
		f.foreignSpecs[disk.Unescape(fields[0])] = line
	}
	return f
}

func hasOption(opts, opt string) bool {
	for _, o := range strings.Split(opts, ",") {
		if o == opt {
			return true
		}
	}
	return false
}

// render is the new fstab: the foreign lines as they were, then ec2init's
// entries.
func (f fstab) render(own []Entry) string {
	var b strings.Builder
	for _, l := range f.foreign {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	for _, e := range own {
		b.WriteString(e.line())
		b.WriteByte('\n')
	}
	return b.String()
}

// line is the entry as fstab spells it, marked as ec2init's.
func (e Entry) line() string {
	opts := e[3]
	if !hasOption(opts, Marker) {
		opts += "," + Marker
	}
	return strings.Join([]string{escape(e[0]), escape(e[1]), e[2], opts, e[4], e[5]}, "\t")
}

// escape spells a field as fstab(5) needs: octal escapes for blanks and
// backslashes.
func escape(s string) string {
	return strings.NewReplacer(`\`, `\134`, " ", `\040`, "\t", `\011`, "\n", `\012`).Replace(s)
}

// fieldName names fstab field i (0-based) in messages.
func fieldName(i int) string {
	switch i {
	case 0:
		return "fs_spec, the device"
	case 1:
		return "fs_file, the mount point"
	case 2:
		return "fs_vfstype"
	case 3:
		return "fs_mntops"
	case 4:
		return "fs_freq"
	default:
		return "fs_passno"
	}
}

// checkField refuses a value that would not stay one field of one fstab
// line, or that a later run would not read back as ec2init's: a line break
// or another control character (a NUL included), blanks outside the first
// two fields (which fstab(5) escapes as \040 and \011), a leading '#' (a
// comment), an empty value. Such a field is never "fixed": it is refused
// with the field named.
func checkField(i int, v string) error {
	if v == "" {
		return errors.New("is empty")
	}
	if v[0] == '#' {
		return errors.New("starts with '#' (fstab would read a comment)")
	}
	for _, c := range v {
		switch {
		case c == '\n' || c == '\r':
			return errors.New("contains a line break")
		case c == 0:
			return errors.New("contains a NUL")
		case (c == ' ' || c == '\t') && i >= 2:
			return errors.New("contains whitespace")
		case c != ' ' && c != '\t' && (c < 0x20 || c == 0x7f):
			return errors.New("contains a control character")
		}
	}
	return nil
}

// fieldError names field i and shows a bounded, quoted prefix of v: a value
// can be long, and the error reaches logs and status.
func fieldError(i int, v string, err error) error {
	shown := v
	if r := []rune(v); len(r) > 40 {
		shown = string(r[:40]) + "..."
	}
	return fmt.Errorf("field %d (%s) %q %w", i+1, fieldName(i), shown, err)
}

// check applies checkField to every field of the entry, whatever its
// source (the cloud-config, its defaults, a device name from IMDS).
func (e Entry) check() error {
	for i, v := range e {
		if err := checkField(i, v); err != nil {
			return fieldError(i, v, err)
		}
	}
	return nil
}
