package runcmd

import (
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// cloud-init reads cloud-config with PyYAML (YAML 1.1) and turns a word of
// a list command into text with Python's str(). The same plain scalar can
// mean another thing to yaml.v3 (YAML 1.2): "yes" is a string here and
// True there, "010" is 10 here and 8 there. pyScalar classifies a scalar
// the way PyYAML's resolver does and gives the text str() would print, so
// the script ec2init writes is the one cloud-init would.

// pyKind is the Python type PyYAML gives a scalar.
type pyKind string

const (
	pyStrKind   pyKind = "string"
	pyNone      pyKind = "null"
	pyBool      pyKind = "boolean"
	pyInt       pyKind = "integer"
	pyFloat     pyKind = "float"
	pyTimestamp pyKind = "date"
)

// pyResolvers are PyYAML's implicit resolvers (yaml/resolver.py), YAML 1.1,
// compiled on first use: every stage's process links this package, few
// run a list command, and compiling them at start cost 110 KB a process.
var pyResolvers = sync.OnceValue(func() *pyREs {
	return &pyREs{
		bool:  regexp.MustCompile(`^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$`),
		null:  regexp.MustCompile(`^(?:~|null|Null|NULL|)$`),
		int:   regexp.MustCompile(`^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$`),
		float: regexp.MustCompile(`^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$`),
		date:  regexp.MustCompile(`^([0-9]{4})-([0-9]{2})-([0-9]{2})$`),
		time:  regexp.MustCompile(`^([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})(?:[Tt]|[ \t]+)([0-9]{1,2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]*))?(?:[ \t]*(Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?$`),
	}
})

type pyREs struct{ bool, null, int, float, date, time *regexp.Regexp }

// pyScalar returns the Python type of scalar n and its str() text.
func pyScalar(n *yaml.Node) (pyKind, string) {
	v := n.Value
	re := pyResolvers()
	switch {
	case n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0:
		return pyStrKind, v
	case n.Tag == "!!str" && n.Style&yaml.TaggedStyle != 0:
		return pyStrKind, v // an explicit !!str
	case re.null.MatchString(v):
		return pyNone, "None"
	case re.bool.MatchString(v):
		if b := strings.ToLower(v); b == "yes" || b == "true" || b == "on" {
			return pyBool, "True"
		}
		return pyBool, "False"
	case re.int.MatchString(v):
		if s, ok := pyInt11(v); ok {
			return pyInt, s
		}
	case re.float.MatchString(v):
		if s, ok := pyFloat11(v); ok {
			return pyFloat, s
		}
	case re.date.MatchString(v):
		return pyTimestamp, v // str(datetime.date) is the ISO form as written
	case re.time.MatchString(v):
		if s, ok := pyDatetime(v); ok {
			return pyTimestamp, s
		}
	}
	return pyStrKind, v
}

// pyInt11 evaluates a YAML 1.1 integer as PyYAML's construct_yaml_int.
func pyInt11(v string) (string, bool) {
	v = strings.ReplaceAll(v, "_", "")
	sign := ""
	if v != "" && (v[0] == '-' || v[0] == '+') {
		if v[0] == '-' {
			sign = "-"
		}
		v = v[1:]
	}
	n := new(big.Int)
	var ok bool
	switch {
	case v == "0":
		return "0", true
	case strings.HasPrefix(v, "0b"):
		_, ok = n.SetString(v[2:], 2)
	case strings.HasPrefix(v, "0x"):
		_, ok = n.SetString(v[2:], 16)
	case strings.HasPrefix(v, "0"):
		_, ok = n.SetString(v[1:], 8)
	case strings.Contains(v, ":"):
		ok = true
		for _, d := range strings.Split(v, ":") {
			x, err := strconv.ParseInt(d, 10, 64)
			if err != nil {
				return "", false
			}
			n.Mul(n, big.NewInt(60))
			n.Add(n, big.NewInt(x))
		}
	default:
		_, ok = n.SetString(v, 10)
	}
	if !ok {
		return "", false
	}
	if sign == "-" {
		n.Neg(n)
	}
	return n.String(), true
}

// pyFloat11 evaluates a YAML 1.1 float and prints it as Python's repr
// (which str() is for floats): the shortest form that reads back, in
// exponent notation below 1e-4 and from 1e16, always with a "." or "e".
func pyFloat11(v string) (string, bool) {
	v = strings.ToLower(strings.ReplaceAll(v, "_", ""))
	var f float64
	switch {
	case strings.HasSuffix(v, ".inf"):
		f = math.Inf(1)
		if strings.HasPrefix(v, "-") {
			f = math.Inf(-1)
		}
	case v == ".nan":
		f = math.NaN()
	case strings.Contains(v, ":"):
		sign := 1.0
		if strings.HasPrefix(v, "-") {
			sign, v = -1, v[1:]
		}
		v = strings.TrimPrefix(v, "+")
		for _, d := range strings.Split(v, ":") {
			x, err := strconv.ParseFloat(d, 64)
			if err != nil {
				return "", false
			}
			f = f*60 + x
		}
		f *= sign
	default:
		var err error
		if f, err = strconv.ParseFloat(v, 64); err != nil {
			return "", false
		}
	}
	return pyRepr(f), true
}

func pyRepr(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f):
		return "nan"
	}
	// The shortest round-tripping digits, then Python's layout of them.
	s := strconv.FormatFloat(f, 'e', -1, 64)
	mant, expS, _ := strings.Cut(s, "e")
	exp, _ := strconv.Atoi(expS)
	if exp < -4 || exp >= 16 {
		return fmt.Sprintf("%se%+03d", mant, exp)
	}
	s = strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsAny(s, ".") {
		s += ".0"
	}
	return s
}

// pyDatetime prints a YAML 1.1 timestamp as str(datetime.datetime) does:
// "2024-01-02 03:04:05[.ffffff][+HH:MM]". PyYAML keeps the offset it was
// given (Z is +00:00).
func pyDatetime(v string) (string, bool) {
	m := pyResolvers().time.FindStringSubmatch(v)
	if m == nil {
		return "", false
	}
	num := func(s string) int { n, _ := strconv.Atoi(s); return n }
	out := fmt.Sprintf("%04d-%02d-%02d %02d:%02d:%02d", num(m[1]), num(m[2]), num(m[3]), num(m[4]), num(m[5]), num(m[6]))
	if frac := m[7]; frac != "" {
		frac = (frac + "000000")[:6]
		if num(frac) != 0 {
			out += "." + frac
		}
	}
	switch tz := m[8]; {
	case tz == "":
	case tz == "Z":
		out += "+00:00"
	default:
		sign, rest := tz[:1], tz[1:]
		hh, mm, _ := strings.Cut(rest, ":")
		if mm == "" {
			mm = "00"
		}
		out += fmt.Sprintf("%s%02d:%02d", sign, num(hh), num(mm))
	}
	return out, true
}
