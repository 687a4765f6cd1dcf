package users

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"regexp"
	"strings"
	"sync"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules/internal/command"
)

// doasRuleShape is the shape of a doas rule cloud-init accepts for a user
// (its is_doas_rule_valid), the identity captured: permit or deny, any
// options (nolog, nopass, persist, keepenv, setenv {...}; cloud-init also
// takes them run together), the identity (a user, never :group), any
// "as target", then "cmd command" blocks, the last optionally followed by
// "args" and at least one argument (after which anything goes).
var doasRuleShape = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(?:permit|deny)` +
		`(?:\s+(?:nolog|nopass|persist|keepenv|setenv \{[^}]+\})+)*` +
		`\s+([A-Za-z0-9_]+)` +
		`(?:\s+as\s+[A-Za-z0-9_]+)*` +
		`(?:(?:\s+cmd\s+\S+)+(?:\s+args\s+\S.*)?)?` +
		`\s*$`)
})

// checkDoasRule says why rule is not a doas rule for user ("" if it is;
// user "" accepts any identity). A rule spanning lines is refused too:
// written as is, it would break the file for everyone.
func checkDoasRule(rule, user string) string {
	if strings.ContainsAny(rule, "\r\n") {
		return "a rule is one line"
	}
	m := doasRuleShape().FindStringSubmatch(rule)
	switch {
	case m == nil:
		return "not a doas rule as cloud-init takes them: permit|deny [options] NAME [as target] [cmd command [args ...]]"
	case user != "" && m[1] != user:
		return fmt.Sprintf("the rule is for %s, not %s", m[1], user)
	}
	return ""
}

// doasRules reads the doas key: a list of rules; null, false or empty for
// none (cloud-init writes none for a false value).
func doasRules(n yaml.Node) ([]string, error) {
	switch {
	case n.Kind == 0 || (n.Kind == yaml.ScalarNode && (n.Tag == "!!null" || n.Tag == "!!bool" && n.Value != "true")):
		return nil, nil
	case n.Kind == yaml.SequenceNode:
		var rules []string
		for i, item := range n.Content {
			if item.Kind != yaml.ScalarNode || item.Tag == "!!null" {
				return nil, fmt.Errorf("line %d: item %d is not a rule", item.Line, i)
			}
			rules = append(rules, item.Value)
		}
		return rules, nil
	}
	return nil, fmt.Errorf("line %d: expected a list of rules", n.Line)
}

// writeDoas appends u's doas rules to DoasFile as cloud-init does: a
// "# cloud-init User rules for NAME" block, unless the file holds it
// already, under a header when the file is new (0440). Every rule must be
// one for u, or none is written. When doas is installed it checks the
// whole file (doas -C) before it replaces the old one.
func (r *run) writeDoas(ctx context.Context, u userSpec) error {
	rules, err := doasRules(u.Doas)
	if err != nil || len(rules) == 0 {
		return err
	}
	for i, rule := range rules {
		if why := checkDoasRule(rule, u.Name); why != "" {
			return fmt.Errorf("rule %d: %s; no doas rules written for the user", i, why)
		}
	}
	block := "\n# cloud-init User rules for " + u.Name + "\n" + strings.Join(rules, "\n") + "\n"
	root := r.env.Root
	old, err := root.ReadFile(DoasFile)
	perm := fs.FileMode(0o440)
	var content string
	switch {
	case errors.Is(err, fs.ErrNotExist):
		content = r.header() + block
	case err != nil:
		return err
	case bytes.Contains(old, []byte(block)):
		return nil
	default:
		content = string(old) + block
		if fi, err := root.Stat(DoasFile); err == nil {
			perm = fi.Mode().Perm()
		}
	}
	if err := r.checkDoas(ctx, []byte(content)); err != nil {
		return err
	}
	if err := root.WriteFile(DoasFile, []byte(content), perm, &sys.Owner{UID: 0, GID: 0}); err != nil {
		return err
	}
	r.log.Info("doas rules written", zap.String("user", u.Name), zap.String("file", DoasFile), zap.Int("rules", len(rules)))
	return nil
}

// checkDoas has doas parse content (doas -C), when doas is installed.
func (r *run) checkDoas(ctx context.Context, content []byte) error {
	out, res, checked, err := r.checkCandidate(ctx, "/etc/.doas.conf.check", content, func(p string) []string { return []string{"doas", "-C", p} })
	switch {
	case err != nil:
		return err
	case !checked:
		r.log.Info("doas not installed; doas rules written unchecked")
	case res.ExitCode != 0:
		return fmt.Errorf("doas -C rejected the file (%s); %s not changed", command.FirstLine(out), DoasFile)
	}
	return nil
}

// checkCandidate writes content to tmp, a name the live tool ignores, has
// the tool check it (argv given the path as the tool sees it: inside the
// root when chrooted), and removes it. checked is false when the tool is
// not installed.
func (r *run) checkCandidate(ctx context.Context, tmp string, content []byte, argv func(path string) []string) (out string, res sys.Result, checked bool, err error) {
	root := r.env.Root
	if err := root.WriteFile(tmp, content, 0o440, nil); err != nil {
		return "", sys.Result{}, false, err
	}
	defer root.Remove(tmp)
	checkPath := tmp
	if root.IsHost() || !r.env.Runner.Chroot {
		if checkPath, err = root.Path(tmp); err != nil {
			return "", sys.Result{}, false, err
		}
	}
	args := argv(checkPath)
	out, res, err = command.Output(ctx, r.env.Runner, sys.Cmd{Name: "users_groups: " + args[0], Argv: args})
	if errors.Is(err, exec.ErrNotFound) {
		return "", sys.Result{}, false, nil
	}
	return out, res, err == nil, err
}

// Check warns about doas rules cloud-init would refuse (no rule is then
// written for that user; the user is still created): a warning, so the
// rest of users stays.
func (UsersGroups) Check(source, key string, v *yaml.Node) []config.Diagnostic {
	var out []config.Diagnostic
	entry := func(path string, m *yaml.Node, name string) {
		if m == nil || m.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(m.Content); i += 2 {
			if k, val := m.Content[i], m.Content[i+1]; k.Value == "name" && name == "" && val.Kind == yaml.ScalarNode {
				name = val.Value
			}
		}
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, val := m.Content[i], m.Content[i+1]
			if k.Value != "doas" || val.Kind != yaml.SequenceNode {
				continue
			}
			for j, rule := range val.Content {
				if rule.Kind != yaml.ScalarNode {
					continue
				}
				if why := checkDoasRule(rule.Value, name); why != "" {
					out = append(out, config.Diagnostic{Source: source, Line: rule.Line, Column: rule.Column,
						Path: fmt.Sprintf("%s.doas[%d]", path, j), Severity: config.SeverityWarning,
						Message: why + "; no doas rules are written for this user"})
				}
			}
		}
	}
	switch {
	case key == "user":
		// The default user's name is the image's unless given here.
		entry(key, v, "")
	case key == "users" && v.Kind == yaml.SequenceNode:
		for i, item := range v.Content {
			entry(fmt.Sprintf("users[%d]", i), item, "")
		}
	case key == "users" && v.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(v.Content); i += 2 {
			name := v.Content[i].Value
			if name == "default" {
				name = "" // the default user's, named by the image
			}
			entry("users."+v.Content[i].Value, v.Content[i+1], name)
		}
	}
	return out
}
