package userdata

import (
	"bytes"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Describe says what a part is without quoting it: index, name, type, kind,
// where it came from and the shape of its body. User data carries secrets and
// this ends up in logs, so it never contains a byte of the body.
func Describe(p Part) string {
	s := partLabel(p.Index, p.Filename, p.ContentType) + " " + p.Kind.String()
	if p.Template {
		s += ", rendered from a jinja template"
	}
	if p.Source != "" {
		s += ", included from " + p.Source
	}
	return s + ": " + shape(p.Body)
}

// shape summarises a body by its size and form only, e.g.
// "text, 34 bytes, 1 line, first line 33 chars" or
// "binary, 16384 bytes (99% non-printable)".
func shape(b []byte) string {
	if len(b) == 0 {
		return "empty"
	}
	bad := 0
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if (r == utf8.RuneError && n == 1) || (r < 0x20 && r != '\t' && r != '\n' && r != '\r') || r == 0x7f {
			bad += n
		}
		i += n
	}
	if bad*100 > len(b)*5 { // over 5%: not something a person wrote
		return fmt.Sprintf("binary, %s (%d%% non-printable)", plural(len(b), "byte"), bad*100/len(b))
	}
	lines := bytes.Count(b, []byte("\n"))
	if b[len(b)-1] != '\n' {
		lines++
	}
	first, _, _ := bytes.Cut(b, []byte("\n"))
	first = bytes.TrimSuffix(first, []byte("\r"))
	return fmt.Sprintf("text, %s, %s, first line %s", plural(len(b), "byte"), plural(lines, "line"),
		plural(utf8.RuneCount(first), "char"))
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return strconv.Itoa(n) + " " + unit + "s"
}

// safeName quotes a filename for a message: escaped, at most 64 bytes.
func safeName(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return strconv.Quote(s)
}

// safeType shows a content type; one that is not a plain token/token (it came
// from a header anyone can write) is quoted and cut like a filename.
func safeType(s string) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || bytes.IndexByte([]byte("/.+-_!#$&^"), c) >= 0) {
			return safeName(s)
		}
	}
	if len(s) > 80 {
		return safeName(s)
	}
	return s
}
