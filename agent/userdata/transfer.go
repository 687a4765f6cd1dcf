package userdata

import (
	"encoding/base64"
	"strings"
)

// decodeTransfer undoes Content-Transfer-Encoding like Python's
// get_payload(decode=True): base64 and quoted-printable are decoded, leniently;
// 7bit, 8bit, binary and anything unknown are taken as they are.
func decodeTransfer(e entity) []byte {
	cte, _ := e.get("Content-Transfer-Encoding")
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "base64":
		return decodeBase64(e.body)
	case "quoted-printable":
		return decodeQP(e.body)
	}
	return e.body
}

// decodeBase64 mirrors email._encoded_words.decode_b: try with the padding
// fixed, then as is, then with extra padding; characters outside the alphabet
// are skipped. If nothing works (one character too many) the text is returned
// undecoded, as Python does.
func decodeBase64(b []byte) []byte {
	s := make([]byte, 0, len(b))
	for _, c := range b { // Python joins the lines first
		if c != '\r' && c != '\n' {
			s = append(s, c)
		}
	}
	padded := s
	if pad := len(s) % 4; pad != 0 {
		padded = append(append([]byte(nil), s...), "==="[:4-pad]...)
	}
	if strictBase64(padded) { // the usual case: the fast decoder gives the same bytes
		out := make([]byte, base64.StdEncoding.DecodedLen(len(padded)))
		if n, err := base64.StdEncoding.Decode(out, padded); err == nil {
			return out[:n]
		}
	}
	if out, ok := a2bBase64(s); ok {
		return out
	}
	if out, ok := a2bBase64(append(s, '=', '=')); ok {
		return out
	}
	return s
}

// strictBase64 is ^[A-Za-z0-9+/]*={0,2}$, Python's validate=True check.
func strictBase64(s []byte) bool {
	i := len(s)
	for n := 0; n < 2 && i > 0 && s[i-1] == '='; n++ {
		i--
	}
	for _, c := range s[:i] {
		if b64val(c) < 0 {
			return false
		}
	}
	return true
}

// a2bBase64 is CPython's non-strict binascii.a2b_base64: skip non-alphabet
// bytes, stop at padding that completes a quantum, fail on a partial one.
func a2bBase64(s []byte) ([]byte, bool) {
	out := make([]byte, 0, len(s)*3/4)
	var left byte
	quad, pads := 0, 0
	for _, c := range s {
		if c == '=' {
			if quad >= 2 {
				pads++
				if quad+pads >= 4 {
					return out, true
				}
			}
			continue
		}
		v := b64val(c)
		if v < 0 {
			continue
		}
		pads = 0
		switch quad {
		case 0:
			left = byte(v)
		case 1:
			out = append(out, left<<2|byte(v)>>4)
			left = byte(v) & 0x0f
		case 2:
			out = append(out, left<<4|byte(v)>>2)
			left = byte(v) & 0x03
		case 3:
			out = append(out, left<<6|byte(v))
		}
		quad = (quad + 1) % 4
	}
	return out, quad == 0
}

func b64val(c byte) int { return int(b64table[c]) }

var b64table = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for i, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") {
		t[c] = int8(i)
	}
	return t
}()

// decodeQP is CPython's binascii.a2b_qp: "=XX" (either case) is a byte, "="
// at a line end is a soft break, any other "=" is kept.
func decodeQP(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != '=' {
			out = append(out, c)
			continue
		}
		i++
		switch {
		case i >= len(b): // a trailing "=" is dropped
		case b[i] == '\n' || b[i] == '\r':
			for i < len(b) && b[i] != '\n' {
				i++
			}
		case b[i] == '=':
			out = append(out, '=')
		case i+1 < len(b) && hexval(b[i]) >= 0 && hexval(b[i+1]) >= 0:
			out = append(out, byte(hexval(b[i])<<4|hexval(b[i+1])))
			i++
		default:
			out = append(out, '=')
			i-- // reread this byte as data
		}
	}
	return out
}

func hexval(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
