package config

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/redact"
)

// Kind is the shape a schema expects.
type Kind int

// Schema kinds.
const (
	KindAny Kind = iota
	KindString
	KindBool
	KindInt
	KindList
	KindMap    // any keys, values of Elem
	KindObject // known Fields
	KindOneOf
	KindNull // an explicit null (~), which cloud-init reads as "unset"
)

// Type describes the expected YAML for a key: enough for validation with
// line numbers and for generated documentation.
type Type struct {
	Kind   Kind
	Elem   *Type   // KindList items, KindMap values
	Fields []Field // KindObject
	OneOf  []*Type // KindOneOf alternatives
	Enum   []string
	// Extra permits object keys beyond Fields without a warning.
	Extra bool
}

// Field is one key of an object.
type Field struct {
	Name     string
	Type     *Type
	Required bool
	Default  string
	Doc      string
}

// Constructors keep module schemas short and readable.
func String() *Type             { return &Type{Kind: KindString} }
func Bool() *Type               { return &Type{Kind: KindBool} }
func Int() *Type                { return &Type{Kind: KindInt} }
func Any() *Type                { return &Type{Kind: KindAny} }
func ListOf(t *Type) *Type      { return &Type{Kind: KindList, Elem: t} }
func MapOf(t *Type) *Type       { return &Type{Kind: KindMap, Elem: t} }
func Object(f ...Field) *Type   { return &Type{Kind: KindObject, Fields: f} }
func OneOf(ts ...*Type) *Type   { return &Type{Kind: KindOneOf, OneOf: ts} }
func Enum(vals ...string) *Type { return &Type{Kind: KindString, Enum: vals} }
func Null() *Type               { return &Type{Kind: KindNull} }

// String names the type for messages and docs: "string", "list of
// string", "object", "string or list of string".
func (t *Type) String() string {
	switch t.Kind {
	case KindString:
		if len(t.Enum) > 0 {
			return "one of " + strings.Join(t.Enum, ", ")
		}
		return "string"
	case KindBool:
		return "boolean"
	case KindNull:
		return "null"
	case KindInt:
		return "integer"
	case KindList:
		return "list of " + t.Elem.nested()
	case KindMap:
		return "mapping of " + t.Elem.nested()
	case KindObject:
		return "mapping"
	case KindOneOf:
		names := make([]string, len(t.OneOf))
		for i, o := range t.OneOf {
			names[i] = o.String()
		}
		return strings.Join(names, " or ")
	}
	return "any value"
}

// nested names t inside another type, bracketing alternatives.
func (t *Type) nested() string {
	if t.Kind == KindOneOf {
		return "(" + t.String() + ")"
	}
	return t.String()
}

// Severity of a diagnostic.
type Severity string

// Severities: errors make a part invalid, warnings are reported, info
// says how the input was read (only `schema` gives it).
const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
	SeverityInfo    Severity = "info"
)

// Diagnostic is one finding, located in its source.
type Diagnostic struct {
	Source   string   `json:"source"`
	Line     int      `json:"line"`
	Column   int      `json:"column"`
	Path     string   `json:"path"`
	Severity Severity `json:"severity"`
	Message  string   `json:"message"`
	// Refused: the value must not reach its module even at boot, where
	// schema errors are otherwise warnings (an alias bomb would expand
	// there).
	Refused bool `json:"refused,omitempty"`
}

func (d Diagnostic) String() string {
	loc := d.Source
	if d.Line > 0 {
		loc = fmt.Sprintf("%s:%d:%d", d.Source, d.Line, d.Column)
	}
	if d.Path == "" {
		return fmt.Sprintf("%s: %s: %s", loc, d.Severity, d.Message)
	}
	return fmt.Sprintf("%s: %s: %s: %s", loc, d.Severity, d.Path, d.Message)
}

// Validation follows YAML aliases, so a few bytes can stand for a huge
// tree (an alias bomb: a list of 400 aliases to a mapping of 400 aliases
// to a list of 400 values is 7 KB to read and 6.4*10^7 values to check,
// half a minute). Checking more than checkFactor nodes per node actually
// written, plus checkSlack, is refused instead: total work stays linear in
// the size of the document.
const (
	checkFactor = 16
	checkSlack  = 4096
)

// Validate checks n against t; path names n ("users[0].name").
func Validate(source, path string, n *yaml.Node, t *Type) []Diagnostic {
	written := countNodes(n)
	v := validator{source: source, budget: &budget{left: checkFactor*written + checkSlack}}
	v.check(path, n, t)
	if v.budget.left < 0 {
		return []Diagnostic{{Source: source, Line: n.Line, Column: n.Column, Path: path, Severity: SeverityError,
			Message: fmt.Sprintf("YAML aliases expand %d written values beyond %d checks; not validated (an alias bomb?)",
				written, checkFactor*written+checkSlack), Refused: true}}
	}
	sort.SliceStable(v.out, func(i, j int) bool {
		if v.out[i].Line != v.out[j].Line {
			return v.out[i].Line < v.out[j].Line
		}
		return v.out[i].Column < v.out[j].Column
	})
	return v.out
}

type validator struct {
	source string
	out    []Diagnostic
	budget *budget // shared with the probes of OneOf
}

// budget is the number of nodes a validation may still check.
type budget struct{ left int }

// countNodes counts the nodes written in the document under n, aliases
// counted once, not expanded.
func countNodes(n *yaml.Node) int {
	count := 1
	if n.Kind != yaml.AliasNode {
		for _, c := range n.Content {
			count += countNodes(c)
		}
	}
	return count
}

func (v *validator) add(n *yaml.Node, path string, sev Severity, format string, args ...any) {
	v.out = append(v.out, Diagnostic{Source: v.source, Line: n.Line, Column: n.Column, Path: path, Severity: sev, Message: redact.Text(fmt.Sprintf(format, args...))})
}

func (v *validator) check(path string, n *yaml.Node, t *Type) {
	if v.budget.left--; v.budget.left < 0 {
		return // Validate reports it
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	switch t.Kind {
	case KindAny:
		return
	case KindOneOf:
		for _, alt := range t.OneOf {
			probe := validator{source: v.source, budget: v.budget}
			probe.check(path, n, alt)
			if !hasErrors(probe.out) {
				v.out = append(v.out, probe.out...)
				return
			}
		}
		// When one alternative has the node's shape, its findings say more
		// than "expected A or B".
		var shaped []*Type
		for _, alt := range t.OneOf {
			if sameShape(n, alt) {
				shaped = append(shaped, alt)
			}
		}
		if len(shaped) == 1 {
			v.check(path, n, shaped[0])
			return
		}
		v.add(n, path, SeverityError, "expected %s, got %s", t, describe(path, n))
	case KindString:
		if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
			v.add(n, path, SeverityError, "expected %s, got %s", t, describe(path, n))
			return
		}
		if n.Tag != "!!str" && n.Style == 0 {
			v.add(n, path, SeverityError, "expected %s, got %s (quote it to make it a string)", t, describe(path, n))
			return
		}
		if len(t.Enum) > 0 && !contains(t.Enum, n.Value) {
			v.add(n, path, SeverityError, "expected %s, got %s", t, shownValue(path, n.Value))
		}
	case KindNull:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!null" {
			v.add(n, path, SeverityError, "expected null, got %s", describe(path, n))
		}
	case KindBool:
		if n.Kind != yaml.ScalarNode || !isBool(n) {
			v.add(n, path, SeverityError, "expected boolean (true or false), got %s", describe(path, n))
		}
	case KindInt:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
			v.add(n, path, SeverityError, "expected integer, got %s", describe(path, n))
		}
	case KindList:
		if n.Kind != yaml.SequenceNode {
			v.add(n, path, SeverityError, "expected %s, got %s", t, describe(path, n))
			return
		}
		for i, item := range n.Content {
			v.check(fmt.Sprintf("%s[%d]", path, i), item, t.Elem)
		}
	case KindMap:
		if n.Kind != yaml.MappingNode {
			v.add(n, path, SeverityError, "expected %s, got %s", t, describe(path, n))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			v.check(path+"."+shownKey(n.Content[i].Value), n.Content[i+1], t.Elem)
		}
	case KindObject:
		if n.Kind != yaml.MappingNode {
			v.add(n, path, SeverityError, "expected a mapping, got %s", describe(path, n))
			return
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			seen[k.Value] = true
			f, ok := field(t.Fields, k.Value)
			if !ok {
				if !t.Extra {
					v.add(k, path+"."+shownKey(k.Value), SeverityWarning, "unknown key %s (known: %s)", quotedKey(k.Value), fieldNames(t.Fields))
				}
				continue
			}
			v.check(path+"."+k.Value, val, f.Type)
		}
		for _, f := range t.Fields {
			if f.Required && !seen[f.Name] {
				v.add(n, path, SeverityError, "missing required key %q", f.Name)
			}
		}
	}
}

func sameShape(n *yaml.Node, t *Type) bool {
	switch t.Kind {
	case KindList:
		return n.Kind == yaml.SequenceNode
	case KindMap, KindObject:
		return n.Kind == yaml.MappingNode
	}
	return false
}

func field(fields []Field, name string) (Field, bool) {
	for _, f := range fields {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

func fieldNames(fields []Field) string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.Name
	}
	return strings.Join(names, ", ")
}

// isBool accepts YAML 1.2 booleans and the YAML 1.1 words cloud-init's
// PyYAML reads as booleans, so configs written for it validate.
func isBool(n *yaml.Node) bool {
	if n.Tag == "!!bool" {
		return true
	}
	if n.Style != 0 {
		return false
	}
	switch strings.ToLower(n.Value) {
	case "yes", "no", "on", "off", "y", "n":
		return true
	}
	return false
}

// ParseBool reads a boolean the way isBool accepts it.
func ParseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "yes", "on", "y":
		return true, nil
	case "no", "off", "n":
		return false, nil
	}
	return strconv.ParseBool(s)
}

func hasErrors(ds []Diagnostic) bool {
	for _, d := range ds {
		if d.Severity == SeverityError {
			return true
		}
	}
	return false
}

// HasErrors reports whether any diagnostic is an error.
func HasErrors(ds []Diagnostic) bool { return hasErrors(ds) }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
