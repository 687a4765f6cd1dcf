package userdata

import (
	"bytes"
	"sort"
	"unicode"
	"unicode/utf8"
)

// startsWith maps a part's first characters to its content type: cloud-init's
// handlers table. Matched case-insensitively, longest prefix first, so
// "#include-once" wins over "#include" and "#cloud-config-archive" over
// "#cloud-config". The text/x-shellscript-per-* entries only let cloud-init's
// make-mime accept those types; nobody starts a file with them, but cloud-init
// would classify it so, and so do we.
var startsWith = func() []struct{ prefix, ctype string } {
	t := []struct{ prefix, ctype string }{
		{"#include", TypeInclude},
		{"#include-once", TypeIncludeOnce},
		{"#!", TypeScript},
		{"#cloud-config", TypeCloudConfig},
		{"#part-handler", TypePartHandler},
		{"#cloud-boothook", TypeBoothook},
		{"#cloud-config-archive", TypeArchive},
		{"#cloud-config-jsonp", TypeCloudConfigJSONP},
		{"## template: jinja", TypeJinja},
		{TypeScriptPerBoot, TypeScriptPerBoot},
		{TypeScriptPerInstance, TypeScriptPerInstance},
		{TypeScriptPerOnce, TypeScriptPerOnce},
	}
	sort.SliceStable(t, func(i, j int) bool { return len(t[i].prefix) > len(t[j].prefix) })
	return t
}()

const bom = "\ufeff"

// typeFromStartsWith classifies a body by its first characters, after leading
// whitespace, like cloud-init; "" if nothing matches. It also skips a UTF-8
// byte order mark, which cloud-init does not (a file saved by a Windows editor
// would be silently ignored there).
func typeFromStartsWith(b []byte) string {
	rest := b[leadingSpace(b):]
	if len(rest) > 32 {
		rest = rest[:32] // longer than any prefix
	}
	for _, s := range startsWith {
		if len(rest) >= len(s.prefix) && bytes.EqualFold(rest[:len(s.prefix)], []byte(s.prefix)) {
			return s.ctype
		}
	}
	return ""
}

// leadingSpace counts the bytes of whitespace (as Python's str.lstrip sees it)
// and byte order marks at the start of b.
func leadingSpace(b []byte) int {
	i := 0
	for i < len(b) {
		r, n := utf8.DecodeRune(b[i:])
		if r == '\ufeff' || unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f) {
			i += n
			continue
		}
		break
	}
	return i
}

// normalizeScript makes a script the kernel can execute. cloud-init writes the
// body as is, so a byte order mark or whitespace before "#!" (an indented
// heredoc) gives "Exec format error", and a CRLF "#!" line gives "bad
// interpreter: /bin/sh^M". Only those cases are changed; other scripts, which
// may carry binary payloads after the code, are returned untouched.
func normalizeScript(b []byte) []byte {
	if n := leadingSpace(b); n > 0 && bytes.HasPrefix(b[n:], []byte("#!")) {
		b = b[n:]
	}
	if !bytes.HasPrefix(b, []byte("#!")) {
		return b
	}
	if i := bytes.IndexByte(b, '\n'); i > 0 && b[i-1] == '\r' {
		b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	}
	return b
}

// stripBOM drops a leading byte order mark: YAML and shell would see it as
// content.
func stripBOM(b []byte) []byte { return bytes.TrimPrefix(b, []byte(bom)) }
