package compat

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/all"
)

// The key-by-key comparison: every key cloud-init's schema (Debian's 22.4
// package) gives a module ec2init implements is either in ec2init's schema
// for it or listed in docs/compatibility.md with the reason.

// keyReasons says why a key of an implemented module is not implemented.
// A key missing from ec2init's schema and from this table fails the test.
var keyReasons = map[string]string{
	"apt.generate_mirrorlists": "a Debian patch of cloud-init, not upstream cloud-init; Amazon Linux has no apt",
	"users.*.snapuser":         "snap users need snapd and an Ubuntu SSO account; no EC2 image ships them",
	"user.snapuser":            "snap users need snapd and an Ubuntu SSO account; no EC2 image ships them",
}

// moduleReasons says why a cloud-init module is not implemented.
var moduleReasons = map[string]string{
	"ubuntu_autoinstall":        "Ubuntu's installer (Subiquity), not an EC2 boot",
	"ubuntu_advantage":          "Ubuntu Pro subscriptions: Ubuntu-only, outside EC2",
	"ubuntu_pro":                "Ubuntu Pro subscriptions: Ubuntu-only, outside EC2",
	"ubuntu_drivers":            "Ubuntu's driver tool; EC2 drivers come with the AMI's kernel",
	"landscape":                 "Canonical's Landscape client: Ubuntu-only",
	"lxd":                       "LXD host setup: Ubuntu's snap; not an EC2 instance concern",
	"fan":                       "Ubuntu Fan networking: Ubuntu-only, superseded by VPC routing",
	"byobu":                     "a terminal multiplexer's default: Ubuntu-only",
	"raspberry_pi":              "Raspberry Pi hardware",
	"reset_rmc":                 "IBM PowerVM RMC",
	"refresh_rmc_and_interface": "IBM PowerVM RMC",
	"grub_dpkg":                 "debconf's GRUB install device for Ubuntu on other clouds; EC2 images boot without it",
	"apk_configure":             "Alpine's apk: not an EC2 AMI family ec2init targets",
	"zypper_add_repo":           "SUSE's zypper: not a distribution ec2init targets",
	"mcollective":               "MCollective: end-of-life since 2018",
	"migrator":                  "moves cloud-init's own old semaphore names; ec2init migrates its own",
	"scripts_vendor":            "EC2 has no vendor data",
	"ubuntu_telemetry":          "Ubuntu-only",
	"write_metadata":            "not a cloud-init module upstream",
}

// schemaDir holds the examples and the schema .ci/run extracts.
func schemaFile(t *testing.T) string {
	f := filepath.Join(filepath.Dir(examplesDir(t)+"/x"), "schema-cloud-config-v1.json")
	if _, err := os.Stat(f); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no %s (.ci/run extracts it from Debian's cloud-init package)", f)
		}
		t.Skipf("no %s: extract it from Debian's cloud-init package", f)
	}
	return f
}

// ciKeys reads cloud-init's schema: module name -> its key paths (top-level
// keys, nested ones dotted, list items and free-form names as "*").
func ciKeys(t *testing.T) (map[string][]string, map[string]bool) {
	b, err := os.ReadFile(schemaFile(t))
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Defs map[string]any `json:"$defs"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	deprecated := map[string]bool{}
	for name, def := range s.Defs {
		mod, ok := strings.CutPrefix(name, "cc_")
		if !ok {
			continue
		}
		paths := map[string]bool{}
		walkJSON(s.Defs, def, "", paths, deprecated, 0)
		for p := range paths {
			out[mod] = append(out[mod], p)
		}
		sort.Strings(out[mod])
	}
	return out, deprecated
}

func walkJSON(defs map[string]any, node any, prefix string, out, deprecated map[string]bool, depth int) {
	m, ok := node.(map[string]any)
	if !ok || depth > 8 {
		return
	}
	if ref, ok := m["$ref"].(string); ok {
		walkJSON(defs, defs[strings.TrimPrefix(ref, "#/$defs/")], prefix, out, deprecated, depth+1)
	}
	join := func(k string) string {
		if prefix == "" {
			return k
		}
		return prefix + "." + k
	}
	if props, ok := m["properties"].(map[string]any); ok {
		for k, sub := range props {
			p := join(k)
			out[p] = true
			if sm, ok := sub.(map[string]any); ok && sm["deprecated"] == true {
				deprecated[p] = true
			}
			walkJSON(defs, sub, p, out, deprecated, depth+1)
		}
	}
	for _, key := range []string{"patternProperties"} {
		if pp, ok := m[key].(map[string]any); ok {
			for _, sub := range pp {
				walkJSON(defs, sub, join("*"), out, deprecated, depth+1)
			}
		}
	}
	if ap, ok := m["additionalProperties"].(map[string]any); ok {
		walkJSON(defs, ap, join("*"), out, deprecated, depth+1)
	}
	switch it := m["items"].(type) {
	case map[string]any:
		walkJSON(defs, it, join("*"), out, deprecated, depth+1)
	case []any:
		for _, sub := range it {
			walkJSON(defs, sub, join("*"), out, deprecated, depth+1)
		}
	}
	for _, key := range []string{"oneOf", "anyOf", "allOf"} {
		if alts, ok := m[key].([]any); ok {
			for _, alt := range alts {
				walkJSON(defs, alt, prefix, out, deprecated, depth+1)
			}
		}
	}
}

// ecKeys are ec2init's key paths for module m, and the prefixes under
// which it accepts any key (free-form mappings).
func ecKeys(m modules.Module) (map[string]bool, []string) {
	paths := map[string]bool{}
	var open []string
	for _, f := range m.Schema().Keys {
		paths[f.Name] = true
		walkType(f.Type, f.Name, paths, &open, 0)
	}
	return paths, open
}

func walkType(t *config.Type, prefix string, out map[string]bool, open *[]string, depth int) {
	if t == nil || depth > 8 {
		return
	}
	switch t.Kind {
	case config.KindAny:
		*open = append(*open, prefix)
	case config.KindObject:
		if t.Extra {
			*open = append(*open, prefix)
		}
		for _, f := range t.Fields {
			p := prefix + "." + f.Name
			out[p] = true
			walkType(f.Type, p, out, open, depth+1)
		}
	case config.KindList, config.KindMap:
		walkType(t.Elem, prefix+".*", out, open, depth+1)
	case config.KindOneOf:
		for _, alt := range t.OneOf {
			walkType(alt, prefix, out, open, depth+1)
		}
	}
}

// canonical folds cloud-init's hyphen spellings, as ec2init reads them.
func canonical(p string) string { return strings.ReplaceAll(p, "-", "_") }

func TestModuleKeys(t *testing.T) {
	ci, deprecated := ciKeys(t)
	reg := all.Registry()
	var rows []string
	var unexplained []string
	mods := map[string]modules.Module{}
	for _, m := range reg.All() {
		mods[m.Name()] = m
	}
	names := make([]string, 0, len(ci))
	for n := range ci {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		m, ok := mods[name]
		if !ok {
			continue // a module ec2init does not implement: the modules table says so
		}
		have, open := ecKeys(m)
		for _, p := range ci[name] {
			c := canonical(p)
			if have[c] || have[p] || under(c, open) || ownedElsewhere(reg, c) {
				continue
			}
			reason, known := keyReasons[p]
			if !known {
				reason, known = keyReasons[c]
			}
			switch {
			case deprecated[p] && !known:
				reason = "deprecated in cloud-init's schema"
			case !known:
				unexplained = append(unexplained, p)
				reason = "not implemented"
			}
			rows = append(rows, fmt.Sprintf("| %s | `%s` | %s |", name, p, reason))
		}
	}
	sort.Strings(unexplained)
	region := "Every key cloud-init's schema (Debian's 22.4 package) gives a module ec2init implements is in\n" +
		"ec2init's schema, except these:\n\n| module | key | why |\n|---|---|---|\n" + strings.Join(rows, "\n") + "\n"
	if len(rows) == 0 {
		region = "Every key cloud-init's schema (Debian's 22.4 package) gives a module ec2init implements is in ec2init's schema.\n"
	}
	checkRegion(t, "keys", region)
	if len(unexplained) > 0 {
		t.Errorf("keys of implemented modules neither in ec2init's schema nor in keyReasons:\n%s", strings.Join(unexplained, "\n"))
	}
}

// under reports whether p is below a prefix that takes any key.
func under(p string, open []string) bool {
	for _, o := range open {
		if p == o || strings.HasPrefix(p, o+".") {
			return true
		}
	}
	return false
}

// ownedElsewhere: a top-level key cloud-init gives one module that ec2init
// reads in another (ssh_pwauth in ssh, say).
func ownedElsewhere(reg *modules.Registry, p string) bool {
	top, _, _ := strings.Cut(p, ".")
	_, ok := reg.Owner(top)
	return ok && !strings.Contains(p, ".")
}

// TestModules: every module of cloud-init's, implemented (with the package
// whose tests exercise it) or not (with the reason).
func TestModules(t *testing.T) {
	ci, _ := ciKeys(t)
	reg := all.Registry()
	mods := map[string]modules.Module{}
	for _, m := range reg.All() {
		mods[m.Name()] = m
	}
	names := make([]string, 0, len(ci))
	for n := range ci {
		names = append(names, n)
	}
	sort.Strings(names)
	var rows []string
	done := 0
	for _, name := range names {
		if m, ok := mods[name]; ok {
			done++
			pkg := reflect.TypeOf(m).PkgPath()
			rows = append(rows, fmt.Sprintf("| %s | supported | `%s` |", name, strings.TrimPrefix(pkg, "github.com/ec2init/ec2init/")))
			continue
		}
		reason, ok := moduleReasons[name]
		if !ok {
			reason = "not yet implemented"
		}
		rows = append(rows, fmt.Sprintf("| %s | not implemented: %s | |", name, reason))
	}
	region := fmt.Sprintf("cloud-init's modules (Debian's 22.4 package): %d of %d implemented.\n\n", done, len(names)) +
		"| module | in ec2init | tested in |\n|---|---|---|\n" + strings.Join(rows, "\n") + "\n"
	checkRegion(t, "modules", region)
}
