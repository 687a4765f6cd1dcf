package bootstrap

import (
	"bytes"
	"fmt"
	"os"
	"path"

	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/modules"
)

// EnsureDir makes d with perm when it is missing, as cloud-init's
// ensure_dir: an existing directory keeps its mode (Root.MkdirAll would
// reset it).
func EnsureDir(env *modules.Env, d string, perm os.FileMode) error {
	if fi, err := env.Root.Stat(d); err == nil && fi.IsDir() {
		return nil
	}
	return env.Root.MkdirAll(d, perm)
}

// WriteSecret writes a file only root may read (a validation key, CSR
// attributes with a challenge password), its directory made 0755.
func WriteSecret(env *modules.Env, p string, data []byte) error {
	if err := env.Root.MkdirAll(path.Dir(p), 0o755); err != nil {
		return err
	}
	return env.Root.WriteFile(p, data, 0o600, nil)
}

// Present reports whether a setting was given a value: neither absent
// nor null.
func Present(n *yaml.Node) bool { return n.Kind != 0 && n.Tag != "!!null" }

// Get is the value of key in mapping n, or nil.
func Get(n *yaml.Node, key string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// Args reads a tool's arguments setting, key: a list of strings, or one
// string that split turns into arguments; def when it is absent or null.
func Args(n *yaml.Node, key string, def []string, split func(string) []string) ([]string, error) {
	switch {
	case !Present(n):
		return def, nil
	case n.Kind == yaml.ScalarNode:
		return split(n.Value), nil
	case n.Kind == yaml.SequenceNode:
		var args []string
		if err := n.Decode(&args); err != nil {
			return nil, fmt.Errorf("%s: line %d: %w", key, n.Line, err)
		}
		return args, nil
	}
	return nil, fmt.Errorf("%s: line %d: want a list of strings", key, n.Line)
}

// YAML renders mapping n for a tool's configuration file as cloud-init's
// yaml.dump does: block style, indented by indent, without the user's
// comments and anchors (aliases expanded).
func YAML(n *yaml.Node, indent int) ([]byte, error) {
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: want a mapping", n.Line)
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(indent)
	if err := enc.Encode(block(n)); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// block copies n in block style, without comments and anchors.
func block(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode {
		return block(n.Alias)
	}
	c := *n
	c.HeadComment, c.LineComment, c.FootComment, c.Anchor = "", "", "", ""
	if c.Kind == yaml.MappingNode || c.Kind == yaml.SequenceNode {
		c.Style &^= yaml.FlowStyle
	}
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, k := range n.Content {
		c.Content[i] = block(k)
	}
	return &c
}
