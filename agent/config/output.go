package config

import (
	"strings"

	"gopkg.in/yaml.v3"
)

// OutputKey is cloud-init's key for where a stage's stdout and stderr go:
// output: {all: '| tee -a /var/log/cloud-init-output.log'}, or per mode
// (init, config, final), each a string, a [stdout, stderr] list or an
// {output, error} mapping.
const OutputKey = "output"

var outputTarget = OneOf(
	String(),
	ListOf(OneOf(String(), Null())),
	Object(Field{Name: "output", Type: String()}, Field{Name: "error", Type: String()}),
	Null(),
)

// OutputType is the schema of the output key.
var OutputType = Object(
	Field{Name: "all", Type: outputTarget},
	Field{Name: "init", Type: outputTarget},
	Field{Name: "config", Type: outputTarget},
	Field{Name: "final", Type: outputTarget},
)

// OutputRedirect is where one stream goes: Op ">" (truncate), ">>"
// (append) or "|" (a shell command reading it), and its Arg.
type OutputRedirect struct {
	Op  string
	Arg string
}

// Output is the redirection of one mode's stdout and stderr. A zero
// OutputRedirect leaves the stream where it was.
type Output struct {
	Stdout, Stderr OutputRedirect
}

// Output reads c's output key for mode ("init", "config" or "final") as
// cloud-init's runtime does: the mode's own entry, else "all"; a string
// for both streams, a list for [stdout, stderr], a mapping for
// {output, error}; stderr "&1" is stdout's; a target with no operator
// appends to the file it names. ok is false when nothing redirects.
func (c *CloudConfig) Output(mode string) (Output, bool) {
	v, found := c.values[OutputKey]
	if !found {
		return Output{}, false
	}
	n := deref(v.Node)
	if n.Kind != yaml.MappingNode {
		return Output{}, false
	}
	var modeNode, allNode *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		switch n.Content[i].Value {
		case mode:
			modeNode = deref(n.Content[i+1])
		case "all":
			allNode = deref(n.Content[i+1])
		}
	}
	if modeNode == nil {
		modeNode = allNode
	}
	if modeNode == nil {
		return Output{}, false
	}
	var out, errs string
	switch modeNode.Kind {
	case yaml.ScalarNode:
		if modeNode.Tag != "!!null" {
			out, errs = modeNode.Value, modeNode.Value
		}
	case yaml.SequenceNode:
		if len(modeNode.Content) > 0 {
			out = scalar(modeNode.Content[0])
		}
		if len(modeNode.Content) > 1 {
			errs = scalar(modeNode.Content[1])
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(modeNode.Content); i += 2 {
			switch modeNode.Content[i].Value {
			case "output":
				out = scalar(modeNode.Content[i+1])
			case "error":
				errs = scalar(modeNode.Content[i+1])
			}
		}
	}
	if strings.TrimSpace(errs) == "&1" {
		errs = out
	}
	o := Output{Stdout: parseRedirect(out), Stderr: parseRedirect(errs)}
	return o, o.Stdout != (OutputRedirect{}) || o.Stderr != (OutputRedirect{})
}

func scalar(n *yaml.Node) string {
	n = deref(n)
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return ""
	}
	return n.Value
}

// parseRedirect splits a target as cloud-init does: ">>", ">" or "|"
// first (in that order), else an implicit ">>".
func parseRedirect(s string) OutputRedirect {
	s = strings.TrimSpace(s)
	if s == "" {
		return OutputRedirect{}
	}
	for _, op := range []string{">>", ">", "|"} {
		if rest, ok := strings.CutPrefix(s, op); ok {
			return OutputRedirect{Op: op, Arg: strings.TrimSpace(rest)}
		}
	}
	return OutputRedirect{Op: ">>", Arg: s}
}
