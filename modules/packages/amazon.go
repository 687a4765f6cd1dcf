package packages

import (
	"fmt"
	"sync"

	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/config"
)

// Amazon Linux's cloud-init keys of package_update_upgrade_install (its
// own patches, not upstream cloud-init's): refresh, security or bugfix
// upgrades at boot with excludes, and the release of Amazon Linux 2023's
// versioned repositories. dnf and yum only.
var amazonKeys = sync.OnceValue(func() []config.Field {
	return []config.Field{
		{Name: "repo_update", Type: config.Bool(), Default: "false",
			Doc: "Amazon Linux: refresh the repositories' metadata (dnf makecache)."},
		{Name: "repo_upgrade", Type: config.Enum("none", "security", "bugfix", "all"), Default: "none",
			Doc: "Amazon Linux: upgrade at boot: none, security (dnf upgrade --security), bugfix (--bugfix) or all."},
		{Name: "repo_upgrade_exclude", Type: config.ListOf(config.String()),
			Doc: "Amazon Linux: packages (names or globs) the boot upgrade leaves alone (--exclude=)."},
		{Name: "repo_releasever", Type: config.OneOf(config.String(), config.Int()),
			Doc: "Amazon Linux 2023: the release whose repositories every dnf command reads (--releasever)."},
	}
})

// amazonRequest is what the Amazon Linux keys ask for.
type amazonRequest struct {
	set        []string // the keys given, for the warning on apt images
	update     bool
	upgrade    string // "", "security", "bugfix", "all"
	exclude    []string
	releasever string
}

func parseAmazon(cfg *config.CloudConfig) (amazonRequest, error) {
	var a amazonRequest
	var err error
	if a.update, err = boolKey(cfg, "repo_update"); err != nil {
		return a, err
	}
	if _, ok := cfg.Get("repo_update"); ok {
		a.set = append(a.set, "repo_update")
	}
	if v, ok := cfg.Get("repo_upgrade"); ok && v.Node.Tag != "!!null" {
		a.set = append(a.set, "repo_upgrade")
		switch s := v.Node.Value; {
		case v.Node.Kind == yaml.ScalarNode && (s == "none" || s == "security" || s == "bugfix" || s == "all"):
			if s != "none" {
				a.upgrade = s
			}
		case v.Node.Kind == yaml.ScalarNode && v.Node.Tag == "!!bool":
			// YAML 1.1's false reads as none, true as all.
			if b, _ := config.ParseBool(s); b {
				a.upgrade = "all"
			}
		default:
			return a, fmt.Errorf("%s:%d: repo_upgrade: expected none, security, bugfix or all", v.Source, v.KeyLine)
		}
	}
	if v, ok := cfg.Get("repo_upgrade_exclude"); ok && v.Node.Tag != "!!null" {
		a.set = append(a.set, "repo_upgrade_exclude")
		if v.Node.Kind != yaml.SequenceNode {
			return a, fmt.Errorf("%s:%d: repo_upgrade_exclude: expected a list of package names", v.Source, v.KeyLine)
		}
		for _, n := range v.Node.Content {
			if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
				return a, fmt.Errorf("%s:%d: repo_upgrade_exclude: expected package names", v.Source, n.Line)
			}
			a.exclude = append(a.exclude, n.Value)
		}
	}
	if v, ok := cfg.Get("repo_releasever"); ok && v.Node.Tag != "!!null" {
		a.set = append(a.set, "repo_releasever")
		if v.Node.Kind != yaml.ScalarNode {
			return a, fmt.Errorf("%s:%d: repo_releasever: expected a release such as 2023.6.20241010 or latest", v.Source, v.KeyLine)
		}
		a.releasever = v.Node.Value
	}
	return a, nil
}
