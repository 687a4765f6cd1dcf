package imdssim

import (
	_ "embed"
	"encoding/base64"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

//go:embed default.yaml
var defaultYAML []byte

// Tree is what one instance's metadata service holds: the meta-data/ and
// dynamic/ directories and the optional user data. The zero value is an
// empty tree. A Tree is not safe for concurrent mutation; a Server copies
// the Tree it is given and guards its copy.
type Tree struct {
	root     *node
	userData []byte // nil: the instance has no user data (404)
}

type node struct {
	value    string
	children map[string]*node // non-nil for a directory
}

func (n *node) isDir() bool { return n.children != nil }

func newDir() *node { return &node{children: map[string]*node{}} }

// DefaultTree returns a fresh copy of the built-in example instance (see
// default.yaml), safe for the caller to change.
func DefaultTree() *Tree {
	t, err := Parse("default.yaml", defaultYAML)
	if err != nil {
		// default.yaml is compiled in and covered by tests.
		panic("imdssim: built-in tree: " + err.Error())
	}
	return t
}

// LoadFile reads a tree from a YAML or JSON file (see Parse).
func LoadFile(path string) (*Tree, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("imds data file: %w", err)
	}
	return Parse(path, data)
}

// ParseError is a problem in a data file, located by line when known.
type ParseError struct {
	File string
	Line int // 1-based; 0 when the YAML parser gave none
	Msg  string
	Err  error // underlying cause, if any
}

func (e *ParseError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("imds data file %s: line %d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("imds data file %s: %s", e.File, e.Msg)
}

func (e *ParseError) Unwrap() error { return e.Err }

// yaml.v3 reports syntax errors as plain strings; this recovers the line so
// every error reads the same way.
var yamlLineRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^yaml: line (\d+): (.*)$`) })

// maxDepth bounds nesting, which also stops an alias that contains itself.
const maxDepth = 64

// maxEntries bounds the entries a data file may expand to: aliases let a
// few hundred bytes stand for millions of entries (an alias bomb). Real
// trees hold a few hundred.
const maxEntries = 100_000

// Parse reads a tree from YAML (JSON is YAML). Top-level keys: meta-data
// (required) and dynamic, both mappings; user-data (text) or
// user-data-base64 (binary, e.g. gzip). Inside the mappings, a nested
// mapping is a directory, a scalar is a value (its text as written), and a
// list of scalars is a value of newline-joined lines. A directory key
// "N=name" (public-keys/"0=my-key") is listed so but served at "N/". Errors
// are *ParseError, naming the file (name) and line.
func Parse(name string, data []byte) (*Tree, error) {
	p := parser{file: name}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		pe := &ParseError{File: name, Msg: strings.TrimPrefix(err.Error(), "yaml: "), Err: err}
		if m := yamlLineRE().FindStringSubmatch(err.Error()); m != nil {
			pe.Line, _ = strconv.Atoi(m[1])
			pe.Msg = m[2]
		}
		return nil, pe
	}
	if len(doc.Content) == 0 {
		return nil, p.fail(1, "empty: want a mapping with meta-data")
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return nil, p.fail(top.Line, "want a mapping with meta-data, dynamic, user-data; got %s", kindName(top))
	}
	t := &Tree{root: newDir()}
	seen := map[string]int{}
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], resolve(top.Content[i+1])
		if first, dup := seen[k.Value]; dup {
			return nil, p.fail(k.Line, "duplicate key %q (first at line %d)", k.Value, first)
		}
		seen[k.Value] = k.Line
		switch k.Value {
		case "meta-data", "dynamic":
			if v.Kind != yaml.MappingNode {
				return nil, p.fail(v.Line, "%s must be a mapping (a directory), got %s", k.Value, kindName(v))
			}
			dir, err := p.convert(v, k.Value, 0)
			if err != nil {
				return nil, err
			}
			t.root.children[k.Value] = dir
		case "user-data":
			if _, other := seen["user-data-base64"]; other {
				return nil, p.fail(k.Line, "user-data and user-data-base64 are exclusive")
			}
			if v.Kind != yaml.ScalarNode {
				return nil, p.fail(v.Line, "user-data must be text, got %s", kindName(v))
			}
			if v.Tag != "!!null" {
				t.userData = []byte(v.Value)
			}
		case "user-data-base64":
			if _, other := seen["user-data"]; other {
				return nil, p.fail(k.Line, "user-data and user-data-base64 are exclusive")
			}
			if v.Kind != yaml.ScalarNode {
				return nil, p.fail(v.Line, "user-data-base64 must be base64 text, got %s", kindName(v))
			}
			// Line breaks are allowed so long blobs can be folded.
			b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(v.Value), ""))
			if err != nil {
				return nil, &ParseError{File: name, Line: v.Line, Msg: "user-data-base64: " + err.Error(), Err: err}
			}
			t.userData = b
		default:
			return nil, p.fail(k.Line, "unknown key %q (want meta-data, dynamic, user-data or user-data-base64)", k.Value)
		}
	}
	if t.root.children["meta-data"] == nil {
		return nil, p.fail(top.Line, "no meta-data")
	}
	return t, nil
}

type parser struct {
	file    string
	entries int // converted so far, against maxEntries
}

func (p parser) fail(line int, format string, args ...any) error {
	return &ParseError{File: p.file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// resolve follows aliases (*anchor) to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < maxDepth; i++ {
		n = n.Alias
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return "a value"
	}
	return "unsupported YAML"
}

func (p *parser) convert(n *yaml.Node, path string, depth int) (*node, error) {
	if depth > maxDepth {
		return nil, p.fail(n.Line, "%s: nested more than %d levels (an alias that contains itself?)", path, maxDepth)
	}
	if p.entries++; p.entries > maxEntries {
		return nil, p.fail(n.Line, "%s: more than %d entries (aliases that expand too far?)", path, maxEntries)
	}
	n = resolve(n)
	switch n.Kind {
	case yaml.MappingNode:
		dir := newDir()
		lines := map[string]int{}   // key -> line, for duplicate reports
		indexed := map[string]int{} // "N" -> line of "N" or "N=name"
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Tag == "!!merge" {
				return nil, p.fail(k.Line, "%s: merge keys (<<) are not supported", path)
			}
			name := k.Value
			if k.Kind != yaml.ScalarNode || name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
				return nil, p.fail(k.Line, "%s: key must be a non-empty name without '/'", path)
			}
			if first, dup := lines[name]; dup {
				return nil, p.fail(k.Line, "%s: duplicate key %q (first at line %d)", path, name, first)
			}
			lines[name] = k.Line
			child, err := p.convert(n.Content[i+1], path+"/"+name, depth+1)
			if err != nil {
				return nil, err
			}
			// "0=my-key" and "0" would both answer at .../0/.
			addr := name
			if idx, ok := indexOf(name, child); ok {
				addr = idx
			}
			if first, clash := indexed[addr]; clash {
				return nil, p.fail(k.Line, "%s: key %q is addressed as %q, like the key at line %d", path, name, addr, first)
			}
			indexed[addr] = k.Line
			dir.children[name] = child
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
			item = resolve(item)
			if item.Kind != yaml.ScalarNode {
				return nil, p.fail(item.Line, "%s: a list may hold only values", path)
			}
			vals[i] = item.Value
		}
		return &node{value: strings.Join(vals, "\n")}, nil
	}
	return nil, p.fail(n.Line, "%s: unsupported YAML", path)
}

// indexOf reports whether key names an indexed directory, "N=name" as in
// public-keys/: IMDS lists it as "0=my-key" but serves it only at "0/".
// Leaves keep their literal name, since tag keys may contain '='.
func indexOf(key string, n *node) (string, bool) {
	idx, _, ok := strings.Cut(key, "=")
	if !ok || !n.isDir() || idx == "" {
		return "", false
	}
	for _, c := range idx {
		if c < '0' || c > '9' {
			return "", false
		}
	}
	return idx, true
}

// child finds the entry of dir addressed by seg, as IMDS would. With
// literal, an indexed key also answers to its full name, which lets Set and
// Delete name it either way.
func (n *node) child(seg string, literal bool) (string, *node) {
	if c := n.children[seg]; c != nil {
		if _, ok := indexOf(seg, c); !ok || literal {
			return seg, c
		}
		return "", nil // an indexed key is not served at its listed name
	}
	// Set can make two keys with one index; take the first by name so
	// answers stay deterministic.
	var name string
	var found *node
	for k, c := range n.children {
		if idx, ok := indexOf(k, c); ok && idx == seg && (found == nil || k < name) {
			name, found = k, c
		}
	}
	return name, found
}

func splitPath(path string) []string {
	var segs []string
	for _, s := range strings.Split(path, "/") {
		if s != "" {
			segs = append(segs, s)
		}
	}
	return segs
}

func (t *Tree) lookup(path string, literal bool) *node {
	n := t.root
	if n == nil {
		return nil
	}
	for _, seg := range splitPath(path) {
		if !n.isDir() {
			return nil
		}
		if _, n = n.child(seg, literal); n == nil {
			return nil
		}
	}
	return n
}

// isUserData tells whether path names the user data, which lives beside
// meta-data/ and dynamic/ but is held as bytes.
func isUserData(path string) bool {
	segs := splitPath(path)
	return len(segs) == 1 && segs[0] == "user-data"
}

// Get returns the value at path ("meta-data/placement/region"; slashes at
// either end are ignored), or the listing when path is a directory.
// "user-data" is the user data.
func (t *Tree) Get(path string) (value string, isDir, ok bool) {
	if isUserData(path) {
		return string(t.userData), false, t.userData != nil
	}
	n := t.lookup(path, false)
	if n == nil {
		return "", false, false
	}
	if n.isDir() {
		return strings.Join(n.listing(), "\n"), true, true
	}
	return n.value, false, true
}

// Listing returns the entries of the directory at path as IMDS lists them:
// subdirectories end in '/', except indexed ones ("0=my-key"). ok is false
// when path is missing or is a value.
func (t *Tree) Listing(path string) (entries []string, ok bool) {
	n := t.lookup(path, false)
	if n == nil || !n.isDir() {
		return nil, false
	}
	return n.listing(), true
}

func (n *node) listing() []string {
	out := make([]string, 0, len(n.children))
	for k, c := range n.children {
		if _, indexed := indexOf(k, c); c.isDir() && !indexed {
			k += "/"
		}
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return lessEntry(out[i], out[j]) })
	return out
}

// lessEntry sorts alphabetically, but indexed keys by number, so "10=k"
// follows "9=k" as key indexes do on a real instance.
func lessEntry(a, b string) bool {
	ai, aok := leadingInt(a)
	bi, bok := leadingInt(b)
	if aok && bok && ai != bi {
		return ai < bi
	}
	return strings.TrimSuffix(a, "/") < strings.TrimSuffix(b, "/")
}

func leadingInt(s string) (int, bool) {
	idx, _, ok := strings.Cut(s, "=")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(idx)
	return n, err == nil && n >= 0
}

// Clone returns a deep copy, so one can change without the other.
func (t *Tree) Clone() *Tree {
	c := &Tree{}
	if t.root != nil {
		c.root = t.root.clone()
	}
	if t.userData != nil {
		c.userData = append([]byte{}, t.userData...)
	}
	return c
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

// Set stores value at path ("meta-data/instance-id"), creating directories
// on the way and replacing whatever was there (a value on the way becomes
// a directory). Segments address entries as requests do, so
// "meta-data/public-keys/0/openssh-key" changes the key listed as
// "0=my-key"; a new indexed key is made with its full name
// ("meta-data/public-keys/1=other/openssh-key"). "user-data" sets the
// user data. An empty path does nothing.
func (t *Tree) Set(path, value string) {
	if isUserData(path) {
		t.userData = []byte(value)
		return
	}
	segs := splitPath(path)
	if len(segs) == 0 {
		return
	}
	if t.root == nil {
		t.root = newDir()
	}
	n := t.root
	for _, seg := range segs[:len(segs)-1] {
		name, c := n.child(seg, true)
		if c == nil || !c.isDir() {
			if c == nil {
				name = seg
			}
			c = newDir()
			n.children[name] = c
		}
		n = c
	}
	last := segs[len(segs)-1]
	if name, c := n.child(last, true); c != nil {
		last = name
	}
	n.children[last] = &node{value: value}
}

// Delete removes path and everything below it; "user-data" removes the
// user data. A missing path is not an error.
func (t *Tree) Delete(path string) {
	if isUserData(path) {
		t.userData = nil
		return
	}
	segs := splitPath(path)
	if len(segs) == 0 {
		return
	}
	parent := t.lookup(strings.Join(segs[:len(segs)-1], "/"), true)
	if parent == nil || !parent.isDir() {
		return
	}
	if name, c := parent.child(segs[len(segs)-1], true); c != nil {
		delete(parent.children, name)
	}
}

// UserData returns a copy of the user data, nil when there is none.
func (t *Tree) UserData() []byte {
	if t.userData == nil {
		return nil
	}
	return append([]byte{}, t.userData...)
}

// SetUserData replaces the user data; nil means the instance has none.
func (t *Tree) SetUserData(b []byte) {
	if b == nil {
		t.userData = nil
		return
	}
	t.userData = append([]byte{}, b...)
}
