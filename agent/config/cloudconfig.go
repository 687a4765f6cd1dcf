package config

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// Doc is one cloud-config document and where it came from ("user data
// part 1 \"config.yaml\"", or a file name), so every message can point at
// its source, line and column.
type Doc struct {
	Source string
	Root   *yaml.Node // a mapping node; nil for an empty document
	// MergeType is the part's Merge-Type MIME header, "" without one.
	MergeType string
}

// ParseError is a cloud-config document that cannot be read: YAML syntax,
// or not a mapping. Line is 0 when the parser gave none.
type ParseError struct {
	Source       string
	Line, Column int
	Msg          string
}

func (e *ParseError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s", e.Source, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.Source, e.Line, e.Column, e.Msg)
}

// Diagnostic presents the error like validation findings.
func (e *ParseError) Diagnostic() Diagnostic {
	return Diagnostic{Source: e.Source, Line: e.Line, Column: e.Column, Severity: SeverityError, Message: e.Msg}
}

// yamlLine is a yaml.v3 error's line and message. The package's regexps
// compile on first use: every ec2init process links it (issue #15).
var yamlLine = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^line (\d+): (.*)$`) })

// yamlQuoted is the value yaml.v3 quotes in a type error ("cannot unmarshal
// !!int `3141592...` into string"): the first bytes of a password, maybe.
var yamlQuoted = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile("\\s*`[^`]*`") })

// decodeMessage is a decode error's text without the values yaml.v3 quotes
// (a type error names the value's tag, which is enough).
func decodeMessage(err error) string {
	return yamlQuoted().ReplaceAllString(strings.TrimPrefix(err.Error(), "yaml: "), "")
}

// ParseDoc parses one cloud-config document. A syntax error names the
// source and line; a document that is not a mapping is an error too.
func ParseDoc(source string, data []byte) (Doc, error) {
	var n yaml.Node
	if err := yaml.Unmarshal(data, &n); err != nil {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		pe := &ParseError{Source: source, Msg: msg}
		if m := yamlLine().FindStringSubmatch(msg); m != nil {
			pe.Line, _ = strconv.Atoi(m[1])
			pe.Column, pe.Msg = 1, m[2]
		}
		return Doc{}, pe
	}
	if len(n.Content) == 0 {
		return Doc{Source: source}, nil
	}
	root := n.Content[0]
	if root.Kind != yaml.MappingNode {
		return Doc{}, &ParseError{Source: source, Line: root.Line, Column: root.Column, Msg: "cloud-config must be a mapping of keys"}
	}
	normalize(root)
	return Doc{Source: source, Root: root}, nil
}

// Value is one merged top-level key: its YAML and the document it came
// from (the last one to set it).
type Value struct {
	Node   *yaml.Node
	Source string
	// KeyLine is the line of the key itself, for messages about the key.
	KeyLine, KeyColumn int
}

// CloudConfig is the merge of every cloud-config document of the user
// data, in order.
type CloudConfig struct {
	values map[string]Value
}

// Merge combines docs as cloud-init merges the cloud-config parts of user
// data, each into the merge of the ones before it, by the part's mergers:
// its merge_how (or merge_type) key, then its Merge-Type MIME header
// (Doc.MergeType), e.g. "list(append)+dict(recurse_array)+str()"; without
// either, "dict(replace)+list()+str()", under which a later document's key
// replaces an earlier one's whole. See merger.go.
func Merge(docs ...Doc) *CloudConfig {
	c := &CloudConfig{values: map[string]Value{}}
	for _, d := range docs {
		if d.Root == nil {
			continue
		}
		m := docMergers(d)
		if !m.hasDict {
			// cloud-init has no merger for the part's mapping: it keeps
			// what the earlier parts gave (ValidateDoc warns).
			continue
		}
		c.mergeDoc(d, m, false)
	}
	return c
}

// mergeDoc merges d's keys into c by mergers m. A key c lacks is d's; a
// null deletes where m allows it; otherwise the values merge. A merged key
// takes d's source when its value changed, unless keepSource (the system
// config, merged from the highest priority down, keeps that file's).
func (c *CloudConfig) mergeDoc(d Doc, m mergers, keepSource bool) {
	for i := 0; i+1 < len(d.Root.Content); i += 2 {
		k, v := d.Root.Content[i], d.Root.Content[i+1]
		if k.Value == "merge_how" || k.Value == "merge_type" {
			continue
		}
		prev, ok := c.values[k.Value]
		if !ok {
			c.values[k.Value] = Value{Node: v, Source: d.Source, KeyLine: k.Line, KeyColumn: k.Column}
			continue
		}
		if dv := deref(v); dv.Kind == yaml.ScalarNode && dv.Tag == "!!null" && m.dict.allowDelete {
			delete(c.values, k.Value)
			continue
		}
		merged := m.dictValue(prev.Node, v)
		switch {
		case keepSource:
			prev.Node = merged
			c.values[k.Value] = prev
		case merged != prev.Node:
			c.values[k.Value] = Value{Node: merged, Source: d.Source, KeyLine: k.Line, KeyColumn: k.Column}
		}
	}
}

// Keys lists the merged top-level keys, sorted.
func (c *CloudConfig) Keys() []string {
	out := make([]string, 0, len(c.values))
	for k := range c.values {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Get returns the merged value of key.
func (c *CloudConfig) Get(key string) (Value, bool) {
	v, ok := c.values[key]
	return v, ok
}

// Has reports whether any document set key.
func (c *CloudConfig) Has(key string) bool {
	_, ok := c.values[key]
	return ok
}

// Decode decodes key into v (a pointer to the module's typed config). It
// returns false when the key is absent. Errors name source and line.
func (c *CloudConfig) Decode(key string, v any) (bool, error) {
	val, ok := c.values[key]
	if !ok {
		return false, nil
	}
	if err := val.Node.Decode(v); err != nil {
		return true, fmt.Errorf("%s:%d: %s: %s", val.Source, val.KeyLine, key, decodeMessage(err))
	}
	return true, nil
}
