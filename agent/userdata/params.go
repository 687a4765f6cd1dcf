package userdata

import (
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// param returns a MIME header parameter (boundary, filename, name) the way
// Python's Message.get_param does: ';'-separated, quotes honoured, RFC 2231
// extended (filename*=UTF-8'en'na%C3%AFve.sh) and continued (name*0=...)
// values decoded.
func param(headerValue, name string) (string, bool) {
	type piece struct {
		num     int
		value   string
		encoded bool
	}
	var plain []string
	var ext []piece
	for i, p := range splitParams(headerValue) {
		if i == 0 {
			continue // the value itself (e.g. "attachment")
		}
		k, v, _ := strings.Cut(p, "=")
		k, v = strings.TrimSpace(k), unquote(strings.TrimSpace(v))
		if m := rfc2231Name().FindStringSubmatch(k); m != nil {
			if strings.EqualFold(m[1], name) {
				n, _ := strconv.Atoi(m[2])
				ext = append(ext, piece{n, v, strings.HasSuffix(k, "*")})
			}
			continue
		}
		if strings.EqualFold(k, name) {
			plain = append(plain, v)
		}
	}
	if len(plain) > 0 {
		return plain[0], true
	}
	if len(ext) == 0 {
		return "", false
	}
	sort.SliceStable(ext, func(i, j int) bool { return ext[i].num < ext[j].num })
	var sb strings.Builder
	encoded := false
	for _, p := range ext {
		if p.encoded {
			encoded = true
			if s, err := url.PathUnescape(p.value); err == nil {
				p.value = s
			}
		}
		sb.WriteString(p.value)
	}
	v := sb.String()
	if encoded { // charset'language'value
		if f := strings.SplitN(v, "'", 3); len(f) == 3 {
			v = fromCharset(f[2], f[0])
		}
	}
	return v, true
}

var rfc2231Name = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(\w+)\*(?:([0-9]+)\*?)?$`) })

// splitParams mirrors Python's email.message._parseparam: split on ';'
// outside double quotes (a quote preceded by a backslash does not count),
// lower-case the names. One pass, where Python recounts quotes per ';'.
func splitParams(s string) []string {
	var out []string
	emit := func(f string) {
		if k, v, ok := strings.Cut(f, "="); ok {
			f = strings.ToLower(strings.TrimSpace(k)) + "=" + strings.TrimSpace(v)
		}
		out = append(out, strings.TrimSpace(f))
	}
	start, quotes := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			if i == start || s[i-1] != '\\' {
				quotes++
			}
		case ';':
			if i == start || quotes%2 == 0 {
				emit(s[start:i])
				start, quotes = i+1, 0
			}
		}
	}
	emit(s[start:])
	return out
}

// unquote mirrors email.utils.unquote.
func unquote(s string) string {
	if len(s) > 1 {
		if s[0] == '"' && s[len(s)-1] == '"' {
			return unescapeQuoted.Replace(s[1 : len(s)-1])
		}
		if s[0] == '<' && s[len(s)-1] == '>' {
			return s[1 : len(s)-1]
		}
	}
	return s
}

var unescapeQuoted = strings.NewReplacer(`\\`, `\`, `\"`, `"`)

// fromCharset converts an RFC 2231 value to UTF-8. Only Latin-1 needs work
// (stdlib only); UTF-8, ASCII and unknown charsets are kept as bytes.
func fromCharset(s, charset string) string {
	switch strings.ToLower(charset) {
	case "iso-8859-1", "latin-1", "latin1":
		var sb strings.Builder
		for i := 0; i < len(s); i++ {
			sb.WriteRune(rune(s[i]))
		}
		return sb.String()
	}
	if !utf8.ValidString(s) {
		return strings.ToValidUTF8(s, "\ufffd")
	}
	return s
}
