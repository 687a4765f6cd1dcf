package disksetup

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/modules/internal/disk"
)

// fsSpec is one fs_setup entry.
type fsSpec struct {
	device    string
	fstype    string
	label     string
	partition string // auto, any, none or a number
	overwrite bool
	replaceFS string
	extraOpts []string
	cmd       []string // argv, substituted
	shell     string   // a cmd string, for sh -c
}

func parseFS(n *yaml.Node) (fsSpec, error) {
	s := fsSpec{partition: "any"}
	if n.Kind != yaml.MappingNode {
		return s, errors.New("expected a mapping with device, filesystem, label, ...")
	}
	partGiven := false
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i].Value, n.Content[i+1]
		if v.Tag == "!!null" {
			continue
		}
		str := func() (string, error) {
			if v.Kind != yaml.ScalarNode {
				return "", fmt.Errorf("%s: expected a string", k)
			}
			return v.Value, nil
		}
		list := func() ([]string, error) {
			switch v.Kind {
			case yaml.ScalarNode:
				return strings.Fields(v.Value), nil
			case yaml.SequenceNode:
				var out []string
				if err := v.Decode(&out); err != nil {
					return nil, fmt.Errorf("%s: expected a string or a list of strings", k)
				}
				return out, nil
			}
			return nil, fmt.Errorf("%s: expected a string or a list of strings", k)
		}
		var err error
		switch k {
		case "device":
			s.device, err = str()
		case "filesystem":
			s.fstype, err = str()
		case "label":
			s.label, err = str()
		case "replace_fs":
			s.replaceFS, err = str()
		case "partition":
			s.partition, err = str()
			s.partition = strings.ToLower(s.partition)
			partGiven = true
			if err == nil && !isPartition(s.partition) {
				err = fmt.Errorf("partition: %q: expected auto, any, none or a partition number", v.Value)
			}
		case "overwrite":
			s.overwrite, err = config.ParseBool(v.Value)
			if err != nil || v.Kind != yaml.ScalarNode {
				err = errors.New("overwrite: expected true or false")
			}
		case "extra_opts":
			s.extraOpts, err = list()
		case "cmd":
			if v.Kind == yaml.ScalarNode {
				s.shell = v.Value
			} else {
				s.cmd, err = list()
			}
		}
		if err != nil {
			return s, err
		}
	}
	if s.device == "" {
		return s, errors.New("device is required")
	}
	if base, p := disk.SplitDotted(s.device); p > 0 {
		if partGiven && s.partition != strconv.Itoa(p) {
			return s, fmt.Errorf("device %s names partition %d but partition is %s", s.device, p, s.partition)
		}
		s.device, s.partition = base, strconv.Itoa(p)
	}
	if s.fstype == "" && s.shell == "" && len(s.cmd) == 0 {
		return s, errors.New("filesystem (or cmd) is required")
	}
	return s, nil
}

func isPartition(p string) bool {
	switch p {
	case "auto", "any", "none":
		return true
	}
	n, err := strconv.Atoi(p)
	return err == nil && n > 0
}

// mkfs makes one fs_setup filesystem.
func (r *run) mkfs(ctx context.Context, s fsSpec) error {
	n, err := r.disk(s.device)
	if err != nil || n.Path == "" {
		return err
	}
	b, err := r.v.DeviceOf(n.Path)
	if err != nil {
		return err
	}
	log := r.log.With(zap.String("device", s.device), zap.String("filesystem", s.fstype), zap.String("label", s.label))
	var target disk.Block
	switch s.partition {
	case "auto", "any":
		t, done, err := r.choose(ctx, log, b, s)
		if err != nil || done {
			return err
		}
		target = t
	case "none":
		target = b
	default:
		num, _ := strconv.Atoi(s.partition)
		if b.Partition > 0 {
			return fmt.Errorf("%s is already a partition; partition %d of it makes no sense", n.Path, num)
		}
		parts, err := r.v.Partitions(b.Name)
		if err != nil {
			return err
		}
		for _, p := range parts {
			if p.Partition == num {
				target = p
			}
		}
		if target.Name == "" {
			return fmt.Errorf("%s has no partition %d", b.DevPath(), num)
		}
	}
	dev := target.DevPath()
	log = log.With(zap.String("target", dev))
	if why := r.inUse(target.Name); why != "" {
		log.Warn("fs_setup: the device is in use; not formatted, whatever overwrite says", zap.String("why", why))
		return nil
	}
	if s.partition != "auto" && s.partition != "any" {
		// A device named outright: formatted only when blank, or the
		// filesystem asked for is found, or overwrite says so.
		parts := 0
		if target.Partition == 0 {
			ps, err := r.v.Partitions(target.Name)
			if err != nil {
				return err
			}
			parts = len(ps)
		}
		sig, perr := r.v.Probe(ctx, dev)
		if perr == nil && parts == 0 && sig.Type == s.fstype && sig.Type != "" && sig.Label == s.label && !s.overwrite {
			log.Info("fs_setup: the filesystem is already there", zap.String("uuid", sig.UUID))
			return nil
		}
		if found := describe(sig, perr, parts); found != "" {
			if !s.overwrite {
				log.Info("fs_setup: the device is not blank; not formatted (overwrite: true replaces it)", zap.String("found", found))
				return nil
			}
			log.Warn("fs_setup: overwrite: true: formatting over what the device holds", zap.String("found", found))
		}
	}
	hp, err := r.v.HostPath(dev)
	if err != nil {
		return err
	}
	argv, err := mkfsArgv(s, hp)
	if err != nil {
		return err
	}
	if err := r.cmd(ctx, "", argv...); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return fmt.Errorf("%s is not installed: %w", argv[0], err)
		}
		return err
	}
	log.Info("fs_setup: filesystem made")
	return nil
}

// choose picks the device for partition auto or any among the device and
// its partitions: done when a matching filesystem exists (auto: type and
// label; any: type), else the first blank partition, else the device
// itself when it has no partitions and is blank. With partition any,
// replace_fs and overwrite, a partition holding replace_fs is taken.
func (r *run) choose(ctx context.Context, log *zap.Logger, b disk.Block, s fsSpec) (disk.Block, bool, error) {
	cands := []disk.Block{b}
	if b.Partition == 0 {
		parts, err := r.v.Partitions(b.Name)
		if err != nil {
			return disk.Block{}, false, err
		}
		cands = append(cands, parts...)
	}
	type probed struct {
		b   disk.Block
		sig disk.Signature
		err error
	}
	var ps []probed
	for _, c := range cands {
		sig, err := r.v.Probe(ctx, c.DevPath())
		ps = append(ps, probed{c, sig, err})
		if err == nil && s.fstype != "" && sig.Type == s.fstype && (s.partition == "any" || sig.Label == s.label) {
			log.Info("fs_setup: a matching filesystem exists; nothing to do", zap.String("on", c.DevPath()), zap.String("uuid", sig.UUID))
			return disk.Block{}, true, nil
		}
	}
	if s.partition == "any" && s.replaceFS != "" {
		for _, p := range ps {
			if p.err == nil && p.sig.Type == s.replaceFS {
				if !s.overwrite {
					log.Info("fs_setup: replace_fs found its filesystem; formatting over it needs overwrite: true; not formatted",
						zap.String("on", p.b.DevPath()), zap.String("found", p.sig.String()))
					return disk.Block{}, true, nil
				}
				log.Warn("fs_setup: replace_fs with overwrite: formatting over the old filesystem", zap.String("on", p.b.DevPath()), zap.String("found", p.sig.String()))
				return p.b, false, nil
			}
		}
	}
	for _, p := range ps[1:] {
		if p.err == nil && p.sig.Empty() {
			return p.b, false, nil
		}
	}
	if len(ps) == 1 && ps[0].err == nil && ps[0].sig.Empty() {
		return b, false, nil
	}
	var found []string
	for _, p := range ps {
		found = append(found, p.b.DevPath()+": "+describe(p.sig, p.err, 0))
	}
	log.Info("fs_setup: no blank device to format; nothing done", zap.String("found", strings.Join(found, "; ")))
	return disk.Block{}, true, nil
}

// mkfsArgv is the command making s's filesystem on dev (as the command
// sees it): mkfs.<fs> (mkswap for swap) with the label, the force flag
// only under overwrite, extra_opts, then the device; or the entry's cmd
// with %(device)s, %(label)s and %(filesystem)s substituted (a string runs
// with sh -c, the user having written shell).
func mkfsArgv(s fsSpec, dev string) ([]string, error) {
	subst := strings.NewReplacer("%(device)s", dev, "%(label)s", s.label, "%(filesystem)s", s.fstype)
	if s.shell != "" {
		return []string{"sh", "-c", subst.Replace(s.shell)}, nil
	}
	if len(s.cmd) > 0 {
		out := make([]string, len(s.cmd))
		for i, a := range s.cmd {
			out[i] = subst.Replace(a)
		}
		return out, nil
	}
	if strings.ContainsAny(s.fstype, "/ \t") {
		return nil, fmt.Errorf("filesystem %q is not a filesystem type", s.fstype)
	}
	tool := "mkfs." + s.fstype
	if s.fstype == "swap" {
		tool = "mkswap"
	}
	argv := []string{tool}
	if s.label != "" {
		flag := "-L"
		switch s.fstype {
		case "vfat", "fat", "msdos":
			flag = "-n"
		}
		argv = append(argv, flag, s.label)
	}
	if s.overwrite {
		if f := forceFlag(s.fstype); f != "" {
			argv = append(argv, f)
		}
	}
	argv = append(argv, s.extraOpts...)
	return append(argv, dev), nil
}

// forceFlag is the flag making mkfs write over an existing signature.
func forceFlag(fstype string) string {
	switch {
	case strings.HasPrefix(fstype, "ext"):
		return "-F"
	case fstype == "xfs", fstype == "btrfs", fstype == "swap", fstype == "f2fs":
		return "-f"
	}
	return ""
}
