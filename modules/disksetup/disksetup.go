// Package disksetup implements cloud-init's disk_setup module: partition
// tables (disk_setup) and filesystems (fs_setup) on blank disks, such as a
// new EBS volume or an instance-store device, once per instance.
//
// Safety comes first, more strictly than in cloud-init: a disk or
// partition that holds a partition table, partitions or any signature
// blkid recognises (a filesystem, swap, LVM, RAID) is never written unless
// its entry says overwrite: true; where it is unclear what a device holds
// (blkid fails) it is taken as in use. That includes fs_setup's
// partition: none and replace_fs, which cloud-init applies without
// overwrite. A mounted device is never written at all. Everything skipped
// is logged with what was found.
package disksetup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"

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
	KeyDisks   = "disk_setup"
	KeyFS      = "fs_setup"
	KeyAliases = "device_aliases"
)

// settleTimeout bounds the wait for new partitions' device nodes.
const settleTimeout = 10 * time.Second

// cmdTimeout bounds one partitioning or mkfs command: generous for a big
// volume, but a hung tool must not hold the boot (and the logins behind
// it) forever.
const cmdTimeout = 30 * time.Minute

var layoutType = config.OneOf(config.Bool(), config.Enum("remove"),
	config.ListOf(config.OneOf(config.Int(), config.ListOf(config.OneOf(config.Int(), config.String())))))

// DiskSetup partitions disks and makes filesystems, once per instance.
type DiskSetup struct{}

func (DiskSetup) Name() string                 { return "disk_setup" }
func (DiskSetup) Stage() modules.Stage         { return modules.StageNetwork }
func (DiskSetup) Frequency() modules.Frequency { return state.PerInstance }
func (DiskSetup) Schema() modules.Schema {
	return modules.Schema{
		Doc: "Partition blank disks (disk_setup) and make filesystems (fs_setup); never touches a device in use unless overwrite: true.",
		Keys: []config.Field{
			{Name: KeyDisks, Type: config.MapOf(config.Object(
				config.Field{Name: "table_type", Type: config.Enum("mbr", "gpt"), Default: "mbr", Doc: "Partition table to create."},
				config.Field{Name: "layout", Type: layoutType, Default: "false",
					Doc: "true: one partition over the disk; a list of percentages (or [percent, type]); remove: wipe the table (needs overwrite)."},
				config.Field{Name: "overwrite", Type: config.Bool(), Default: "false",
					Doc: "Replace a table, partitions or filesystem already on the disk (data loss)."},
			)), Doc: "Partition tables, by disk: a /dev path, an alias or an IMDS name such as ephemeral0."},
			{Name: KeyFS, Type: config.ListOf(config.Object(
				config.Field{Name: "device", Type: config.String(), Required: true,
					Doc: "Disk or partition: a /dev path, an alias or IMDS name, <name>.<N> for its partition N."},
				config.Field{Name: "filesystem", Type: config.String(), Doc: "Filesystem to make (mkfs.<filesystem>; swap uses mkswap)."},
				config.Field{Name: "label", Type: config.String(), Doc: "Filesystem label."},
				config.Field{Name: "partition", Type: config.OneOf(config.Int(), config.Enum("auto", "any", "none")), Default: "any",
					Doc: "N: that partition; auto/any: skip if a partition has this filesystem (and label, for auto), else the first blank one; none: the whole device."},
				config.Field{Name: "overwrite", Type: config.Bool(), Default: "false", Doc: "Format even over an existing filesystem (data loss)."},
				config.Field{Name: "replace_fs", Type: config.String(), Doc: "With partition any and overwrite: format over a partition holding this filesystem."},
				config.Field{Name: "extra_opts", Type: config.OneOf(config.String(), config.ListOf(config.String())), Doc: "More arguments for mkfs."},
				config.Field{Name: "cmd", Type: config.OneOf(config.String(), config.ListOf(config.String())),
					Doc: "Command instead of mkfs (%(device)s, %(label)s, %(filesystem)s substituted); a string runs with sh -c."},
			)), Doc: "Filesystems to make, in order, after the partition tables."},
			{Name: KeyAliases, Type: config.MapOf(config.String()),
				Doc: "Names for devices, usable in disk_setup, fs_setup and mounts (data: /dev/xvdf)."},
		},
	}
}

// Check holds the layout rules the schema types cannot say.
func (DiskSetup) Check(source, key string, v *yaml.Node) []config.Diagnostic {
	if key != KeyDisks || v.Kind != yaml.MappingNode {
		return nil
	}
	var out []config.Diagnostic
	for i := 0; i+1 < len(v.Content); i += 2 {
		name, spec := v.Content[i].Value, v.Content[i+1]
		if spec.Kind != yaml.MappingNode {
			continue
		}
		table := "mbr"
		var layout *yaml.Node
		for j := 0; j+1 < len(spec.Content); j += 2 {
			switch spec.Content[j].Value {
			case "table_type":
				table = spec.Content[j+1].Value
			case "layout":
				layout = spec.Content[j+1]
			}
		}
		if layout == nil || layout.Kind != yaml.SequenceNode || (table != "mbr" && table != "gpt") {
			continue
		}
		parts, err := parseLayout(layout)
		if err == nil {
			_, err = Script(table, parts, 1<<40)
		}
		if err != nil {
			out = append(out, config.Diagnostic{Source: source, Line: layout.Line, Column: layout.Column,
				Path: key + "." + name + ".layout", Severity: config.SeverityError, Message: strings.TrimPrefix(err.Error(), "layout: ")})
		}
	}
	return out
}

func (DiskSetup) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	r := &run{v: disk.NewView(env), env: env, log: env.Logger().With(zap.String("module", "disk_setup"))}
	if _, err := cfg.Decode(KeyAliases, &r.aliases); err != nil {
		return err
	}
	var failures []string
	if val, ok := cfg.Get(KeyDisks); ok && val.Node.Tag != "!!null" {
		if val.Node.Kind != yaml.MappingNode {
			return fmt.Errorf("%s:%d: %s: expected a mapping of disks", val.Source, val.KeyLine, KeyDisks)
		}
		for i := 0; i+1 < len(val.Node.Content); i += 2 {
			name := val.Node.Content[i].Value
			spec, err := parseDisk(val.Node.Content[i+1])
			if err == nil {
				err = r.partition(ctx, name, spec)
			}
			if err != nil {
				failures = append(failures, fmt.Sprintf("%s.%s: %v", KeyDisks, name, err))
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
	if val, ok := cfg.Get(KeyFS); ok && val.Node.Tag != "!!null" {
		if val.Node.Kind != yaml.SequenceNode {
			return fmt.Errorf("%s:%d: %s: expected a list of filesystems", val.Source, val.KeyLine, KeyFS)
		}
		for i, n := range val.Node.Content {
			spec, err := parseFS(n)
			if err == nil {
				err = r.mkfs(ctx, spec)
			}
			if err != nil {
				failures = append(failures, fmt.Sprintf("%s[%d] (line %d): %v", KeyFS, i, n.Line, err))
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
	if len(failures) > 0 {
		return errors.New("disk_setup: " + strings.Join(failures, "; "))
	}
	return nil
}

// run is one Run's state.
type run struct {
	v       disk.View
	env     *modules.Env
	log     *zap.Logger
	aliases map[string]string
}

// diskSpec is one disk_setup entry.
type diskSpec struct {
	table     string
	layout    []part // nil: none
	all       bool   // layout: true
	remove    bool   // layout: remove
	overwrite bool
}

func parseDisk(n *yaml.Node) (diskSpec, error) {
	s := diskSpec{table: "mbr"}
	if n.Kind != yaml.MappingNode {
		return s, errors.New("expected a mapping with table_type, layout, overwrite")
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i].Value, n.Content[i+1]
		switch k {
		case "table_type":
			if v.Value != "mbr" && v.Value != "gpt" {
				return s, fmt.Errorf("table_type: %q: expected mbr or gpt", v.Value)
			}
			s.table = v.Value
		case "overwrite":
			b, err := config.ParseBool(v.Value)
			if v.Kind != yaml.ScalarNode || err != nil {
				return s, errors.New("overwrite: expected true or false")
			}
			s.overwrite = b
		case "layout":
			switch {
			case v.Kind == yaml.ScalarNode && v.Value == "remove":
				s.remove = true
			case v.Kind == yaml.ScalarNode:
				b, err := config.ParseBool(v.Value)
				if err != nil {
					return s, errors.New("layout: expected true, false, remove or a list of percentages")
				}
				s.all = b
			default:
				parts, err := parseLayout(v)
				if err != nil {
					return s, err
				}
				s.layout = parts
			}
		}
	}
	if s.all {
		s.layout = []part{{percent: 100}}
	}
	return s, nil
}

func parseLayout(n *yaml.Node) ([]part, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, errors.New("layout: expected a list of percentages")
	}
	var out []part
	for i, item := range n.Content {
		var p part
		var pct *yaml.Node
		switch {
		case item.Kind == yaml.ScalarNode:
			pct = item
		case item.Kind == yaml.SequenceNode && len(item.Content) == 2 && item.Content[1].Kind == yaml.ScalarNode:
			pct = item.Content[0]
			p.typ = item.Content[1].Value
		default:
			return nil, fmt.Errorf("layout[%d]: expected a percentage or [percentage, partition type]", i)
		}
		v, err := strconv.Atoi(pct.Value)
		if pct.Kind != yaml.ScalarNode || err != nil {
			return nil, fmt.Errorf("layout[%d]: %q is not a whole percentage", i, pct.Value)
		}
		p.percent = v
		out = append(out, p)
	}
	return out, nil
}

// disk resolves a disk_setup or fs_setup device name. A nil error with an
// empty path means "skip" (logged): an IMDS name the instance has no
// device for.
func (r *run) disk(name string) (disk.Name, error) {
	n, ok := r.v.Resolve(name, r.aliases)
	if !ok {
		r.log.Info("disk_setup: the instance has no such device in its block-device-mapping; skipped", zap.String("device", name))
		return disk.Name{}, nil
	}
	if !strings.HasPrefix(n.Path, "/") {
		return disk.Name{}, fmt.Errorf("%q is not a device path", n.Path)
	}
	if !r.v.IsBlockDevice(n.Path) {
		if n.Meta != "" {
			// A mapped name no device carries (and no Nitro NVMe instance
			// store stands for it).
			r.log.Warn("disk_setup: the instance's device is not present under its mapped name; skipped",
				zap.String("device", name), zap.String("path", n.Path))
			return disk.Name{}, nil
		}
		where := ""
		if !r.env.Root.IsHost() {
			where = " under the root " + r.env.Root.Prefix()
		}
		return disk.Name{}, fmt.Errorf("%s is not a block device%s", n.Path, where)
	}
	return n, nil
}

// partition writes the partition table of one disk_setup entry.
func (r *run) partition(ctx context.Context, name string, s diskSpec) error {
	if !s.remove && len(s.layout) == 0 {
		r.log.Info("layout is false: the disk is not partitioned", zap.String("disk", name))
		return nil
	}
	n, err := r.disk(name)
	if err != nil || n.Path == "" {
		return err
	}
	if n.Partition > 0 {
		return fmt.Errorf("%s names a partition; disk_setup partitions whole disks", name)
	}
	b, err := r.v.DeviceOf(n.Path)
	if err != nil {
		return err
	}
	if b.Partition > 0 {
		return fmt.Errorf("%s is partition %d of %s; disk_setup partitions whole disks", n.Path, b.Partition, b.Disk)
	}
	dev := b.DevPath()
	log := r.log.With(zap.String("disk", dev))
	if why := r.inUse(b.Name); why != "" {
		log.Warn("disk_setup: the disk is in use; not touched, whatever overwrite says", zap.String("why", why))
		return nil
	}
	parts, err := r.v.Partitions(b.Name)
	if err != nil {
		return err
	}
	sig, perr := r.v.Probe(ctx, dev)
	inUse := describe(sig, perr, len(parts))
	if s.remove {
		if !s.overwrite {
			log.Warn("disk_setup: layout remove wipes the disk's table and filesystems; it needs overwrite: true; not touched", zap.String("found", inUse))
			return nil
		}
		return r.wipe(ctx, dev, parts)
	}
	if inUse != "" && !s.overwrite {
		log.Info("disk_setup: the disk is not blank; left as it is (overwrite: true replaces it)", zap.String("found", inUse))
		return nil
	}
	script, err := Script(s.table, s.layout, int64(b.Sectors)*512)
	if err != nil {
		return err
	}
	hp, err := r.v.HostPath(dev)
	if err != nil {
		return err
	}
	if inUse != "" {
		log.Warn("disk_setup: overwrite: true: replacing what the disk holds", zap.String("found", inUse))
	}
	// --wipe: old signatures on the disk and where the new partitions
	// start go, so an old filesystem cannot reappear in a new partition.
	// No --force: sfdisk still refuses a disk in use.
	if err := r.cmd(ctx, script, "sfdisk", "--quiet", "--wipe", "always", "--wipe-partitions", "always", hp); err != nil {
		return err
	}
	if err := r.settle(ctx, b.Name, hp, len(s.layout)); err != nil {
		return err
	}
	log.Info("disk_setup: partition table written", zap.String("table", s.table), zap.Int("partitions", len(s.layout)))
	return nil
}

// describe says what makes a device not blank; "" when it is blank.
func describe(sig disk.Signature, perr error, partitions int) string {
	var what []string
	if perr != nil {
		what = append(what, "unknown content ("+perr.Error()+")")
	} else if !sig.Empty() {
		what = append(what, sig.String())
	}
	if partitions > 0 {
		what = append(what, strconv.Itoa(partitions)+" partition(s)")
	}
	return strings.Join(what, ", ")
}

// settle makes the kernel and /dev know the new table: some kernels do not
// re-read a table sfdisk wrote (partx adds the partitions), and udev may
// still be making the nodes.
func (r *run) settle(ctx context.Context, name, hp string, want int) error {
	if err := r.cmd(ctx, "", "partx", "--update", hp); err != nil {
		r.log.Info("disk_setup: partx --update", zap.Error(err))
	}
	if err := r.cmd(ctx, "", "udevadm", "settle", "--timeout=10"); err != nil && !errors.Is(err, exec.ErrNotFound) {
		r.log.Info("disk_setup: udevadm settle", zap.Error(err))
	}
	deadline := time.Now().Add(settleTimeout)
	for {
		parts, err := r.v.Partitions(name)
		ready := err == nil && len(parts) >= want
		for _, p := range parts {
			ready = ready && r.v.IsBlockDevice(p.DevPath())
		}
		if ready {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the new partitions of /dev/%s did not appear within %s", name, settleTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// wipe removes the signatures of the disk's partitions, then its own
// (the partition table), and drops the partitions from the kernel.
func (r *run) wipe(ctx context.Context, dev string, parts []disk.Block) error {
	for _, p := range append(parts, disk.Block{Name: strings.TrimPrefix(dev, "/dev/")}) {
		hp, err := r.v.HostPath(p.DevPath())
		if err != nil {
			return err
		}
		if err := r.cmd(ctx, "", "wipefs", "--all", hp); err != nil {
			return err
		}
	}
	hp, err := r.v.HostPath(dev)
	if err != nil {
		return err
	}
	if len(parts) > 0 {
		if err := r.cmd(ctx, "", "partx", "--delete", hp); err != nil {
			r.log.Info("disk_setup: partx --delete", zap.Error(err))
		}
	}
	r.log.Warn("disk_setup: layout remove: the disk's partition table and filesystems were wiped", zap.String("disk", dev))
	return nil
}

// inUse says why the block device called name, or any partition of it,
// is in use: mounted, enabled as swap, or held by another device (LVM,
// RAID, dm-crypt); "" when nothing the root shows says so.
func (r *run) inUse(name string) string {
	owns := func(b disk.Block) bool { return b.Name == name || b.Disk == name }
	if ms, err := r.v.Mounts(); err == nil {
		for _, m := range ms {
			if b, err := r.v.BlockOfMount(m); err == nil && owns(b) {
				return fmt.Sprintf("/dev/%s is mounted at %s", b.Name, m.MountPoint)
			}
		}
	}
	if swaps, err := r.env.Root.ReadFile(disk.SwapsFile); err == nil {
		for _, line := range strings.Split(string(swaps), "\n") {
			f := strings.Fields(line)
			if len(f) == 0 || !strings.HasPrefix(f[0], "/dev/") {
				continue
			}
			if b, err := r.v.DeviceOf(disk.Unescape(f[0])); err == nil && owns(b) {
				return f[0] + " is in use as swap"
			}
		}
	}
	names := []string{name}
	if parts, err := r.v.Partitions(name); err == nil {
		for _, p := range parts {
			names = append(names, p.Name)
		}
	}
	for _, n := range names {
		if hs := r.v.Holders(n); len(hs) > 0 {
			return fmt.Sprintf("/dev/%s is held by %s", n, strings.Join(hs, ", "))
		}
	}
	return ""
}

// cmd runs argv with stdin (none when ""), its output to the console.
func (r *run) cmd(ctx context.Context, stdin string, argv ...string) error {
	var out bytes.Buffer
	c := sys.Cmd{Name: "disk_setup: " + argv[0], Argv: argv, Output: &out, Env: map[string]string{"LANG": "C"}, Timeout: cmdTimeout}
	if stdin != "" {
		c.Stdin = strings.NewReader(stdin)
	}
	res, err := r.env.Runner.Run(ctx, c)
	r.env.ConsoleWriter().Write(out.Bytes())
	if err != nil {
		return err
	}
	if res.TimedOut {
		return fmt.Errorf("%s timed out after %s", argv[0], cmdTimeout)
	}
	if res.ExitCode != 0 || res.Signal != "" {
		return fmt.Errorf("%s exited %d: %s", argv[0], res.ExitCode, disk.FirstLine(out.String()))
	}
	return nil
}
