package main

// A small parser that reads arguments, and fails, the way cloud-init's
// argparse parsers do: scripts call `cloud-init` with its flags and rely
// on its exit status 2 and usage on stderr for a mistake.

import (
	"fmt"
	"io"
	"strings"
)

// ciOpt is one optional argument.
type ciOpt struct {
	names   []string // as declared: "-l", "--long"
	dest    string
	flag    bool // store_true
	many    bool // nargs "+"
	appends bool // action "append"
	choices []string
	req     bool
	metavar string
	help    string
}

// ciPos is one positional argument.
type ciPos struct {
	name     string
	optional bool // nargs "?"
	rest     bool // nargs "*"
	help     string
}

// ciParser is one (sub)command's parser.
type ciParser struct {
	prog string // "cloud-init status"
	desc string
	opts []ciOpt
	pos  []ciPos
	// subs are subcommand names and help, in order; when set, the first
	// positional is the subcommand and the rest is its own.
	subs    [][2]string
	subDest string
}

// ciArgs are parsed arguments.
type ciArgs struct {
	vals  map[string]string
	flags map[string]bool
	lists map[string][]string
	pos   map[string][]string
	sub   string
	rest  []string // the subcommand's arguments
	help  bool
}

func (a ciArgs) val(k string) string    { return a.vals[k] }
func (a ciArgs) flag(k string) bool     { return a.flags[k] }
func (a ciArgs) list(k string) []string { return a.lists[k] }
func (a ciArgs) has(k string) bool      { _, ok := a.vals[k]; return ok }
func (a ciArgs) first(k string) string  { return firstOf(a.pos[k]) }
func firstOf(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// ciUsageError is argparse's error: the message, then the parser's help,
// on stderr, exit 2.
type ciUsageError struct {
	p   *ciParser
	msg string
}

func (e *ciUsageError) Error() string { return e.msg }

func (p *ciParser) errorf(format string, a ...any) error {
	return &ciUsageError{p: p, msg: fmt.Sprintf(format, a...)}
}

// optName is argparse's name of an option in messages: its strings
// joined by "/".
func (o ciOpt) optName() string { return strings.Join(o.names, "/") }

func quoteChoices(c []string) string {
	q := make([]string, len(c))
	for i, s := range c {
		q[i] = "'" + s + "'"
	}
	return strings.Join(q, ", ")
}

func (p *ciParser) find(arg string) (*ciOpt, string, bool) {
	name, value, hasValue := strings.Cut(arg, "=")
	if !strings.HasPrefix(arg, "--") {
		// -xVALUE, -x VALUE, or grouped short flags -lw.
		name, value, hasValue = arg[:2], arg[2:], len(arg) > 2
	}
	for i := range p.opts {
		for _, n := range p.opts[i].names {
			if n == name {
				return &p.opts[i], value, hasValue
			}
		}
	}
	if strings.HasPrefix(arg, "--") {
		// argparse accepts an unambiguous prefix of a long option.
		var hit *ciOpt
		for i := range p.opts {
			for _, n := range p.opts[i].names {
				if strings.HasPrefix(n, name) && strings.HasPrefix(n, "--") {
					if hit != nil && hit != &p.opts[i] {
						return nil, "", false
					}
					hit = &p.opts[i]
				}
			}
		}
		if hit != nil {
			return hit, value, hasValue
		}
	}
	return nil, "", false
}

func (p *ciParser) parse(args []string) (ciArgs, error) {
	a := ciArgs{vals: map[string]string{}, flags: map[string]bool{}, lists: map[string][]string{}, pos: map[string][]string{}}
	var unknown, positionals []string
	seen := map[string]bool{}
	onlyPos := false
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if onlyPos || arg == "-" || !strings.HasPrefix(arg, "-") || isNegativeNumber(arg) {
			if len(p.subs) > 0 && a.sub == "" && !onlyPos {
				if !p.hasSub(arg) {
					names := make([]string, len(p.subs))
					for j, s := range p.subs {
						names[j] = s[0]
					}
					return a, p.errorf("argument %s: invalid choice: '%s' (choose from %s)", p.subDest, arg, quoteChoices(names))
				}
				a.sub, a.rest = arg, args[i+1:]
				break
			}
			positionals = append(positionals, arg)
			continue
		}
		if arg == "--" {
			onlyPos = true
			continue
		}
		if arg == "-h" || arg == "--help" {
			a.help = true
			return a, nil
		}
		o, value, hasValue := p.find(arg)
		if o == nil {
			unknown = append(unknown, arg)
			continue
		}
		seen[o.dest] = true
		if o.flag {
			if hasValue && strings.HasPrefix(arg, "--") {
				return a, p.errorf("argument %s: ignored explicit argument '%s'", o.optName(), value)
			}
			a.flags[o.dest] = true
			if hasValue { // -lw: the next short flags
				args = append(args[:i+1], append([]string{"-" + value}, args[i+1:]...)...)
			}
			continue
		}
		var values []string
		if hasValue {
			values = []string{value}
		}
		for !hasValue && i+1 < len(args) && (!strings.HasPrefix(args[i+1], "-") || args[i+1] == "-" || isNegativeNumber(args[i+1])) {
			i++
			values = append(values, args[i])
			if !o.many {
				break
			}
		}
		if len(values) == 0 {
			if o.many {
				return a, p.errorf("argument %s: expected at least one argument", o.optName())
			}
			return a, p.errorf("argument %s: expected one argument", o.optName())
		}
		for _, v := range values {
			if len(o.choices) > 0 && !contains(o.choices, v) {
				return a, p.errorf("argument %s: invalid choice: '%s' (choose from %s)", o.optName(), v, quoteChoices(o.choices))
			}
		}
		switch {
		case o.many:
			a.lists[o.dest] = values
		case o.appends:
			a.lists[o.dest] = append(a.lists[o.dest], values[0])
		default:
			a.vals[o.dest] = values[0]
		}
	}
	// Positionals, in order.
	rest := positionals
	for _, ps := range p.pos {
		switch {
		case ps.rest:
			a.pos[ps.name], rest = rest, nil
		case len(rest) > 0:
			a.pos[ps.name], rest = rest[:1], rest[1:]
		case !ps.optional:
			return a, p.errorf("the following arguments are required: %s", ps.name)
		}
	}
	unknown = append(unknown, rest...)
	var missing []string
	for _, o := range p.opts {
		if o.req && !seen[o.dest] {
			missing = append(missing, o.optName())
		}
	}
	if len(missing) > 0 {
		return a, p.errorf("the following arguments are required: %s", strings.Join(missing, ", "))
	}
	if len(unknown) > 0 {
		return a, p.errorf("unrecognized arguments: %s", strings.Join(unknown, " "))
	}
	return a, nil
}

func (p *ciParser) hasSub(s string) bool {
	for _, sub := range p.subs {
		if sub[0] == s {
			return true
		}
	}
	return false
}

func isNegativeNumber(s string) bool {
	if len(s) < 2 || s[0] != '-' {
		return false
	}
	return strings.Trim(s[1:], "0123456789.") == ""
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// usage is argparse's one-line usage.
func (p *ciParser) usage() string {
	parts := []string{"usage: " + p.prog, "[-h]"}
	for _, o := range p.opts {
		s := o.names[0]
		if !o.flag {
			mv := o.metavarName()
			if o.many {
				s += " " + mv + " [" + mv + " ...]"
			} else {
				s += " " + mv
			}
		}
		if !o.req {
			s = "[" + s + "]"
		}
		parts = append(parts, s)
	}
	if len(p.subs) > 0 {
		names := make([]string, len(p.subs))
		for i, s := range p.subs {
			names[i] = s[0]
		}
		parts = append(parts, "{"+strings.Join(names, ",")+"}", "...")
	}
	for _, ps := range p.pos {
		switch {
		case ps.rest:
			parts = append(parts, "["+ps.name+" ...]")
		case ps.optional:
			parts = append(parts, "["+ps.name+"]")
		default:
			parts = append(parts, ps.name)
		}
	}
	return strings.Join(parts, " ") + "\n"
}

func (o ciOpt) metavarName() string {
	if o.metavar != "" {
		return o.metavar
	}
	if len(o.choices) > 0 {
		return "{" + strings.Join(o.choices, ",") + "}"
	}
	return strings.ToUpper(strings.ReplaceAll(o.dest, "-", "_"))
}

// writeHelp prints argparse's help: usage, description, arguments.
func (p *ciParser) writeHelp(w io.Writer) {
	var b strings.Builder
	b.WriteString(p.usage())
	if p.desc != "" {
		b.WriteString("\n" + p.desc + "\n")
	}
	if len(p.pos) > 0 {
		b.WriteString("\npositional arguments:\n")
		for _, ps := range p.pos {
			helpLine(&b, ps.name, ps.help)
		}
	}
	b.WriteString("\noptions:\n")
	helpLine(&b, "-h, --help", "show this help message and exit")
	for _, o := range p.opts {
		var names []string
		for _, n := range o.names {
			if o.flag {
				names = append(names, n)
			} else if o.many {
				names = append(names, n+" "+o.metavarName()+" ["+o.metavarName()+" ...]")
			} else {
				names = append(names, n+" "+o.metavarName())
			}
		}
		helpLine(&b, strings.Join(names, ", "), o.help)
	}
	if len(p.subs) > 0 {
		b.WriteString("\nSubcommands:\n")
		for _, s := range p.subs {
			helpLine(&b, s[0], s[1])
		}
	}
	_, _ = io.WriteString(w, b.String())
}

func helpLine(b *strings.Builder, name, help string) {
	if len(name) <= 20 {
		fmt.Fprintf(b, "  %-22s%s\n", name, help)
		return
	}
	fmt.Fprintf(b, "  %s\n  %22s%s\n", name, "", help)
}

// fail turns a parse error into the exit error: argparse's "error: ..."
// line and the parser's help on stderr, exit 2 (cloud-init's
// SubcommandAwareArgumentParser.error).
func ciFail(stderr io.Writer, err error) error {
	if ue, ok := err.(*ciUsageError); ok {
		fmt.Fprintf(stderr, "error: %s\n\n", ue.msg)
		ue.p.writeHelp(stderr)
		return &exitError{code: 2}
	}
	return err
}
