package packages

import (
	"context"
	"errors"
	"fmt"

	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/pkgmgr"
)

// snapPaths are where snapd's command lives.
var snapPaths = []string{"/usr/bin/snap", "/snap/bin/snap"}

// parseMapping reads a {apt: [...], snap: [...]} item (cloud-init 23.4+):
// each list holds names or [name, version] items for that package
// manager. Other keys are errors, by name.
func parseMapping(n *yaml.Node) (apt, snap []pkgmgr.Package, err error) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if v.Kind != yaml.SequenceNode {
			return nil, nil, fmt.Errorf("%s: expected a list of packages", k.Value)
		}
		var ps []pkgmgr.Package
		for _, item := range v.Content {
			if item.Kind == yaml.MappingNode {
				return nil, nil, fmt.Errorf("%s: expected a package name or [name, version]", k.Value)
			}
			p, _, err := parseItem(item)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", k.Value, err)
			}
			ps = append(ps, p)
		}
		switch k.Value {
		case "apt":
			apt = append(apt, ps...)
		case "snap":
			snap = append(snap, ps...)
		default:
			return nil, nil, fmt.Errorf("unknown package manager %q (apt or snap)", k.Value)
		}
	}
	return apt, snap, nil
}

// installSnaps runs snap install for each snap, one command each as
// cloud-init does; a version is the snap's channel (--channel=). Every
// failure is reported and the others still run.
func installSnaps(ctx context.Context, env *modules.Env, retry LockRetry, snaps []pkgmgr.Package) error {
	if len(snaps) == 0 {
		return nil
	}
	found := false
	for _, p := range snapPaths {
		if ok, err := env.Root.Exists(p); ok && err == nil {
			found = true
		}
	}
	if !found {
		return fmt.Errorf("packages: snap items %s need snapd, which this image lacks (no %s)", names(snaps), snapPaths[0])
	}
	var errs []error
	for _, p := range snaps {
		argv := []string{"snap", "install", p.Name}
		if p.Version != "" {
			argv = append(argv, "--channel="+p.Version)
		}
		what := "snap install " + p.Name
		if _, err := retry.Run(ctx, env, pkgmgr.Cmd{Name: "packages: " + what, What: what, Argv: argv}); err != nil {
			errs = append(errs, fmt.Errorf("packages: %w", err))
		}
	}
	return errors.Join(errs...)
}

func names(ps []pkgmgr.Package) []string {
	var s []string
	for _, p := range ps {
		s = append(s, p.Name)
	}
	return s
}
