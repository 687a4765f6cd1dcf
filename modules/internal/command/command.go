// Package command holds what the modules that run commands share: how a
// cloud-config item becomes argv (runcmd, bootcmd, power_state's
// condition), and running a tool with its output captured for the error
// when it fails.
package command

import (
	"fmt"

	"gopkg.in/yaml.v3"
)

// Argv turns one item into argv: the user's shell for a string (they
// wrote shell), the words as given for a list.
func Argv(n *yaml.Node) ([]string, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		return []string{"/bin/sh", "-c", n.Value}, nil
	case yaml.SequenceNode:
		argv := make([]string, 0, len(n.Content))
		for _, w := range n.Content {
			if w.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("line %d: a command's words must be plain values", w.Line)
			}
			argv = append(argv, w.Value)
		}
		if len(argv) == 0 {
			return nil, fmt.Errorf("line %d: empty command", n.Line)
		}
		return argv, nil
	}
	return nil, fmt.Errorf("line %d: a command is a string or a list of words", n.Line)
}
