package config

import (
	"fmt"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/redact"
)

// Diagnostics end up in logs and in the status files, which are more widely
// readable than the user data they describe. So a message names a value's
// type, never the value, when the value sits under a key that can hold a
// secret, or is longer than a short token (a value that long is more likely
// a key or a script than a typo worth quoting back).

// MaxShown is the longest value (in bytes) a message may quote back.
const MaxShown = 32

// secretNames are keys whose values, and everything under them, are never
// quoted: cloud-config's passwords and key material.
var secretNames = map[string]bool{
	"passwd":            true,
	"password":          true,
	"hashed_passwd":     true,
	"plain_text_passwd": true,
	"chpasswd":          true,
	"ssh_keys":          true,
	"validation_key":    true,
	"validation_cert":   true,
	"content":           true, // write_files: a file's content is often a key or a .env
}

// secretParts match any key containing them: "api_key", "rsa_private",
// "auth_token", "client_secret".
var secretParts = []string{"password", "passphrase", "secret", "token", "key", "private", "credential", "cert"}

// IsSecretKey reports whether a key of that name can hold a secret.
func IsSecretKey(name string) bool {
	name = strings.ToLower(name)
	if secretNames[name] {
		return true
	}
	for _, p := range secretParts {
		if strings.Contains(name, p) {
			return true
		}
	}
	return false
}

// IsSecretPath reports whether a diagnostic path ("users[0].passwd",
// "chpasswd.list") passes through a key that can hold a secret.
func IsSecretPath(path string) bool {
	for _, c := range strings.FieldsFunc(path, func(r rune) bool { return r == '.' || r == '[' || r == ']' }) {
		if IsSecretKey(c) {
			return true
		}
	}
	return false
}

// shownKey is a mapping key as a message may name it: itself when short, its
// length otherwise (a long key is likely a value written in the wrong place).
func shownKey(k string) string {
	if len(k) > MaxShown || strings.ContainsAny(k, "\n\r") {
		return fmt.Sprintf("(a %d-byte key)", len(k))
	}
	return k
}

// quotedKey is a key quoted for "unknown key ..." messages.
func quotedKey(k string) string {
	if shown := shownKey(k); shown != k {
		return shown
	}
	return fmt.Sprintf("%q", k)
}

// shownValue is a string value as a message may quote it.
func shownValue(path, v string) string {
	if IsSecretPath(path) || len(v) > MaxShown {
		return fmt.Sprintf("a %d-byte string", len(v))
	}
	return fmt.Sprintf("%q", v)
}

// describe names what n is for a message about path: its type, with its
// value only if short and not under a secret key.
func describe(path string, n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		hide := IsSecretPath(path) || len(n.Value) > MaxShown
		switch n.Tag {
		case "!!null":
			return "nothing (null)"
		case "!!int":
			if hide {
				return "an integer"
			}
			return "integer " + n.Value
		case "!!float":
			if hide {
				return "a number"
			}
			return "number " + n.Value
		case "!!bool":
			if hide {
				return "a boolean"
			}
			return "boolean " + n.Value
		}
		return "string"
	}
	return "unsupported YAML"
}

// minHidden is the shortest secret value ScrubDiagnostics looks for: shorter
// ones would match ordinary words and line numbers.
const minHidden = 4

// ScrubDiagnostics makes findings about the value v of top-level key safe to
// show, whoever wrote them (a module's Checker formats its own messages):
// every value in v that is under a secret key or longer than MaxShown is
// replaced by its length wherever a message quotes it, and every URL is
// redacted (see agent/redact). ds is changed in place and returned.
func ScrubDiagnostics(key string, v *yaml.Node, ds []Diagnostic) []Diagnostic {
	if len(ds) == 0 {
		return ds
	}
	hidden := map[string]bool{}
	collectHidden(v, IsSecretKey(key), hidden, map[seenNode]bool{})
	// Longest first, so a value containing another is replaced whole.
	list := make([]string, 0, len(hidden))
	for s := range hidden {
		list = append(list, s)
	}
	sort.Slice(list, func(i, j int) bool { return len(list[i]) > len(list[j]) })
	for i := range ds {
		msg := ds[i].Message
		for _, s := range list {
			if strings.Contains(msg, s) {
				msg = strings.ReplaceAll(msg, s, fmt.Sprintf("(a %d-byte value)", len(s)))
			}
		}
		ds[i].Message = redact.Text(msg)
	}
	return ds
}

type seenNode struct {
	n      *yaml.Node
	secret bool
}

// collectHidden gathers the values under n to hide; secret says n is under a
// secret key. Each node is walked once per secret-ness, so aliases cannot
// make the walk longer than the document.
func collectHidden(n *yaml.Node, secret bool, out map[string]bool, seen map[seenNode]bool) {
	if n == nil || seen[seenNode{n, secret}] {
		return
	}
	seen[seenNode{n, secret}] = true
	switch n.Kind {
	case yaml.AliasNode:
		collectHidden(n.Alias, secret, out, seen)
	case yaml.ScalarNode:
		if len(n.Value) > MaxShown || (len(n.Value) >= minHidden && secret) {
			out[n.Value] = true
			// A message that quotes the value with %q escapes it.
			if q := fmt.Sprintf("%q", n.Value); q[1:len(q)-1] != n.Value {
				out[q[1:len(q)-1]] = true
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if len(k.Value) > MaxShown {
				out[k.Value] = true
			}
			collectHidden(n.Content[i+1], secret || IsSecretKey(k.Value), out, seen)
		}
	case yaml.SequenceNode, yaml.DocumentNode:
		for _, c := range n.Content {
			collectHidden(c, secret, out, seen)
		}
	}
}
