package userdata

import (
	"encoding/json"
	"testing"
)

// Expected values are what Python's email package returns for the same input.
func TestDecodeTransfer(t *testing.T) {
	tests := []struct{ name, cte, in, want string }{
		{"qp soft breaks and hex", "quoted-printable", "caf=C3=A9 =\r\nlong=\nline =3d =e2=98=95", "café longline = ☕"},
		{"qp bad escapes kept", "quoted-printable", "a=zz b=4 c==d e=", "a=zz b=4 c=d e"},
		{"base64 padded", "base64", "aGk=\n", "hi"},
		{"base64 missing padding", "BASE64 ", "aGk", "hi"},
		{"base64 junk skipped", "base64", "a*G\tk=", "hi"},
		{"base64 data after padding ignored", "base64", "aGk=aGk=", "hi"},
		{"base64 one char too many: left as is", "base64", "aGkha", "aGkha"},
		{"7bit untouched", "7bit", "=41", "=41"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := entity{hdr: []header{{"Content-Transfer-Encoding", tt.cte}}, body: []byte(tt.in)}
			if got := string(decodeTransfer(e)); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestKindText(t *testing.T) {
	for k := KindUnknown; k <= KindPartHandler; k++ {
		b, err := json.Marshal(k)
		if err != nil {
			t.Fatal(err)
		}
		var back Kind
		if err := json.Unmarshal(b, &back); err != nil || back != k {
			t.Errorf("%s: round trip gave %v, %v", b, back, err)
		}
	}
	if Kind(99).String() != "Kind(99)" {
		t.Errorf("out of range kind: %s", Kind(99))
	}
	var k Kind
	if err := k.UnmarshalText([]byte("nope")); err == nil {
		t.Error("unknown kind accepted")
	}
}
