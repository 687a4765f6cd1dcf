package ec2metadata

import (
	"io"
	"strings"

	"github.com/ec2init/ec2init/agent/imds"
)

// WriteTree prints every leaf of a crawled tree as "path: value", one path
// per line in sorted order; a multi-line value continues on lines indented
// by two spaces so the output stays greppable. Credentials were never
// fetched and print as "(redacted)".
func WriteTree(w io.Writer, t *imds.Tree) error {
	var b strings.Builder
	for _, e := range t.Entries() {
		b.WriteString(e.Path)
		b.WriteString(": ")
		switch {
		case e.Redacted:
			b.WriteString("(redacted: credentials; read with --path)")
		default:
			b.WriteString(strings.ReplaceAll(strings.TrimRight(e.Value, "\n"), "\n", "\n  "))
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}
