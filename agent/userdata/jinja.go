package userdata

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Vars supplies the instance data "## template: jinja" parts see, shaped
// like cloud-init's instance-data.json ({"v1": {...}, "ds": {...},
// "merged_cfg": {...}}).
type Vars interface {
	TemplateData() map[string]any
}

// VarsMap is instance data shaped like cloud-init's instance-data.json.
type VarsMap map[string]any

// TemplateData returns m as cloud-init's convert_jinja_instance_data hands
// it to jinja: every key holding '-' or '.' also under an alias with '_'
// (meta-data is meta_data, availability-zone is availability_zone), and the
// keys of v1 (and any vN) copied to the top level ({{ region }}). m itself
// is not changed.
func (m VarsMap) TemplateData() map[string]any {
	out, _ := aliased(map[string]any(m), true).(map[string]any)
	return out
}

var aliasRe = strings.NewReplacer("-", "_", ".", "_")

// aliased deep-copies v, adding cloud-init's key aliases to every map.
func aliased(v any, top bool) any {
	switch x := v.(type) {
	case VarsMap:
		return aliased(map[string]any(x), top)
	case map[string]any:
		out := make(map[string]any, len(x))
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys) // as cloud-init: sorted, so a clash resolves the same way every time
		for _, k := range keys {
			out[k] = aliased(x[k], false)
		}
		for _, k := range keys {
			if a := aliasRe.Replace(k); a != k {
				out[a] = out[k]
			}
		}
		if top {
			for _, k := range keys {
				if sub, ok := out[k].(map[string]any); ok && isVersionKey(k) {
					for sk, sv := range sub {
						out[sk] = sv
					}
				}
			}
		}
		return out
	case map[string]string:
		m := make(map[string]any, len(x))
		for k, s := range x {
			m[k] = s
		}
		return aliased(m, false)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = aliased(e, false)
		}
		return out
	case float64:
		// JSON has one number type; instance data's integers are Python ints
		// in cloud-init and print without ".0".
		if x == float64(int64(x)) && x < 1<<53 && x > -(1<<53) {
			return int64(x)
		}
		return x
	case []string:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = e
		}
		return out
	}
	return v
}

// isVersionKey is cloud-init's r"v\d+$".
func isVersionKey(k string) bool {
	if len(k) < 2 || k[0] != 'v' {
		return false
	}
	_, err := strconv.Atoi(k[1:])
	return err == nil && !strings.ContainsAny(k[1:], "+-")
}

// MissingVarPrefix is what cloud-init renders in place of an undefined
// variable (cloudinit/templater.py MISSING_JINJA_PREFIX), followed by the
// variable's last name.
const MissingVarPrefix = "CI_MISSING_JINJA_VAR/"

// Compiled on first use, as every regexp of this package: every ec2init
// process links it, not all parse user data (issue #15).
var (
	jinjaHeader = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?i)^##\s*template:\s*jinja\s*$`) })
	missingRe   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(regexp.QuoteMeta(MissingVarPrefix) + `[^\s]+`) })
)

// Limits bound one template's rendering: templates come from the user data
// and run inside the boot.
type Limits struct {
	MaxOutput int64         // bytes a template may produce
	Timeout   time.Duration // wall time of one render
	MaxSteps  int           // loop iterations of one render (range items, for bodies)
}

// DefaultLimits are far beyond what real user data renders (EC2 caps user
// data at 16 KiB) and small enough not to stall a boot.
var defaultLimits = Limits{MaxOutput: 4 << 20, Timeout: 5 * time.Second, MaxSteps: 1_000_000}

// render fills a jinja part and classifies the result the way cloud-init's
// jinja handler does: only #cloud-config (and -jsonp) and #! scripts are run
// from a template; anything else becomes KindUnknown. Undefined variables
// render as cloud-init renders them and are warned about by name. index is
// the part's index, for errors.
func render(p Part, vars Vars, index int) (Part, error) {
	return renderWith(p, vars, index, defaultLimits)
}

func renderWith(p Part, vars Vars, index int, lim Limits) (Part, error) {
	fail := func(line int, err error) (Part, error) {
		return p, &PartError{Part: index, Filename: p.Filename, ContentType: p.ContentType, Line: line, Err: err}
	}
	body := p.Body[leadingSpace(p.Body):]
	first, rest, _ := bytes.Cut(body, []byte("\n"))
	if !jinjaHeader().Match(bytes.TrimRight(first, "\r")) {
		return fail(1, fmt.Errorf(`%w: the first line must be "## template: jinja"`, ErrTemplate))
	}
	rest = toLF(rest)
	// Jinja drops one trailing newline and cloud-init puts "\n" back.
	addNL := bytes.HasSuffix(rest, []byte("\n"))
	rest = trimEOL(rest)
	out, err := execTemplate(rest, vars.TemplateData(), lim)
	if err != nil {
		var te *templateError
		line := 0
		if errors.As(err, &te) && te.line > 0 {
			line = te.line + 1 // +1: the header line
		}
		return fail(line, err)
	}
	if addNL {
		out = append(out, '\n')
	}
	p.Body, p.Template = out, true
	if names := missingNames(out); len(names) > 0 {
		p.warns = append(p.warns, warned{WarnUndefined,
			"template variables not defined (rendered as " + MissingVarPrefix + "<name>, as cloud-init does): " + strings.Join(names, ", ")})
	}
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

// WarnUndefined: a jinja part uses variables the instance data does not
// define (cloud-init's "Could not render jinja template variables").
const WarnUndefined WarnCode = "undefined-variable"

// missingNames are the undefined variables in out, as cloud-init finds them
// (by the marker in the rendered text), each once, in order.
func missingNames(out []byte) []string {
	var names []string
	seen := map[string]bool{}
	for _, m := range missingRe().FindAll(out, -1) {
		n := string(m[len(MissingVarPrefix):])
		if len(n) > 64 {
			n = n[:64] + "..."
		}
		if !seen[n] {
			seen[n] = true
			names = append(names, strconv.Quote(n))
		}
	}
	return names
}

// toLF turns \r\n and \r into \n, as Jinja's newline handling does.
func toLF(b []byte) []byte {
	if !bytes.Contains(b, []byte("\r")) {
		return b
	}
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	return bytes.ReplaceAll(b, []byte("\r"), []byte("\n"))
}

// RenderTemplate renders a module's template (a "## template: jinja" file
// a user supplies, such as ntp's config.template) with data, in the same
// sandbox as user-data parts: no file access, bounded output and time.
// Errors name the line in src; undefined variables render as cloud-init
// renders them.
func RenderTemplate(src []byte, data map[string]any) ([]byte, error) {
	body := src[leadingSpace(src):]
	first, rest, _ := bytes.Cut(body, []byte("\n"))
	if !jinjaHeader().Match(bytes.TrimRight(first, "\r")) {
		return nil, fmt.Errorf(`%w: line 1: the first line must be "## template: jinja"`, ErrTemplate)
	}
	rest = toLF(rest)
	addNL := bytes.HasSuffix(rest, []byte("\n"))
	out, err := execTemplate(trimEOL(rest), data, defaultLimits)
	if err != nil {
		var te *templateError
		if errors.As(err, &te) && te.line > 0 {
			return nil, fmt.Errorf("line %d: %w", te.line+1, err)
		}
		return nil, err
	}
	if addNL {
		out = append(out, '\n')
	}
	return out, nil
}
