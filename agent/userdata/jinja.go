package userdata

import (
	"bytes"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Vars supplies instance facts to "## template: jinja" parts. Lookup gets the
// dotted path written in the template, e.g. "v1.instance_id" or
// "ds.meta_data.placement.availability_zone".
type Vars interface {
	Lookup(path string) (string, bool)
}

// VarsFunc adapts a function to Vars.
type VarsFunc func(path string) (string, bool)

// Lookup calls f.
func (f VarsFunc) Lookup(path string) (string, bool) { return f(path) }

// VarsMap is instance data shaped like cloud-init's instance-data.json
// ({"v1": {...}, "ds": {"meta_data": {...}}}). As in cloud-init, a path
// segment matches a key with '-' or '.' written as '_' (meta-data is
// meta_data) and v1 keys are also reachable at the top level ({{ region }}).
type VarsMap map[string]any

// Lookup finds path and formats the value as Python would print it (True,
// None, 5). Maps and lists are not values.
func (m VarsMap) Lookup(path string) (string, bool) {
	segs := strings.Split(path, ".")
	if v, ok := lookupPath(map[string]any(m), segs); ok {
		return v, true
	}
	if v1, ok := m["v1"]; ok {
		return lookupPath(v1, segs)
	}
	return "", false
}

func lookupPath(cur any, segs []string) (string, bool) {
	for _, s := range segs {
		var ok bool
		if cur, ok = child(cur, s); !ok {
			return "", false
		}
	}
	return scalar(cur)
}

func child(cur any, key string) (any, bool) {
	var m map[string]any
	switch c := cur.(type) {
	case map[string]any:
		m = c
	case VarsMap:
		m = c
	case map[string]string:
		v, ok := c[key]
		return v, ok
	default:
		return nil, false
	}
	if v, ok := m[key]; ok {
		return v, true
	}
	var aliases []string // sorted, so a clash resolves the same way every time
	for k := range m {
		if strings.NewReplacer("-", "_", ".", "_").Replace(k) == key {
			aliases = append(aliases, k)
		}
	}
	if len(aliases) == 0 {
		return nil, false
	}
	sort.Strings(aliases)
	return m[aliases[0]], true
}

func scalar(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		if x {
			return "True", true
		}
		return "False", true
	case nil:
		return "None", true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case int, int64, int32, uint, uint64, uint32, fmt.Stringer:
		return fmt.Sprint(x), true
	}
	return "", false
}

var (
	jinjaHeader = regexp.MustCompile(`(?i)^##\s*template:\s*jinja\s*$`)
	varPath     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$`)
)

// render fills a jinja part and classifies the result the way cloud-init's
// jinja handler does: only #cloud-config (and -jsonp) and #! scripts are run
// from a template; anything else becomes KindUnknown. Only {{ path.to.var }}
// and {# comments #} are supported: every other construct is an error naming
// the line, never passed through. index is the part's index, for errors.
func render(p Part, vars Vars, index int) (Part, error) {
	fail := func(line int, err error) (Part, error) {
		return p, &PartError{Part: index, Filename: p.Filename, ContentType: p.ContentType, Line: line, Err: err}
	}
	body := p.Body[leadingSpace(p.Body):]
	first, rest, _ := bytes.Cut(body, []byte("\n"))
	if !jinjaHeader.Match(bytes.TrimRight(first, "\r")) {
		return fail(1, fmt.Errorf(`%w: the first line must be "## template: jinja"`, ErrTemplate))
	}
	// Jinja drops one trailing newline and cloud-init puts "\n" back.
	addNL := bytes.HasSuffix(rest, []byte("\n"))
	rest = trimEOL(rest)
	out, line, err := renderTemplate(rest, vars)
	if err != nil {
		return fail(line+1, err) // +1: the header line
	}
	if addNL {
		out = append(out, '\n')
	}
	p.Body, p.Template = out, true
	p.ContentType = typeFromStartsWith(out)
	switch p.ContentType {
	case TypeCloudConfig, TypeCloudConfigJSONP, TypeScript:
		p.Kind = KindOf(p.ContentType)
	case "":
		p.ContentType, p.Kind = TypePlain, KindUnknown
	default:
		p.Kind = KindUnknown
	}
	return p, nil
}

// renderTemplate expands src; on error it returns the 1-based line of src
// where the offending tag starts.
func renderTemplate(src []byte, vars Vars) ([]byte, int, error) {
	var out bytes.Buffer
	line := 1
	for len(src) > 0 {
		j := tagStart(src)
		if j < 0 {
			writeText(&out, src)
			break
		}
		writeText(&out, src[:j])
		line += bytes.Count(src[:j], []byte("\n")) + bytes.Count(src[:j], []byte("\r")) - bytes.Count(src[:j], []byte("\r\n"))
		tag, src2 := src[j:j+2], src[j+2:]
		switch string(tag) {
		case "{%":
			return nil, line, fmt.Errorf("%w: jinja statements ({%% ... %%}) are not supported", ErrTemplate)
		case "{#":
			k := bytes.Index(src2, []byte("#}"))
			if k < 0 {
				return nil, line, fmt.Errorf("%w: comment {# is not closed", ErrTemplate)
			}
			line += bytes.Count(src2[:k], []byte("\n"))
			// cloud-init renders with trim_blocks: a comment eats the line break after it.
			src = src2[k+2:]
			if n := len(src) - len(bytes.TrimPrefix(bytes.TrimPrefix(src, []byte("\r")), []byte("\n"))); n > 0 {
				line++
				src = src[n:]
			}
			continue
		}
		k := bytes.Index(src2, []byte("}}"))
		if k < 0 {
			return nil, line, fmt.Errorf("%w: {{ is not closed", ErrTemplate)
		}
		expr := string(src2[:k])
		v, err := evalExpr(expr, vars)
		if err != nil {
			return nil, line, err
		}
		out.WriteString(v)
		line += strings.Count(expr, "\n")
		src = src2[k+2:]
	}
	return out.Bytes(), line, nil
}

// tagStart finds the next "{{", "{%" or "{#".
func tagStart(b []byte) int {
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '{')
		if j < 0 || i+j+1 >= len(b) {
			return -1
		}
		i += j
		if c := b[i+1]; c == '{' || c == '%' || c == '#' {
			return i
		}
		i++
	}
}

// writeText copies template text, turning \r\n and \r into \n as Jinja does.
func writeText(out *bytes.Buffer, b []byte) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\r')
		if i < 0 {
			out.Write(b)
			return
		}
		out.Write(b[:i])
		out.WriteByte('\n')
		b = b[i+1:]
		if len(b) > 0 && b[0] == '\n' {
			b = b[1:]
		}
	}
}

// evalExpr evaluates what is between {{ and }}: a variable path only.
func evalExpr(expr string, vars Vars) (string, error) {
	e := strings.TrimSpace(expr)
	switch {
	case strings.HasPrefix(expr, "-") || strings.HasPrefix(expr, "+") || strings.HasSuffix(expr, "-") || strings.HasSuffix(expr, "+"):
		return "", fmt.Errorf("%w: whitespace control ({{- -}}) is not supported", ErrTemplate)
	case strings.Contains(e, "|"):
		return "", fmt.Errorf("%w: jinja filters (|) are not supported", ErrTemplate)
	case !varPath.MatchString(e):
		return "", fmt.Errorf("%w: only {{ variable.path }} expressions are supported", ErrTemplate)
	}
	v, ok := vars.Lookup(e)
	if !ok {
		if len(e) > 128 {
			e = e[:128] + "..."
		}
		return "", fmt.Errorf("%w %q", ErrUndefined, e)
	}
	return v, nil
}
