package imdssim

import (
	_ "embed"
	"encoding/base64"
	"fmt"
	"os"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

//go:embed default.yaml
var defaultYAML []byte

// Tree is a metadata tree: meta-data/ and dynamic/ as nested directories of
// string values, and the optional user data.
type Tree struct {
	root     *node
	userData []byte
}

type node struct {
	value    string
	children map[string]*node // nil for a leaf
}

func (n *node) isDir() bool { return n.children != nil }

func newDir() *node { return &node{children: map[string]*node{}} }

// DefaultTree returns a fresh copy of the built-in example instance.
func DefaultTree() *Tree {
	t, err := Parse("default.yaml", defaultYAML)
	if err != nil {
		panic("imdssim: built-in tree: " + err.Error())
	}
	return t
}

// LoadFile reads a tree from a YAML or JSON file.
func LoadFile(path string) (*Tree, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("imds data file: %w", err)
	}
	return Parse(path, data)
}

// Parse reads a tree from YAML (JSON is YAML). Top-level keys: meta-data
// and dynamic (mappings), user-data (text) or user-data-base64 (binary,
// e.g. gzip). Errors name the file and line.
func Parse(name string, data []byte) (*Tree, error) {
	fail := func(line int, format string, args ...any) error {
		return fmt.Errorf("imds data file %s: line %d: %s", name, line, fmt.Sprintf(format, args...))
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("imds data file %s: %w", name, err)
	}
	t := &Tree{root: newDir()}
	if len(doc.Content) == 0 {
		return nil, fmt.Errorf("imds data file %s: empty: want a mapping with meta-data", name)
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return nil, fail(top.Line, "want a mapping with meta-data, dynamic, user-data")
	}
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		switch k.Value {
		case "meta-data", "dynamic":
			if v.Kind != yaml.MappingNode {
				return nil, fail(v.Line, "%s must be a mapping of paths", k.Value)
			}
			dir, err := convert(v, k.Value, fail)
			if err != nil {
				return nil, err
			}
			t.root.children[k.Value] = dir
		case "user-data":
			if v.Kind != yaml.ScalarNode {
				return nil, fail(v.Line, "user-data must be text")
			}
			t.userData = []byte(v.Value)
		case "user-data-base64":
			b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(v.Value), ""))
			if v.Kind != yaml.ScalarNode || err != nil {
				return nil, fail(v.Line, "user-data-base64 must be base64 text")
			}
			t.userData = b
		default:
			return nil, fail(k.Line, "unknown key %q (want meta-data, dynamic, user-data, user-data-base64)", k.Value)
		}
	}
	if t.root.children["meta-data"] == nil {
		return nil, fail(top.Line, "no meta-data")
	}
	return t, nil
}

func convert(n *yaml.Node, path string, fail func(int, string, ...any) error) (*node, error) {
	switch n.Kind {
	case yaml.MappingNode:
		dir := newDir()
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode || k.Value == "" || strings.Contains(k.Value, "/") {
				return nil, fail(k.Line, "%s: key must be a non-empty name without '/'", path)
			}
			child, err := convert(n.Content[i+1], path+"/"+k.Value, fail)
			if err != nil {
				return nil, err
			}
			dir.children[k.Value] = child
		}
		return dir, nil
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return &node{}, nil
		}
		return &node{value: n.Value}, nil
	case yaml.SequenceNode:
		vals := make([]string, len(n.Content))
		for i, item := range n.Content {
			if item.Kind != yaml.ScalarNode {
				return nil, fail(item.Line, "%s: a list may hold only values", path)
			}
			vals[i] = item.Value
		}
		return &node{value: strings.Join(vals, "\n")}, nil
	default:
		return nil, fail(n.Line, "%s: unsupported YAML (aliases, tags)", path)
	}
}

// Clone returns a deep copy, so a test can change one without the other.
func (t *Tree) Clone() *Tree {
	return &Tree{root: t.root.clone(), userData: append([]byte(nil), t.userData...)}
}

func (n *node) clone() *node {
	c := &node{value: n.value}
	if n.children != nil {
		c.children = make(map[string]*node, len(n.children))
		for k, v := range n.children {
			c.children[k] = v.clone()
		}
	}
	return c
}

// lookup finds path ("meta-data/placement/region"; trailing slash ignored).
// A segment "N" matches a key "N=name", as public keys are addressed.
func (t *Tree) lookup(path string) *node {
	n := t.root
	for _, seg := range strings.Split(strings.Trim(path, "/"), "/") {
		if seg == "" {
			continue
		}
		if !n.isDir() {
			return nil
		}
		child := n.children[seg]
		if child == nil {
			for k, c := range n.children {
				if idx, _, ok := strings.Cut(k, "="); ok && idx == seg {
					child = c
					break
				}
			}
		}
		if child == nil {
			return nil
		}
		n = child
	}
	return n
}

// Get returns the value at path, or the listing when path is a directory.
func (t *Tree) Get(path string) (value string, isDir, ok bool) {
	n := t.lookup(path)
	if n == nil {
		return "", false, false
	}
	if n.isDir() {
		return strings.Join(n.listing(), "\n"), true, true
	}
	return n.value, false, true
}

// listing is a directory's body: sorted names, subdirectories with a
// trailing slash except "N=name" keys, which IMDS lists bare.
func (n *node) listing() []string {
	out := make([]string, 0, len(n.children))
	for k, c := range n.children {
		if c.isDir() && !strings.Contains(k, "=") {
			k += "/"
		}
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// set stores value at path, creating directories on the way.
func (t *Tree) set(path, value string) {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	n := t.root
	for _, seg := range segs[:len(segs)-1] {
		child := n.children[seg]
		if child == nil || !child.isDir() {
			child = newDir()
			n.children[seg] = child
		}
		n = child
	}
	n.children[segs[len(segs)-1]] = &node{value: value}
}

func (t *Tree) remove(path string) {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	parent := t.lookup(strings.Join(segs[:len(segs)-1], "/"))
	if parent != nil && parent.isDir() {
		delete(parent.children, segs[len(segs)-1])
	}
}
