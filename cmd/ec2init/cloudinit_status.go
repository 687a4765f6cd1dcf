package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ec2init/ec2init/agent"
	"github.com/ec2init/ec2init/agent/civiews"
	"github.com/ec2init/ec2init/agent/state"
)

// cloud-init's status words.
const (
	ciNotStarted = "not started"
	ciRunning    = "running"
	ciDone       = "done"
	ciDisabled   = "disabled"
	ciError      = "error"
	ciDegraded   = "degraded"
	ciHealthy    = "healthy"
)

// ciStatusDetails is what cloud-init status reports.
type ciStatusDetails struct {
	running, condition string
	bootCode           string
	description        string
	errors             []string
	recoverable        map[string][]string
	lastUpdate         string
	datasource         any // "" with no status at all, nil when none found yet
	v1                 map[string]any
}

// ciBootStatus is cloud-init's boot_status_code and why, from what
// switches ec2init off (agent.Disabled: ec2init's and cloud-init's
// switches, as its units test them); else enabled, ec2init's units playing
// cloud-init's generator's part.
func ciBootStatus(e *env) (code, reason string) {
	root, err := ciRoot(e)
	if err != nil {
		return "unknown", "Systemd generator may not have run yet."
	}
	cmdline := ""
	if b, err := root.ReadFile("/proc/cmdline"); err == nil {
		cmdline = string(b)
	}
	why := agent.Disabled(root, cmdline, e.getenv)
	switch {
	case strings.HasPrefix(why, "/"):
		return "disabled-by-marker-file", "Cloud-init disabled by " + why
	case strings.HasPrefix(why, "KERNEL_CMDLINE"):
		return "disabled-by-environment-variable", "Cloud-init disabled by environment variable KERNEL_CMDLINE=cloud-init=disabled"
	case why != "":
		return "disabled-by-kernel-command-line", "Cloud-init disabled by kernel parameter " + strings.TrimSuffix(why, " on the kernel command line")
	case contains(strings.Fields(cmdline), "cloud-init=enabled"):
		return "enabled-by-kernel-command-line", "Cloud-init enabled by kernel command line cloud-init=enabled"
	}
	return "enabled-by-generator", "Cloud-init enabled by systemd cloud-init-generator"
}

// ciStatusFor reads ec2init's status and says it as cloud-init's status.py
// would from the status.json ec2init writes for it.
func ciStatusFor(e *env, now time.Time, up time.Duration) (ciStatusDetails, error) {
	d := ciStatusDetails{condition: ciHealthy, errors: []string{}, recoverable: map[string][]string{}, datasource: "", v1: map[string]any{}}
	d.bootCode, d.description = ciBootStatus(e)
	bs, err := agent.ReadStatus(agent.Options{Root: e.root, BootID: e.bootID})
	if err != nil {
		return d, err
	}
	running := false
	if bs.Recorded() && bs.Current {
		v1 := civiews.StatusV1(bs.Status, now.Add(-up))
		// Through JSON, as status.py reads the file.
		b, err := json.Marshal(v1)
		if err != nil {
			return d, err
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if err := dec.Decode(&d.v1); err != nil {
			return d, err
		}
		running = bs.Status.State == state.StateRunning
	}
	ds, _ := d.v1["datasource"].(string)
	if _, has := d.v1["datasource"]; has {
		d.datasource = nil
	}
	if ds != "" {
		name, _, _ := strings.Cut(ds, " ")
		d.datasource = strings.ReplaceAll(strings.ToLower(name), "datasource", "")
		d.description = ds
	} else if stage, _ := d.v1["stage"].(string); stage != "" {
		d.description = "Running in stage: " + stage
	}
	latest := 0.0
	keys := make([]string, 0, len(d.v1))
	for k := range d.v1 {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		stage, ok := d.v1[k].(map[string]any)
		if !ok {
			continue
		}
		for _, t := range []string{"start", "finished"} {
			if n, ok := stage[t].(json.Number); ok {
				if f, err := n.Float64(); err == nil && f > latest {
					latest = f
				}
			}
		}
		if errs, ok := stage["errors"].([]any); ok {
			for _, e := range errs {
				d.errors = append(d.errors, fmt.Sprint(e))
			}
		}
		if rec, ok := stage["recoverable_errors"].(map[string]any); ok {
			for level, list := range rec {
				l, _ := list.([]any)
				for _, e := range l {
					d.recoverable[level] = append(d.recoverable[level], fmt.Sprint(e))
				}
			}
		}
	}
	if latest > 0 {
		// status.py reads the stages' seconds since boot as a Unix time.
		sec, frac := math.Modf(latest)
		d.lastUpdate = time.Unix(int64(sec), int64(frac*1e9)).UTC().Format("Mon, 02 Jan 2006 15:04:05 -0700")
	}
	switch {
	case len(d.errors) > 0:
		d.condition = ciError
	case len(d.recoverable) > 0:
		d.condition = ciDegraded
	}
	switch {
	case strings.HasPrefix(d.bootCode, "disabled"):
		d.running = ciDisabled
	case running:
		d.running = ciRunning
	case latest > 0:
		d.running = ciDone
	default:
		d.running = ciNotStarted
	}
	delete(d.v1, "datasource")
	return d, nil
}

// status and extended_status, as status.py translates them.
func (d ciStatusDetails) translate() (string, string) {
	switch {
	case d.condition == ciError:
		return ciError, ciError + " - " + d.running
	case d.condition == ciDegraded && (d.running == ciDone || d.running == ciRunning):
		return d.running, ciDegraded + " " + d.running
	}
	return d.running, d.running
}

func (d ciStatusDetails) dict() map[string]any {
	status, ext := d.translate()
	out := map[string]any{
		"datasource":         d.datasource,
		"boot_status_code":   d.bootCode,
		"status":             status,
		"extended_status":    ext,
		"detail":             d.description,
		"errors":             stringsToAny(d.errors),
		"recoverable_errors": recoverableAny(d.recoverable),
		"last_update":        d.lastUpdate,
	}
	for k, v := range d.v1 {
		out[k] = v
	}
	return out
}

func stringsToAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func recoverableAny(m map[string][]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = stringsToAny(v)
	}
	return out
}

func ciStatusParser(prog string) *ciParser {
	return &ciParser{prog: prog, opts: []ciOpt{
		{names: []string{"--format"}, dest: "format", choices: []string{"json", "tabular", "yaml"}, help: "Specify output format for cloud-id (default: tabular)"},
		{names: []string{"-l", "--long"}, dest: "long", flag: true, help: "Report long format of statuses including run stage name and error messages"},
		{names: []string{"-w", "--wait"}, dest: "wait", flag: true, help: "Block waiting on cloud-init to complete"},
	}}
}

// ciStatus is `cloud-init status`: exit 0 done, 1 error, 2 degraded.
func ciStatus(ctx context.Context, e *env, c ciIO, args []string) error {
	a, done, err := parseSub(c, ciStatusParser(c.prog), args)
	if done {
		return err
	}
	format := a.val("format")
	if format == "" {
		format = "tabular"
	}
	read := func() (ciStatusDetails, error) {
		up, err := uptime()
		if err != nil {
			up = 0
		}
		return ciStatusFor(e, c.now(), up)
	}
	d, err := read()
	if err != nil {
		return &exitError{code: 1, msg: err.Error()}
	}
	for a.flag("wait") && (d.running == ciNotStarted || d.running == ciRunning) {
		if format == "tabular" {
			fmt.Fprint(c.stdout, ".")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
		if d, err = read(); err != nil {
			return &exitError{code: 1, msg: err.Error()}
		}
	}
	// No newline after the dots: cloud-init 24.4 dropped it (scripts read
	// the first line).
	if err := writeCIStatus(c, d, format, a.flag("long")); err != nil {
		return err
	}
	switch d.condition {
	case ciError:
		return &exitError{code: 1}
	case ciDegraded:
		return &exitError{code: 2}
	}
	return nil
}

func writeCIStatus(c ciIO, d ciStatusDetails, format string, long bool) error {
	dict := d.dict()
	var b strings.Builder
	switch format {
	case "json":
		out, err := pyJSON(dict, "  ")
		if err != nil {
			return err
		}
		b.Write(out)
	case "yaml":
		b.WriteString("---\n")
		writeYAML(&b, dict, 0)
		b.WriteString("...\n\n")
	default:
		status, ext := d.translate()
		fmt.Fprintf(&b, "status: %s\n", status)
		if long {
			last := ""
			if d.lastUpdate != "" {
				last = "last_update: " + d.lastUpdate + "\n"
			}
			errs := " []"
			if len(d.errors) > 0 {
				errs = "\n\t- " + strings.Join(d.errors, "\n\t- ")
			}
			rec := " {}"
			if len(d.recoverable) > 0 {
				var parts []string
				for _, k := range sortedKeys(d.recoverable) {
					items := make([]string, len(d.recoverable[k]))
					for i, s := range d.recoverable[k] {
						items[i] = strings.ReplaceAll(s, "\n", " ")
					}
					parts = append(parts, k+":\n\t- "+strings.Join(items, "\n\t- "))
				}
				rec = "\n" + strings.Join(parts, "\n")
			}
			fmt.Fprintf(&b, "extended_status: %s\nboot_status_code: %s\n%sdetail: %s\nerrors:%s\nrecoverable_errors:%s\n",
				ext, d.bootCode, last, d.description, errs, rec)
		}
	}
	_, err := fmt.Fprint(c.stdout, b.String())
	return err
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// pyJSON is Python's json.dumps(v, indent=..., sort_keys=True,
// separators=(",", ": ")), ASCII only, with a final newline (print's).
func pyJSON(v any, indent string) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", indent)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return pyASCII(buf.Bytes()), nil
}

// pyASCII escapes what is not ASCII as \uXXXX (Python's ensure_ascii).
func pyASCII(b []byte) []byte {
	var out bytes.Buffer
	for _, r := range string(b) {
		if r < 0x80 {
			out.WriteRune(r)
			continue
		}
		if r > 0xffff {
			r -= 0x10000
			fmt.Fprintf(&out, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
			continue
		}
		fmt.Fprintf(&out, `\u%04x`, r)
	}
	return out.Bytes()
}

// writeYAML writes v as PyYAML's safe_dump(default_flow_style=False,
// indent=4) does for status's values: sorted mappings, sequences not
// indented under their key, empty ones in flow style, scalars folded past
// column 80.
func writeYAML(b *strings.Builder, v any, indent int) {
	pad := strings.Repeat(" ", indent)
	m, _ := v.(map[string]any)
	for _, k := range sortedKeys(m) {
		key := yamlScalar(k, indent, indent+4)
		b.WriteString(pad + key + ":")
		writeYAMLValue(b, m[k], indent, indent+len(key)+1)
	}
}

// writeYAMLValue writes v after a key or dash ending at column col.
func writeYAMLValue(b *strings.Builder, v any, indent, col int) {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 0 {
			b.WriteString(" {}\n")
			return
		}
		b.WriteString("\n")
		writeYAML(b, x, indent+4)
	case []any:
		if len(x) == 0 {
			b.WriteString(" []\n")
			return
		}
		b.WriteString("\n")
		for _, e := range x {
			b.WriteString(strings.Repeat(" ", indent) + "-")
			if m, ok := e.(map[string]any); ok && len(m) > 0 {
				b.WriteString("\n")
				writeYAML(b, m, indent+4)
				continue
			}
			writeYAMLValue(b, e, indent, indent+1)
		}
	default:
		b.WriteString(" " + yamlScalar(v, col+1, indent+4) + "\n")
	}
}

// yamlScalar is v as PyYAML writes a scalar starting at column col, its
// continuation lines indented by indent.
func yamlScalar(v any, col, indent int) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return strconv.FormatBool(x)
	case json.Number:
		return string(x)
	case float64:
		return civiewsFloat(x)
	case string:
		return yamlString(x, col, indent)
	}
	return yamlString(fmt.Sprint(v), col, indent)
}

func civiewsFloat(f float64) string {
	b, _ := civiews.PyFloat(f).MarshalJSON()
	return string(b)
}

// yamlString is PyYAML's choice for a string: plain when it reads back as
// the same string, else single-quoted; a single space past column 80
// becomes a line break (PyYAML's best_width).
func yamlString(s string, col, indent int) string {
	if s == "" {
		return "''"
	}
	plain := true
	switch strings.ToLower(s) {
	case "null", "~", "true", "false", "yes", "no", "on", "off":
		plain = false
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		plain = false
	}
	if strings.ContainsAny(s[:1], "-?:,[]{}#&*!|>'\"%@` ") || strings.HasSuffix(s, " ") || strings.HasSuffix(s, ":") ||
		strings.Contains(s, ": ") || strings.Contains(s, " #") {
		plain = false
	}
	if strings.ContainsAny(s, "\n\t\r") || !utf8.ValidString(s) {
		q, _ := json.Marshal(s)
		return string(q)
	}
	var out strings.Builder
	if !plain {
		out.WriteByte('\'')
		col++
	}
	runes := []rune(s)
	for i := 0; i < len(runes); i++ {
		r := runes[i]
		if r == ' ' {
			j := i
			for j < len(runes) && runes[j] == ' ' {
				j++
			}
			if j == i+1 && col > 80 && i != 0 && j != len(runes) {
				out.WriteString("\n" + strings.Repeat(" ", indent))
				col = indent
			} else {
				out.WriteString(string(runes[i:j]))
				col += j - i
			}
			i = j - 1
			continue
		}
		if r == '\'' && !plain {
			out.WriteString("''")
			col += 2
			continue
		}
		out.WriteRune(r)
		col++
	}
	if !plain {
		out.WriteByte('\'')
	}
	return out.String()
}
