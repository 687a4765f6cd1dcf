package userdata

import (
	"bytes"
	"strings"
)

// This file splits MIME messages the way Python's email.feedparser (which
// cloud-init uses) does, including its leniency: no header is required, a
// non-header line starts the body, a missing closing boundary is fine.

type header struct{ name, value string }

// entity is one MIME message or part: its headers and its raw (still
// transfer-encoded) body.
type entity struct {
	hdr  []header
	body []byte
}

// get returns the first header with that name, case-insensitively, as
// Python's Message.get does.
func (e entity) get(name string) (string, bool) {
	for _, h := range e.hdr {
		if strings.EqualFold(h.name, name) {
			return h.value, true
		}
	}
	return "", false
}

// mergeType is the part's Merge-Type header (or X-Merge-Type), as
// cloud-init's cloud-config handler reads it; "" without one.
func (e entity) mergeType() string {
	for _, h := range []string{"Merge-Type", "X-Merge-Type"} {
		if v, ok := e.get(h); ok && strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// contentType is Python's get_content_type: the lower-cased type/subtype,
// text/plain if missing or invalid (RFC 2045 5.2).
func (e entity) contentType() string {
	v, ok := e.get("Content-Type")
	if !ok {
		return TypePlain
	}
	return mediaType(v)
}

func mediaType(v string) string {
	if i := strings.IndexByte(v, ';'); i >= 0 {
		v = v[:i]
	}
	v = strings.ToLower(strings.TrimSpace(v))
	if strings.Count(v, "/") != 1 {
		return TypePlain
	}
	return v
}

// filename is Python's get_filename: Content-Disposition's filename, else
// Content-Type's name.
func (e entity) filename() string {
	if v, ok := e.get("Content-Disposition"); ok {
		if f, ok := param(v, "filename"); ok {
			return strings.TrimSpace(f)
		}
	}
	if v, ok := e.get("Content-Type"); ok {
		if f, ok := param(v, "name"); ok {
			return strings.TrimSpace(f)
		}
	}
	return ""
}

// nextLine finds the line starting at i: its end (before the line break) and
// where the next line starts. \r\n, \n and a lone \r all end a line.
func nextLine(b []byte, i int) (end, next int) {
	end = len(b)
	if j := bytes.IndexByte(b[i:], '\n'); j >= 0 {
		end = i + j
	}
	if r := bytes.IndexByte(b[i:end], '\r'); r >= 0 {
		if i+r == end-1 && end < len(b) { // \r\n
			return end - 1, end + 1
		}
		return i + r, i + r + 1 // a lone \r ends the line
	}
	if end < len(b) {
		return end, end + 1
	}
	return end, end
}

// isHeaderLine mirrors feedparser's headerRE: a continuation (leading space
// or tab), a Unix "From " line, or printable non-colon characters then ':'.
func isHeaderLine(line []byte) bool {
	if line[0] == ' ' || line[0] == '\t' || bytes.HasPrefix(line, []byte("From ")) {
		return true
	}
	for _, c := range line {
		if c == ':' {
			return true
		}
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return false
}

// parseEntity splits headers from body. Headers end at a blank line (dropped)
// or at the first line that is not a header (kept: it starts the body).
func parseEntity(b []byte) entity {
	var e entity
	var folded []string // the current header's continuation lines
	flush := func() {
		if len(folded) > 0 {
			e.hdr[len(e.hdr)-1].value += strings.Join(folded, "")
			folded = folded[:0]
		}
	}
	i := 0
	for i < len(b) {
		end, next := nextLine(b, i)
		line := b[i:end]
		if len(line) == 0 { // the blank separator line
			i = next
			break
		}
		if !isHeaderLine(line) {
			break
		}
		i = next
		switch {
		case line[0] == ' ' || line[0] == '\t':
			if len(e.hdr) > 0 { // a continuation as first line is dropped, like Python
				folded = append(folded, string(line))
			}
		case bytes.HasPrefix(line, []byte("From ")):
			// mbox envelope line: not a header
		default:
			c := bytes.IndexByte(line, ':')
			if c == 0 { // no name: Python drops it as a defect
				continue
			}
			flush()
			e.hdr = append(e.hdr, header{
				name:  string(line[:c]),
				value: strings.TrimLeft(string(line[c+1:]), " \t"),
			})
		}
	}
	flush()
	e.body = b[i:]
	return e
}

// multipart is a multipart body split at its boundary lines.
type multipart struct {
	parts   [][]byte // each part's raw text (headers and body)
	started bool     // a first boundary line was seen
	closed  bool     // the closing boundary line was seen
}

// splitMultipart cuts body at lines that are "--boundary" (parts) or
// "--boundary--" (end), optionally followed by spaces or tabs. The line break
// before a boundary line belongs to the boundary (RFC 2046). The preamble
// before the first boundary and the epilogue after the last are dropped, and
// consecutive boundary lines do not make empty parts, as in Python.
func splitMultipart(body []byte, boundary string) multipart {
	var m multipart
	sep := []byte("--" + boundary)
	start := -1 // where the current part's text starts
	for i := 0; i < len(body); {
		end, next := nextLine(body, i)
		if isEnd, ok := boundaryLine(body[i:end], sep); ok {
			if start >= 0 && start < i {
				m.parts = append(m.parts, trimEOL(body[start:i]))
			}
			if isEnd {
				m.closed = true
				return m
			}
			m.started = true
			start = next
		}
		i = next
	}
	if start >= 0 && start < len(body) {
		m.parts = append(m.parts, trimEOL(body[start:]))
	}
	return m
}

func boundaryLine(line, sep []byte) (isEnd, ok bool) {
	if !bytes.HasPrefix(line, sep) {
		return false, false
	}
	rest := line[len(sep):]
	isEnd = bytes.HasPrefix(rest, []byte("--"))
	if isEnd {
		rest = rest[2:]
	}
	if len(bytes.Trim(rest, " \t")) != 0 {
		return false, false
	}
	return isEnd, true
}

// trimEOL drops one trailing line break.
func trimEOL(b []byte) []byte {
	switch {
	case bytes.HasSuffix(b, []byte("\r\n")):
		return b[:len(b)-2]
	case bytes.HasSuffix(b, []byte("\n")), bytes.HasSuffix(b, []byte("\r")):
		return b[:len(b)-1]
	}
	return b
}

// isMIME decides, like cloud-init, whether user data is a MIME message: it
// mentions "MIME-Version:" in its first 4 KiB. We also accept data starting
// with a Content-Type header, which cloud-init would leave unhandled.
func isMIME(b []byte) bool {
	head := b
	if len(head) > 4096 {
		head = head[:4096]
	}
	if bytes.Contains(bytes.ToLower(head), []byte("mime-version:")) {
		return true
	}
	const ct = "content-type:"
	return len(b) >= len(ct) && bytes.EqualFold(b[:len(ct)], []byte(ct))
}
