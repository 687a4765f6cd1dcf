// Package mounts implements cloud-init's mounts module: fstab entries from
// the cloud-config (mounts, mount_default_fields), IMDS block-device names
// resolved to devices (ephemeral0, swap, ebsN), the instance's ephemeral0
// mounted at /media/ephemeral0 by default (as Amazon Linux's cloud-init
// config does), and a swap file (swap).
//
// ec2init's lines in /etc/fstab carry comment=ec2init among their options:
// each run replaces those lines and never touches any other, so re-runs are
// idempotent and an entry whose mount point is null removes ec2init's line
// for that device. Mount points are created; then, on the running system
// only, systemctl daemon-reload, mount -a and swapon -a apply the table.
// Under another root (an image, a test) fstab is written and the commands
// are logged, not run.
//
// A field that would not stay one field of one line (a line break or other
// control character, blanks after the mount point, a leading '#', an empty
// value) is refused, never escaped into shape: that entry is skipped, the
// rest of the list is written as without it, and the module fails (the boot
// is degraded) naming the entry, the field and the value's start.
package mounts

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/disk"
)

// The keys.
const (
	KeyMounts   = "mounts"
	KeyDefaults = "mount_default_fields"
	KeySwap     = "swap"
	// KeyAliases is declared by disk_setup; mounts reads it too.
	KeyAliases = "device_aliases"
)

// FstabFile is the table written.
const FstabFile = "/etc/fstab"

// EphemeralMountPoint is where the instance's ephemeral0 is mounted when
// the cloud-config does not say otherwise: Amazon Linux's choice (its
// cloud-init config mounts ephemeral0 there), not cloud-init's /mnt.
const EphemeralMountPoint = "/media/ephemeral0"

// DefaultOptions are the mount options of an entry that gives none: nofail
// so a missing device never stops the boot; ordered after ec2init.service
// (which formats and lists the device on the first boot) and, like
// cloud-init's current default, _netdev so that ordering after a
// network-stage unit does not make a cycle with local-fs.target.
// x-systemd.after rather than x-systemd.requires: a failed ec2init run must
// not keep a disk from mounting on later boots.
const DefaultOptions = "defaults,nofail,x-systemd.after=ec2init.service,_netdev"

// defaultFields are mount_default_fields' default (the first two are not
// used: fs_spec and fs_file have no default).
var defaultFields = [6]*string{nil, nil, ptr("auto"), ptr(DefaultOptions), ptr("0"), ptr("2")}

func ptr(s string) *string { return &s }

// fieldType is one field of an fstab entry: cloud-init turns numbers into
// strings, and null means "the default".
var fieldType = config.OneOf(config.String(), config.Int(), config.Null())

// Mounts writes ec2init's fstab entries and the swap file, once per
// instance.
type Mounts struct{}

func (Mounts) Name() string                 { return "mounts" }
func (Mounts) Stage() modules.Stage         { return modules.StageNetwork }
func (Mounts) Frequency() modules.Frequency { return state.PerInstance }
func (Mounts) Schema() modules.Schema {
	return modules.Schema{
		Doc: "Add fstab entries (IMDS names such as ephemeral0 resolved; ephemeral0 at /media/ephemeral0 by default) and a swap file, then mount them.",
		Keys: []config.Field{
			{Name: KeyMounts, Type: config.ListOf(config.ListOf(fieldType)),
				Doc: "fstab entries [fs_spec, fs_file, fs_vfstype, fs_mntops, fs_freq, fs_passno]; a null or missing fs_file removes the device's entry."},
			{Name: KeyDefaults, Type: config.ListOf(fieldType), Default: `[null, null, auto, "` + DefaultOptions + `", "0", "2"]`,
				Doc: "Six values for the fields a mounts entry leaves out (the first two are ignored)."},
			{Name: KeySwap, Type: config.Object(
				config.Field{Name: "filename", Type: config.String(), Default: DefaultSwapFile, Doc: "Path of the swap file."},
				config.Field{Name: "size", Type: config.OneOf(config.Int(), config.String()), Default: "0 (no swap file)",
					Doc: "Bytes, a size such as 2G, or auto (sized from RAM and free space as cloud-init does)."},
				config.Field{Name: "maxsize", Type: config.OneOf(config.Int(), config.String()),
					Doc: "Upper bound for size: auto, in bytes or as a size such as 4G."},
			), Doc: "A swap file to create and enable."},
		},
	}
}

// Wanted: as cloud-init's, the module runs without its keys: the
// instance's ephemeral0 and swap devices are mounted by default.
func (Mounts) Wanted(*config.CloudConfig) bool { return true }

// Check holds the rules the schema types cannot say: entry lengths and
// size spellings.
func (Mounts) Check(source, key string, v *yaml.Node) []config.Diagnostic {
	var out []config.Diagnostic
	add := func(n *yaml.Node, p, format string, args ...any) {
		out = append(out, config.Diagnostic{Source: source, Line: n.Line, Column: n.Column, Path: p,
			Severity: config.SeverityError, Message: fmt.Sprintf(format, args...)})
	}
	switch key {
	case KeyMounts:
		if v.Kind != yaml.SequenceNode {
			return nil
		}
		for i, e := range v.Content {
			if e.Kind == yaml.SequenceNode && (len(e.Content) < 1 || len(e.Content) > 6) {
				add(e, fmt.Sprintf("%s[%d]", key, i), "expected 1 to 6 fields (fs_spec, fs_file, fs_vfstype, fs_mntops, fs_freq, fs_passno), got %d", len(e.Content))
			}
		}
	case KeyDefaults:
		if v.Kind == yaml.SequenceNode && len(v.Content) != 6 {
			add(v, key, "expected 6 values, got %d", len(v.Content))
		}
	case KeySwap:
		if v.Kind != yaml.MappingNode {
			return nil
		}
		for i := 0; i+1 < len(v.Content); i += 2 {
			k, val := v.Content[i].Value, v.Content[i+1]
			if (k != "size" && k != "maxsize") || val.Tag == "!!null" {
				continue
			}
			if k == "size" && strings.EqualFold(val.Value, "auto") {
				continue
			}
			if _, err := parseSize(val); err != nil {
				add(val, key+"."+k, "%v", err)
			}
		}
	}
	return out
}

// entry is one mounts item: fields as given (nil: null), n of them.
type entry struct {
	index  int
	line   int
	fields [6]*string
	n      int
}

func (Mounts) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	log := env.Logger().With(zap.String("module", "mounts"))
	v := disk.NewView(env)
	var failures []string

	entries, errs := parseEntries(cfg)
	failures = append(failures, errs...)
	defaults, err := parseDefaults(cfg)
	if err != nil {
		return err
	}
	var aliases map[string]string
	if _, err := cfg.Decode(KeyAliases, &aliases); err != nil {
		return err
	}
	var swap swapConfig
	if val, ok := cfg.Get(KeySwap); ok {
		if swap, err = parseSwap(val.Node, fmt.Sprintf("%s:%d: %s", val.Source, val.KeyLine, KeySwap)); err != nil {
			return err
		}
	} else {
		swap = swapConfig{filename: DefaultSwapFile}
	}

	old, err := env.Root.ReadFile(FstabFile)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	tab := parseFstab(string(old))

	own := plan(v, log, entries, defaults, aliases, tab)

	if file, err := setupSwap(ctx, v, swap); err != nil {
		failures = append(failures, fmt.Sprintf("swap file %s: %v", swap.filename, err))
	} else if file != "" {
		if line, ok := tab.foreignSpecs[file]; ok {
			log.Info("mounts: the swap file is already in /etc/fstab; its line is kept", zap.String("line", line))
		} else {
			own = append(own, Entry{file, "none", "swap", "sw", "0", "0"})
		}
	}

	// The last word before writing, whatever each field came from (a
	// device name from IMDS, the swap file's name).
	checked := own[:0]
	for _, e := range own {
		if err := e.check(); err != nil {
			failures = append(failures, fmt.Sprintf("fstab entry for mount point %.40q: %v; skipped", e[1], err))
			continue
		}
		checked = append(checked, e)
	}
	own = checked

	if len(own) == 0 && len(tab.own) == 0 {
		log.Info("mounts: nothing to mount (no mounts or swap configured, no ephemeral0 or swap device present)")
		return joinFailures(failures)
	}
	if err := writeFstab(env, string(old), tab.render(own)); err != nil {
		return err
	}
	hasSwap := false
	for _, e := range own {
		if e[2] == "swap" {
			hasSwap = true
			continue
		}
		if strings.HasPrefix(e[1], "/") {
			if err := mkdirMissing(env.Root, e[1]); err != nil {
				failures = append(failures, fmt.Sprintf("mount point %s: %v", e[1], err))
			}
		}
	}
	if len(own) > 0 {
		if err := activate(ctx, env, hasSwap); err != nil {
			failures = append(failures, err.Error())
		}
	}
	return joinFailures(failures)
}

func joinFailures(failures []string) error {
	if len(failures) == 0 {
		return nil
	}
	return errors.New(strings.Join(failures, "; "))
}

// writeFstab replaces fstab atomically when its content changes, keeping
// its mode (0644 for a new one).
func writeFstab(env *modules.Env, old, text string) error {
	if old == text {
		env.Logger().Info("mounts: " + FstabFile + " already as configured")
		return nil
	}
	perm := os.FileMode(0o644)
	if fi, err := env.Root.Stat(FstabFile); err == nil {
		perm = fi.Mode().Perm()
	}
	if err := env.Root.WriteFile(FstabFile, []byte(text), perm, nil); err != nil {
		return err
	}
	env.Logger().Info("mounts: " + FstabFile + " updated")
	return nil
}

func parseEntries(cfg *config.CloudConfig) ([]entry, []string) {
	val, ok := cfg.Get(KeyMounts)
	if !ok || (val.Node.Kind == yaml.ScalarNode && val.Node.Tag == "!!null") {
		return nil, nil
	}
	if val.Node.Kind != yaml.SequenceNode {
		return nil, []string{fmt.Sprintf("%s:%d: %s: expected a list of fstab entries", val.Source, val.KeyLine, KeyMounts)}
	}
	var out []entry
	var errs []string
	for i, item := range val.Node.Content {
		e, err := parseEntry(i, item)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s[%d] (line %d): %v; skipped", KeyMounts, i, item.Line, err))
			continue
		}
		out = append(out, e)
	}
	return out, errs
}

func parseEntry(i int, n *yaml.Node) (entry, error) {
	e := entry{index: i, line: n.Line}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind != yaml.SequenceNode {
		return e, errors.New("expected a list [fs_spec, fs_file, ...]")
	}
	if len(n.Content) < 1 || len(n.Content) > 6 {
		return e, fmt.Errorf("expected 1 to 6 fields, got %d", len(n.Content))
	}
	for j, f := range n.Content {
		s, err := scalar(f)
		if err != nil {
			return e, fmt.Errorf("field %d: %w", j+1, err)
		}
		e.fields[j] = s
	}
	e.n = len(n.Content)
	if e.fields[0] == nil || *e.fields[0] == "" {
		return e, errors.New("fs_spec (the device) is required")
	}
	// A field that would not stay one field of one line refuses the
	// whole entry: the rest of the list is still written, and the module
	// reports the refusal (degraded).
	for j, f := range e.fields[:e.n] {
		if f == nil {
			continue
		}
		if err := checkField(j, *f); err != nil {
			return e, fieldError(j, *f, err)
		}
	}
	return e, nil
}

// scalar reads one field: a string as written, nil for null.
func scalar(n *yaml.Node) (*string, error) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind != yaml.ScalarNode {
		return nil, errors.New("expected a string")
	}
	if n.Tag == "!!null" {
		return nil, nil
	}
	return ptr(n.Value), nil
}

func parseDefaults(cfg *config.CloudConfig) ([6]*string, error) {
	val, ok := cfg.Get(KeyDefaults)
	if !ok || (val.Node.Kind == yaml.ScalarNode && val.Node.Tag == "!!null") {
		return defaultFields, nil
	}
	where := fmt.Sprintf("%s:%d: %s", val.Source, val.KeyLine, KeyDefaults)
	if val.Node.Kind != yaml.SequenceNode || len(val.Node.Content) != 6 {
		return defaultFields, fmt.Errorf("%s: expected a list of 6 values", where)
	}
	var out [6]*string
	for i, f := range val.Node.Content {
		s, err := scalar(f)
		if err != nil {
			return defaultFields, fmt.Errorf("%s[%d]: %w", where, i, err)
		}
		out[i] = s
	}
	// A null default for a field that needs a value takes ec2init's own.
	for i := 2; i < 6; i++ {
		if out[i] == nil {
			out[i] = defaultFields[i]
		}
		if err := checkField(i, *out[i]); err != nil {
			return defaultFields, fmt.Errorf("%s[%d]: %w", where, i, fieldError(i, *out[i], err))
		}
	}
	return out, nil
}

// item is an entry with its device resolved.
type item struct {
	entry
	raw  string // fs_spec as given
	meta string // the IMDS name it came from
	dev  string // "" when it could not be resolved
}

// plan resolves the entries and adds the defaults, returning ec2init's
// fstab entries in order.
func plan(v disk.View, log *zap.Logger, entries []entry, defaults [6]*string, aliases map[string]string, tab fstab) []Entry {
	var items []item
	for _, e := range entries {
		it := item{entry: e, raw: *e.fields[0]}
		it.dev, it.meta = resolveSpec(v, log, it.raw, aliases)
		items = append(items, it)
	}

	// An entry without a mount point removes the device: the entries
	// before it and the defaults (cloud-init's order of precedence).
	denied := map[string]bool{}
	var kept []item
	for i := len(items) - 1; i >= 0; i-- {
		it := items[i]
		if it.n < 2 || it.fields[1] == nil {
			for _, k := range []string{it.raw, it.meta, it.dev} {
				if k != "" {
					denied[k] = true
				}
			}
			log.Info("mounts: entry without a mount point: the device is not mounted", zap.Int("entry", it.index), zap.String("device", it.raw))
			continue
		}
		if denied[it.raw] || (it.meta != "" && denied[it.meta]) || (it.dev != "" && denied[it.dev]) {
			log.Info("mounts: entry removed by a later one without a mount point", zap.Int("entry", it.index), zap.String("device", it.raw))
			continue
		}
		kept = append([]item{it}, kept...)
	}

	var out []Entry
	used := map[string]bool{}
	for _, it := range kept {
		if it.dev == "" {
			continue
		}
		if line, ok := tab.foreignSpecs[it.dev]; ok {
			log.Info("mounts: device already in /etc/fstab on a line not ec2init's; left to that line",
				zap.Int("entry", it.index), zap.String("device", it.dev), zap.String("line", line))
			continue
		}
		var e Entry
		e[0], e[1] = it.dev, *it.fields[1]
		for i := 2; i < 6; i++ {
			if i < it.n && it.fields[i] != nil {
				e[i] = *it.fields[i]
			} else {
				e[i] = *defaults[i]
			}
		}
		used[it.dev], used[it.raw] = true, true
		if it.meta != "" {
			used[it.meta] = true
		}
		out = append(out, e)
	}

	// The instance's own devices, unless configured or removed above.
	for _, d := range []struct {
		meta string
		e    Entry
	}{
		{"ephemeral0", Entry{"", EphemeralMountPoint, *defaults[2], *defaults[3], *defaults[4], *defaults[5]}},
		{"swap", Entry{"", "none", "swap", "sw", "0", "0"}},
	} {
		name, ok := v.Resolve(d.meta, aliases)
		if !ok || used[d.meta] || denied[d.meta] {
			continue
		}
		if !name.Exists {
			log.Info("mounts: the instance maps "+d.meta+" but the device is not present; not mounted by default", zap.String("device", name.Path))
			continue
		}
		if name.InstanceStoreNVMe {
			// Xen instances got ephemeral0 formatted by EC2; a Nitro
			// instance's NVMe instance store is raw. Mounting it is the
			// user's call: fs_setup it, and list it in mounts.
			log.Info("mounts: "+d.meta+" is a Nitro instance-store NVMe disk, unformatted at launch; not mounted by default (format it with fs_setup and list it in mounts)",
				zap.String("device", name.Path))
			continue
		}
		if d.meta == "ephemeral0" && denied["ephemeral"] {
			continue
		}
		dev := name.Path
		if p, ok := v.PartitionPath(dev, 1); ok {
			dev = p
		}
		if used[dev] || denied[dev] {
			continue
		}
		if _, ok := tab.foreignSpecs[dev]; ok {
			log.Info("mounts: the instance's "+d.meta+" is already in /etc/fstab; left to that line", zap.String("device", dev))
			continue
		}
		d.e[0] = dev
		log.Info("mounts: mounting the instance's "+d.meta+" by default", zap.String("device", dev), zap.String("mount_point", d.e[1]))
		out = append(out, d.e)
	}
	return out
}

// resolveSpec maps fs_spec to what fstab gets: IMDS names and aliases to
// their device (partition 1 when the device has one, as cloud-init
// does), short names to /dev paths; the rest as written. dev is "" for an
// IMDS name the instance does not map.
func resolveSpec(v disk.View, log *zap.Logger, spec string, aliases map[string]string) (dev, meta string) {
	name, ok := v.Resolve(spec, aliases)
	if !ok {
		log.Warn("mounts: the instance has no such device in its block-device-mapping; entry skipped", zap.String("device", spec))
		return "", name.Meta
	}
	dev = name.Path
	if !strings.HasPrefix(dev, "/") {
		return dev, name.Meta
	}
	_, aliased := aliases[spec]
	switch {
	case name.Partition > 0:
		p, ok := v.PartitionPath(dev, name.Partition)
		if !ok {
			log.Warn("mounts: partition not present now; written as the kernel would name it", zap.String("device", spec), zap.String("path", p))
		}
		dev = p
	case (name.Meta != "" || aliased) && name.Exists:
		if p, ok := v.PartitionPath(dev, 1); ok {
			dev = p
		}
	case name.Meta != "" && !name.Exists:
		log.Warn("mounts: the instance's device is not present now; written under its mapped name (nofail keeps the boot going)",
			zap.String("device", spec), zap.String("path", dev))
	}
	if dev != spec {
		log.Info("mounts: device resolved", zap.String("device", spec), zap.String("path", dev))
	}
	return dev, name.Meta
}

// activate applies fstab on the running system: systemd re-reads it (its
// mount units come from it), mount -a mounts what is not mounted, swapon -a
// enables swap. Under another root nothing runs: mounting there would
// mount on this machine.
func activate(ctx context.Context, env *modules.Env, hasSwap bool) error {
	log := env.Logger().With(zap.String("module", "mounts"))
	systemd := false
	if ok, err := env.Root.Exists("/run/systemd/system"); err == nil && ok {
		systemd = true
	}
	cmds := ActivationArgv(systemd, hasSwap)
	if !env.Root.IsHost() || (env.Runner != nil && env.Runner.Chroot) {
		var show []string
		for _, c := range cmds {
			show = append(show, strings.Join(c, " "))
		}
		log.Info("mounts: the root is not the running system; fstab written, not applied",
			zap.String("root", env.Root.Prefix()), zap.String("would_run", strings.Join(show, "; ")))
		return nil
	}
	for _, argv := range cmds {
		var out bytes.Buffer
		res, err := env.Runner.Run(ctx, sys.Cmd{Name: "mounts: " + strings.Join(argv, " "), Argv: argv, Output: &out})
		env.ConsoleWriter().Write(out.Bytes())
		if err == nil && res.ExitCode == 0 {
			continue
		}
		msg := disk.FirstLine(out.String())
		if err != nil {
			msg = err.Error()
		}
		if argv[0] == "systemctl" {
			// mount -a works from fstab itself; systemd catches up later.
			log.Warn("mounts: systemctl daemon-reload failed", zap.String("output", msg))
			continue
		}
		return fmt.Errorf("%s failed (exit %d): %s", strings.Join(argv, " "), res.ExitCode, msg)
	}
	return nil
}

// ActivationArgv lists the commands that apply fstab, in order.
func ActivationArgv(systemd, swap bool) [][]string {
	var out [][]string
	if systemd {
		out = append(out, []string{"systemctl", "daemon-reload"})
	}
	out = append(out, []string{"mount", "-a"})
	if swap {
		out = append(out, []string{"swapon", "-a"})
	}
	return out
}
