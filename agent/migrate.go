package agent

// `ec2init migrate`: an image that has cloud-init, read for the swap to
// ec2init: which of its /etc/cloud settings ec2init honours, key by key,
// and what the swap changes (cloud-init's units masked, ec2init's enabled,
// cloud-init's names linked to ec2init's). Nothing changes without Apply.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
)

// UnitAlias is one of cloud-init's unit names and the ec2init unit that
// answers to it where cloud-init is not installed (packaging/scripts/
// postinstall.sh makes the same links).
type UnitAlias struct{ Name, Unit string }

// CloudInitUnitAliases are cloud-init's unit names, in boot order.
var CloudInitUnitAliases = []UnitAlias{
	{"cloud-init-local.service", "ec2init-local.service"},
	{"cloud-init.service", "ec2init.service"},
	{"cloud-init-network.service", "ec2init.service"},
	{"cloud-config.target", "ec2init-network.target"},
	{"cloud-config.service", "ec2init-config.service"},
	{"cloud-final.service", "ec2init-final.service"},
	{"cloud-init.target", "ec2init.target"},
}

// ec2initUnits are the units the package enables (its preset).
var ec2initUnits = []string{"ec2init.target", "ec2init-local.service", "ec2init.service", "ec2init-config.service", "ec2init-final.service"}

// cloud-init's log names, linked to ec2init's logs.
var cloudInitLogLinks = []UnitAlias{{"cloud-init-output.log", "ec2init-output.log"}, {"cloud-init.log", "ec2init.log"}}

const (
	vendorUnitDir = "/usr/lib/systemd/system"
	// CloudInitDisabledFile disables cloud-init, and ec2init too.
	CloudInitDisabledFile = "/etc/cloud/cloud-init.disabled"
	// DisabledFile disables ec2init.
	DisabledFile = "/etc/ec2init/disabled"
)

// unitDirs are where systemd finds unit files, most specific first.
var unitDirs = []string{"/etc/systemd/system", "/run/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"}

// MigrateOptions configures Migrate.
type MigrateOptions struct {
	Root string
	// Apply makes the changes; without it Migrate only reports them.
	Apply bool
	// Registry holds the modules whose keys count as honoured.
	Registry *modules.Registry
	// Systemctl is the command masking and enabling units offline, with
	// --root (default "systemctl").
	Systemctl string
}

// KeyVerdict is one setting of cloud-init's configuration and whether
// ec2init honours it.
type KeyVerdict struct {
	Key      string `json:"key"`    // "runcmd", "system_info.default_user.name", "cloud_final_modules: puppet"
	Source   string `json:"source"` // file:line
	Honoured bool   `json:"honoured"`
	Why      string `json:"why"`
}

// MigrateAction is one change of the swap.
type MigrateAction struct {
	What   string `json:"what"` // mask, enable, link, mkdir
	Target string `json:"target"`
	Detail string `json:"detail,omitempty"`
	Done   bool   `json:"done"`
	Err    string `json:"error,omitempty"`
}

// MigrateReport is what Migrate found, and what it changed or would.
type MigrateReport struct {
	// CloudInitUnits are cloud-init's own unit files in the image (its
	// package is installed).
	CloudInitUnits   []string        `json:"cloud_init_units"`
	EC2InitInstalled bool            `json:"ec2init_installed"`
	Files            []string        `json:"files"`
	Keys             []KeyVerdict    `json:"keys"`
	Actions          []MigrateAction `json:"actions"`
	Notes            []string        `json:"notes"`
	Applied          bool            `json:"applied"`
}

// Migrate reads the image under o.Root and reports (with o.Apply, makes)
// the swap from cloud-init to ec2init. An error is for an image it cannot
// read; a change that fails is recorded in its action, and the others are
// still made.
func Migrate(ctx context.Context, o MigrateOptions) (*MigrateReport, error) {
	if o.Systemctl == "" {
		o.Systemctl = "systemctl"
	}
	root, err := sys.NewRoot(o.Root)
	if err != nil {
		return nil, err
	}
	rep := &MigrateReport{Applied: o.Apply}
	if err := rep.readKeys(root, o.Registry); err != nil {
		return rep, err
	}
	rep.EC2InitInstalled = exists(root, path.Join(vendorUnitDir, "ec2init.service"))
	for _, a := range CloudInitUnitAliases {
		for _, d := range unitDirs {
			if target, present := linkAt(root, path.Join(d, a.Name)); present && !strings.HasPrefix(target, "ec2init") && !slices.Contains(rep.CloudInitUnits, a.Name) {
				rep.CloudInitUnits = append(rep.CloudInitUnits, a.Name)
			}
		}
	}
	rep.plan(root, o)
	if o.Apply {
		for i := range rep.Actions {
			rep.apply(ctx, root, o, &rep.Actions[i])
		}
	}
	return rep, nil
}

// plan lists the changes and the notes.
func (rep *MigrateReport) plan(root *sys.Root, o MigrateOptions) {
	if len(rep.CloudInitUnits) > 0 {
		// Masked, cloud-init does not run even where its generator wants
		// cloud-init.target; its off switch (cloud-init.disabled) would
		// stop ec2init too.
		for _, u := range rep.CloudInitUnits {
			if t, _ := linkAt(root, path.Join("/etc/systemd/system", u)); t != "/dev/null" {
				rep.Actions = append(rep.Actions, MigrateAction{What: "mask", Target: u, Detail: "cloud-init's unit never starts"})
			}
		}
		rep.Notes = append(rep.Notes, "cloud-init's package is installed: its unit names stay its own (masked), so a unit ordered After=cloud-final.service does not wait for ec2init; remove the package (dnf remove cloud-init, or apt-get purge cloud-init) and run `ec2init migrate --apply` again to link those names to ec2init's units")
	}
	if !rep.EC2InitInstalled {
		rep.Notes = append(rep.Notes, "ec2init's package is not installed in this image: install it (it enables its units and, where cloud-init is not installed, links cloud-init's names)")
	} else {
		for _, u := range ec2initUnits {
			if !unitEnabled(root, u) {
				rep.Actions = append(rep.Actions, MigrateAction{What: "enable", Target: u})
			}
		}
	}
	if len(rep.CloudInitUnits) == 0 && rep.EC2InitInstalled {
		for _, a := range CloudInitUnitAliases {
			p := path.Join(vendorUnitDir, a.Name)
			if t, present := linkAt(root, p); !present || t != a.Unit {
				rep.Actions = append(rep.Actions, MigrateAction{What: "link", Target: p, Detail: a.Unit})
			}
		}
		for _, l := range cloudInitLogLinks {
			p := path.Join("/var/log", l.Name)
			switch t, present := linkAt(root, p); {
			case !present:
				rep.Actions = append(rep.Actions, MigrateAction{What: "link", Target: p, Detail: l.Unit})
			case t != l.Unit:
				rep.Notes = append(rep.Notes, p+" is cloud-init's own log: left as it is (ec2init writes /var/log/"+l.Unit+")")
			}
		}
		for _, d := range []string{"per-boot", "per-instance", "per-once"} {
			if p := path.Join(CloudInitScriptDirs, d); !exists(root, p) {
				rep.Actions = append(rep.Actions, MigrateAction{What: "mkdir", Target: p})
			}
		}
	}
	// The image's switches only: the kernel command line is the instance's.
	if why := Disabled(root, "", nil); why != "" {
		rep.Notes = append(rep.Notes, why+" exists: ec2init honours it and will not run until it is removed")
	}
	// cloud-init's pickled datasource: ec2init's views of cloud-init's
	// state (/var/lib/cloud/instance/boot-finished, ...) have none.
	if exists(root, "/var/lib/cloud/instance/obj.pkl") {
		rep.Notes = append(rep.Notes, "cloud-init has run on this disk (/var/lib/cloud/instance/obj.pkl): ec2init keeps its own state in /var/lib/ec2init, so its first boot is a first boot: per-instance work (users, keys, runcmd, user scripts) runs again")
	}
}

// apply makes one change, recording how it went.
func (rep *MigrateReport) apply(ctx context.Context, root *sys.Root, o MigrateOptions, a *MigrateAction) {
	var err error
	switch a.What {
	case "mask", "enable":
		err = systemctl(ctx, o.Systemctl, root, a.What, a.Target)
	case "link":
		var dir string
		if err = root.MkdirAll(path.Dir(a.Target), 0o755); err != nil {
			break
		}
		if dir, err = root.Path(path.Dir(a.Target)); err == nil {
			p := filepath.Join(dir, path.Base(a.Target))
			if _, lerr := os.Lstat(p); lerr == nil {
				err = os.Remove(p) // only a link of ours, or none: see plan
			}
			if err == nil {
				err = os.Symlink(a.Detail, p)
			}
		}
	case "mkdir":
		err = root.MkdirAll(a.Target, 0o755)
	}
	if err != nil {
		a.Err = err.Error()
		return
	}
	a.Done = true
}

// systemctl runs `systemctl --root=ROOT verb unit`: offline, as on an
// image, without a running systemd.
func systemctl(ctx context.Context, bin string, root *sys.Root, verb, unit string) error {
	var out bytes.Buffer
	r := &sys.Runner{}
	res, err := r.Run(ctx, sys.Cmd{Argv: []string{bin, "--root=" + root.Prefix(), "--no-reload", verb, unit}, Output: &out})
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("systemctl %s %s: exit status %d: %s", verb, unit, res.ExitCode, strings.TrimSpace(out.String()))
	}
	return nil
}

// unitEnabled: a link to the unit in a .wants directory of /etc.
func unitEnabled(root *sys.Root, unit string) bool {
	dir, err := root.Path("/etc/systemd/system")
	if err != nil {
		return false
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "*.wants", unit))
	return len(matches) > 0
}

// linkAt says whether something is at p (not following a final symlink)
// and, for a symlink, where it points.
func linkAt(root *sys.Root, p string) (target string, present bool) {
	dir, err := root.Path(path.Dir(p))
	if err != nil {
		return "", false
	}
	full := filepath.Join(dir, path.Base(p))
	if _, err := os.Lstat(full); err != nil {
		return "", false
	}
	t, _ := os.Readlink(full)
	return t, true
}

func exists(root *sys.Root, p string) bool {
	_, present := linkAt(root, p)
	return present
}

// readKeys reports cloud-init's configuration key by key.
func (rep *MigrateReport) readKeys(root *sys.Root, reg *modules.Registry) error {
	sc, err := LoadSystemConfig(root, reg)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cloud-init's configuration: %w", err)
	}
	known := map[string]bool{}
	for _, m := range reg.Steps() {
		known[m.Name()] = true
	}
	for _, c := range sc.Checked {
		rep.Files = append(rep.Files, c.Source)
		add := func(key string, line int, honoured bool, why string) {
			rep.Keys = append(rep.Keys, KeyVerdict{Key: key, Source: fmt.Sprintf("%s:%d", c.Source, line), Honoured: honoured, Why: why})
		}
		if c.Err != nil {
			rep.Keys = append(rep.Keys, KeyVerdict{Key: "(file)", Source: c.Source, Why: "does not parse: " + c.Err.Error()})
			continue
		}
		problems := map[string][]config.Diagnostic{}
		for _, d := range c.Diagnostics {
			problems[topKey(d.Path)] = append(problems[topKey(d.Path)], d)
		}
		doc, _ := config.ParseDoc(c.Source, c.Body)
		if doc.Root == nil {
			continue
		}
		for i := 0; i+1 < len(doc.Root.Content); i += 2 {
			k, v := doc.Root.Content[i], doc.Root.Content[i+1]
			switch {
			case k.Value == "merge_how" || k.Value == "merge_type":
				add(k.Value, k.Line, true, "merges as cloud-init merges its configuration files")
			case slices.Contains(config.ModuleListKeys, k.Value):
				add(k.Value, k.Line, true, "chooses the modules that run, and their frequencies")
				entries, _, _ := config.Merge(config.Doc{Source: c.Source, Root: &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{k, v}}}).ModuleList(k.Value)
				for _, e := range entries {
					if !known[e.Name] {
						add(k.Value+": "+e.Name, e.Line, false, "not an ec2init module; skipped")
					}
				}
			case k.Value == "system_info":
				for _, sk := range mappingPairs(v) {
					if sk[0].Value != "default_user" {
						add("system_info."+sk[0].Value, sk[0].Line, false, "cloud-init's distribution settings; ec2init detects the distribution itself")
						continue
					}
					for _, uk := range mappingPairs(sk[1]) {
						if slices.Contains(config.DefaultUserHonoured, uk[0].Value) {
							add("system_info.default_user."+uk[0].Value, uk[0].Line, true, "ec2init's default user (under default_user in /etc/ec2init/config.yaml)")
						} else {
							add("system_info.default_user."+uk[0].Value, uk[0].Line, false, "not supported by ec2init's default user")
						}
					}
				}
			case k.Value == "datasource":
				for _, dk := range mappingPairs(v) {
					if dk[0].Value != "Ec2" {
						add("datasource."+dk[0].Value, dk[0].Line, false, "another datasource's; ignored")
						continue
					}
					for _, ek := range mappingPairs(dk[1]) {
						switch {
						case ek[0].Value == "apply_full_imds_network_config":
							add("datasource.Ec2."+ek[0].Value, ek[0].Line, true, "accepted; ec2init leaves the network configuration to the image")
						case slices.Contains(config.Ec2DatasourceHonoured, ek[0].Value):
							add("datasource.Ec2."+ek[0].Value, ek[0].Line, true, "ec2init's metadata client (under imds in /etc/ec2init/config.yaml)")
						default:
							add("datasource.Ec2."+ek[0].Value, ek[0].Line, false, "not supported by ec2init")
						}
					}
				}
			case cloudInitInternal[k.Value] != "":
				add(k.Value, k.Line, false, "cloud-init's own: "+cloudInitInternal[k.Value])
			case otherDatasourceKeys[k.Value]:
				add(k.Value, k.Line, false, "another datasource's; ignored")
			default:
				m, ok := reg.Owner(k.Value)
				if !ok {
					add(k.Value, k.Line, false, "not supported by ec2init")
					continue
				}
				why, honoured := "module "+m.Name(), true
				for _, d := range problems[k.Value] {
					if d.Severity == config.SeverityError {
						honoured = false
					}
					why += "; " + string(d.Severity) + ": " + d.Message
				}
				add(k.Value, k.Line, honoured, why)
			}
		}
	}
	for _, f := range sc.Settings.Findings {
		rep.Notes = append(rep.Notes, f)
	}
	return nil
}

func mappingPairs(n *yaml.Node) [][2]*yaml.Node {
	if n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	var out [][2]*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		out = append(out, [2]*yaml.Node{n.Content[i], n.Content[i+1]})
	}
	return out
}
