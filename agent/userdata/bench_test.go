package userdata

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
)

// base64Part is a part as make-mime writes it: base64 in 76-column lines.
func base64Part(ctype, name, body string) string {
	enc := base64.StdEncoding.EncodeToString([]byte(body))
	var b strings.Builder
	fmt.Fprintf(&b, "Content-Type: %s; charset=\"utf-8\"\nMIME-Version: 1.0\nContent-Transfer-Encoding: base64\n"+
		"Content-Disposition: attachment; filename=\"%s\"\n\n", ctype, name)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\n")
	return b.String()
}

func BenchmarkParse(b *testing.B) {
	script := "#!/bin/sh\n" + strings.Repeat("echo 'a line of a user script'\n", 1014/31)
	// The mix make-mime users send: scripts, a cloud-config and a boothook,
	// ~3 KiB each, ~16 KiB encoded.
	body := "#!/bin/sh\n" + strings.Repeat("echo 'a line of a user script'\n", 96)
	config := "#cloud-config\nruncmd:\n" + strings.Repeat("  - [echo, a line of a command]\n", 96)
	multi := mimeMsg(
		base64Part(TypeScript, "s0.sh", body),
		base64Part(TypeCloudConfig, "config.yaml", config),
		base64Part(TypeBoothook, "hook.sh", "#cloud-boothook\n"+body[len("#!/bin/sh\n"):]),
		base64Part(TypeScript, "s1.sh", body),
	)
	var big []string
	for i := 0; len(strings.Join(big, "")) < 1<<20; i++ {
		big = append(big, fmt.Sprintf("Content-Type: text/cloud-config\n\n#cloud-config\nruncmd:\n%s", strings.Repeat("  - [echo, hello world]\n", 400)))
	}
	bigMsg := mimeMsg(big...)
	cases := []struct {
		name string
		raw  []byte
		size int // bytes of user data, for MB/s: decompressed for gzip
	}{
		{"script-1KiB", []byte(script), len(script)},
		{"multipart-16KiB", multi, len(multi)},
		{"gzip-1MiB", gz(b, bigMsg), len(bigMsg)},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(c.size))
			for b.Loop() {
				if _, err := Parse(c.raw, Options{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
