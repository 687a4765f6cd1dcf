// Package ec2metadata reproduces Amazon Linux's ec2-metadata command
// (amazon-ec2-utils v0.1.5): its options, parsed the way GNU getopt parses
// them, and its output, byte for byte, so ec2init can stand in for it.
package ec2metadata

import (
	"fmt"
	"strings"
)

// Action is one requested output, in command-line order.
type Action struct {
	// Name is the long option without dashes ("ami-id", "path", "all").
	Name string
	// Path is the argument of --path.
	Path string
}

// Args is a parsed command line.
type Args struct {
	Actions []Action
	Quiet   bool
	Help    bool
	// Extensions beyond ec2-metadata.
	JSON, Tree, Facts bool
	Endpoint          string
	AllowV1           bool
	LogLevel          string
	// Operands are non-option words; ec2-metadata ignores them.
	Operands []string
}

// UsageError is a command-line mistake, worded as GNU getopt words it.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

type optSpec struct {
	long   string
	short  byte
	hasArg bool
	// action options produce output; the rest are settings.
	action bool
}

// options lists ec2-metadata's options in its own order, then ec2init's.
var options = []optSpec{
	{"ami-id", 'a', false, true},
	{"ami-launch-index", 'l', false, true},
	{"ami-manifest-path", 'm', false, true},
	{"ancestor-ami-ids", 'n', false, true},
	{"block-device-mapping", 'b', false, true},
	{"instance-id", 'i', false, true},
	{"instance-type", 't', false, true},
	{"local-hostname", 'h', false, true},
	{"local-ipv4", 'o', false, true},
	{"kernel-id", 'k', false, true},
	{"availability-zone", 'z', false, true},
	{"partition", 'P', false, true},
	{"product-codes", 'c', false, true},
	{"public-hostname", 'p', false, true},
	{"public-ipv4", 'v', false, true},
	{"public-keys", 'u', false, true},
	{"ramdisk-id", 'r', false, true},
	{"reservation-id", 'e', false, true},
	{"security-groups", 's', false, true},
	{"user-data", 'd', false, true},
	{"tags", 'g', false, true},
	{"region", 'R', false, true},
	{"help", 0, false, false},
	{"all", 0, false, true},
	{"quiet", 0, false, false},
	{"path", 0, true, true},
	{"json", 0, false, false},
	{"tree", 0, false, false},
	{"facts", 0, false, false},
	{"endpoint", 0, true, false},
	{"allow-imdsv1", 0, false, false},
	{"log-level", 0, true, false},
}

// Parse reads args (without the program name) like
// `getopt -o almnbithokzPcpvuresdgR --longoptions ...`: short options
// bundle, long options may be abbreviated to a unique prefix, operands may
// be mixed with options, and "--" ends the options.
func Parse(args []string) (Args, error) {
	var a Args
	for i := 0; i < len(args); i++ {
		arg := args[i]
		switch {
		case arg == "--":
			a.Operands = append(a.Operands, args[i+1:]...)
			return a, nil
		case strings.HasPrefix(arg, "--"):
			name, value, hasValue := strings.Cut(arg[2:], "=")
			spec, err := lookupLong(name)
			if err != nil {
				return a, err
			}
			if spec.hasArg && !hasValue {
				if i+1 >= len(args) {
					return a, &UsageError{fmt.Sprintf("option '--%s' requires an argument", spec.long)}
				}
				i++
				value = args[i]
			} else if !spec.hasArg && hasValue {
				return a, &UsageError{fmt.Sprintf("option '--%s' doesn't allow an argument", spec.long)}
			}
			a.apply(spec, value)
		case strings.HasPrefix(arg, "-") && len(arg) > 1:
			for j := 1; j < len(arg); j++ {
				spec, ok := lookupShort(arg[j])
				if !ok {
					return a, &UsageError{fmt.Sprintf("invalid option -- '%c'", arg[j])}
				}
				a.apply(spec, "")
			}
		default:
			a.Operands = append(a.Operands, arg)
		}
	}
	return a, nil
}

func (a *Args) apply(spec optSpec, value string) {
	switch spec.long {
	case "help":
		a.Help = true
	case "quiet":
		a.Quiet = true
	case "json":
		a.JSON = true
	case "tree":
		a.Tree = true
	case "facts":
		a.Facts = true
	case "endpoint":
		a.Endpoint = value
	case "allow-imdsv1":
		a.AllowV1 = true
	case "log-level":
		a.LogLevel = value
	default:
		a.Actions = append(a.Actions, Action{Name: spec.long, Path: value})
	}
}

func lookupShort(c byte) (optSpec, bool) {
	for _, o := range options {
		if o.short == c {
			return o, true
		}
	}
	return optSpec{}, false
}

func lookupLong(name string) (optSpec, error) {
	var matches []optSpec
	for _, o := range options {
		if o.long == name {
			return o, nil
		}
		if name != "" && strings.HasPrefix(o.long, name) {
			matches = append(matches, o)
		}
	}
	switch len(matches) {
	case 1:
		return matches[0], nil
	case 0:
		return optSpec{}, &UsageError{fmt.Sprintf("unrecognized option '--%s'", name)}
	}
	names := make([]string, len(matches))
	for i, m := range matches {
		names[i] = "'--" + m.long + "'"
	}
	return optSpec{}, &UsageError{fmt.Sprintf("option '--%s' is ambiguous; possibilities: %s", name, strings.Join(names, " "))}
}
