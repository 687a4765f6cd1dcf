package runcmd

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/config"
)

// shellify makes the script cloud-init's util.shellify makes of items: a
// "#!/bin/sh" line, then one line per item, a string as written, a list as
// its words each in single quotes (a quote inside is closed, escaped and
// reopened), joined by spaces.
// A null item (a YAML comment left as an item) is skipped. A word is the
// str() Python gives its value (3.5, True, None, 2024-01-02). What
// cloud-init cannot shellify (an item that is a number or a mapping) is an
// error naming the item by position and line, never by content.
func shellify(key string, items []*yaml.Node) (string, error) {
	var b strings.Builder
	b.WriteString("#!/bin/sh\n")
	for i, item := range items {
		item = deref(item)
		switch item.Kind {
		case yaml.ScalarNode:
			switch kind, _ := pyScalar(item); kind {
			case pyNone:
				continue
			case pyStrKind:
				b.WriteString(item.Value)
				b.WriteByte('\n')
			default:
				return "", fmt.Errorf("%s[%d] (line %d): a %s is not a command (quote it to make it one)", key, i, item.Line, kind)
			}
		case yaml.SequenceNode:
			for j, w := range item.Content {
				w = deref(w)
				if w.Kind != yaml.ScalarNode {
					return "", fmt.Errorf("%s[%d][%d] (line %d): a command's words must be plain values", key, i, j, w.Line)
				}
				if j > 0 {
					b.WriteByte(' ')
				}
				_, s := pyScalar(w)
				b.WriteString("'" + strings.ReplaceAll(s, "'", `'\''`) + "'")
			}
			b.WriteByte('\n')
		default:
			return "", fmt.Errorf("%s[%d] (line %d): a command is a string or a list of words", key, i, item.Line)
		}
	}
	return b.String(), nil
}

// check reports what shellify would refuse as errors and words that are
// not strings as warnings: cloud-init's schema flags them and its runtime
// runs their str().
func check(source, key string, v *yaml.Node) []config.Diagnostic {
	v = deref(v)
	if v.Kind != yaml.SequenceNode {
		return nil // the type check reports it
	}
	var out []config.Diagnostic
	add := func(n *yaml.Node, p string, sev config.Severity, msg string) {
		out = append(out, config.Diagnostic{Source: source, Line: n.Line, Column: n.Column, Path: p, Severity: sev, Message: msg})
	}
	for i, item := range v.Content {
		item = deref(item)
		p := fmt.Sprintf("%s[%d]", key, i)
		switch item.Kind {
		case yaml.ScalarNode:
			// yaml.v3 reads yes/on/010 as strings; PyYAML, and so
			// cloud-init, does not.
			if kind, _ := pyScalar(item); kind != pyStrKind && kind != pyNone && item.Tag == "!!str" {
				add(item, p, config.SeverityError, fmt.Sprintf("cloud-init reads this as a %s, not a command (quote it)", kind))
			}
		case yaml.SequenceNode:
			for j, w := range item.Content {
				w = deref(w)
				if w.Kind != yaml.ScalarNode {
					add(w, fmt.Sprintf("%s[%d]", p, j), config.SeverityError, "expected string or number or boolean, got a "+nodeKind(w))
					continue
				}
				if kind, _ := pyScalar(w); kind != pyStrKind {
					add(w, fmt.Sprintf("%s[%d]", p, j), config.SeverityWarning,
						fmt.Sprintf("a %s, not a string: run as Python's str() of it (3.5, True, None, 2024-01-02), as cloud-init does; quote it to say so", kind))
				}
			}
		}
	}
	return out
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	}
	return "value"
}

// deref follows a YAML alias.
func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}
