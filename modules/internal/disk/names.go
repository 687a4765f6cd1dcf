package disk

import (
	"cmp"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// shortName matches kernel disk names cloud-config may give without /dev
// (cloud-init's list, plus NVMe): sdb, xvdb1, vdc, hda, sr0, nvme1n1p2.
var shortName = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(x?[shv]d[a-z]+[0-9]*|sr[0-9]+|nvme[0-9]+n[0-9]+(p[0-9]+)?)$`)
})

// IsShortName reports whether name is a kernel disk name meant as /dev/name.
func IsShortName(name string) bool { return shortName().MatchString(name) }

// IsMetaName reports whether name is one of IMDS block-device-mapping's
// virtual names: ami, root, swap, ephemeralN, ebsN ("ephemeral" alone is
// taken as ephemeral0, as cloud-init does).
func IsMetaName(name string) bool {
	switch name {
	case "ami", "root", "swap", "ephemeral":
		return true
	}
	for _, p := range []string{"ephemeral", "ebs"} {
		if rest, ok := strings.CutPrefix(name, p); ok && rest != "" && isDigits(rest) {
			return true
		}
	}
	return false
}

// SplitDotted splits cloud-init's "<name>.<partition>" spelling
// (ephemeral0.1, mydisk.2) of a name that is not a path.
func SplitDotted(name string) (base string, partition int) {
	if strings.HasPrefix(name, "/") {
		return name, 0
	}
	i := strings.LastIndexByte(name, '.')
	if i <= 0 || !isDigits(name[i+1:]) {
		return name, 0
	}
	n, err := strconv.Atoi(name[i+1:])
	if err != nil || n <= 0 {
		return name, 0
	}
	return name[:i], n
}

// Name is what a cloud-config device name resolved to.
type Name struct {
	// Path is the /dev path (or the name as given, for what is not a
	// device name: LABEL=..., server:/export).
	Path string
	// Exists is whether Path is present under the root.
	Exists bool
	// Meta is the IMDS name it came from (ephemeral0, swap, ...), if any.
	Meta string
	// Partition is the partition of a dotted name (ephemeral0.1), else 0.
	Partition int
	// InstanceStoreNVMe says the device is a Nitro instance-store NVMe
	// disk found for an ephemeralN name (see nvmeInstanceStore): raw, never
	// formatted by EC2.
	InstanceStoreNVMe bool
}

// Resolve maps a device name as cloud-config gives it to a /dev path under
// the root: an alias from device_aliases first, then an IMDS
// block-device-mapping name (the instance's device for it), a short
// kernel name (sdb -> /dev/sdb) or a path. EC2 names a device sdX in the
// mapping while Xen kernels call it xvdX (and the reverse): whichever
// exists under the root's /dev is taken, else the name the mapping gives.
// ok is false for an IMDS name the instance does not map.
func (v View) Resolve(name string, aliases map[string]string) (n Name, ok bool) {
	base, part := SplitDotted(name)
	if a, found := aliases[base]; found && a != "" {
		base = a
		// An alias may itself be dotted or an IMDS name.
		if b, p := SplitDotted(base); p != 0 && part == 0 {
			base, part = b, p
		}
	}
	n.Partition = part
	switch {
	case IsMetaName(base):
		if base == "ephemeral" {
			base = "ephemeral0"
		}
		n.Meta = base
		dev := v.metaDevice(base)
		if dev == "" {
			return n, false
		}
		base = dev
	case strings.HasPrefix(base, "/"):
	case IsShortName(base):
		base = "/dev/" + base
	default:
		// LABEL=, UUID=, a network source: used as written.
		n.Path = base
		return n, true
	}
	if !strings.HasPrefix(base, "/") {
		base = "/dev/" + base
	}
	n.Path, n.Exists = v.existing(xenAlternatives(base))
	if !n.Exists && strings.HasPrefix(n.Meta, "ephemeral") {
		if i, err := strconv.Atoi(strings.TrimPrefix(n.Meta, "ephemeral")); err == nil {
			if dev, ok := v.nvmeInstanceStore(i); ok {
				n.Path, n.Exists, n.InstanceStoreNVMe = dev, true, true
			}
		}
	}
	return n, true
}

// InstanceStoreModel is the NVMe model name of a Nitro instance's
// instance-store volumes (its EBS volumes say "Amazon Elastic Block
// Store").
const InstanceStoreModel = "Amazon EC2 NVMe Instance Storage"

// nvmeInstanceStore returns the i-th instance-store NVMe disk under the
// root's /sys/block, in controller order. On Nitro instances IMDS still
// maps ephemeralN to an sdX name no device carries; the volumes are NVMe
// namespaces, taken here in the order the kernel enumerates them (EC2
// promises no more than that order).
func (v View) nvmeInstanceStore(i int) (string, bool) {
	dir, err := v.env.Root.Path("/sys/block")
	if err != nil {
		return "", false
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", false
	}
	type disk struct{ ctrl, ns int }
	var stores []disk
	for _, e := range entries {
		var d disk
		if _, err := fmt.Sscanf(e.Name(), "nvme%dn%d", &d.ctrl, &d.ns); err != nil || e.Name() != fmt.Sprintf("nvme%dn%d", d.ctrl, d.ns) {
			continue
		}
		model, err := v.env.Root.ReadFile("/sys/block/" + e.Name() + "/device/model")
		if err == nil && strings.TrimSpace(string(model)) == InstanceStoreModel {
			stores = append(stores, d)
		}
	}
	slices.SortFunc(stores, func(a, b disk) int { return cmp.Or(a.ctrl-b.ctrl, a.ns-b.ns) })
	if i < 0 || i >= len(stores) {
		return "", false
	}
	dev := fmt.Sprintf("/dev/nvme%dn%d", stores[i].ctrl, stores[i].ns)
	if ok, err := v.env.Root.Exists(dev); err != nil || !ok {
		return "", false
	}
	return dev, true
}

// metaDevice is the instance's device for an IMDS block-device name, "" if
// it has none.
func (v View) metaDevice(meta string) string {
	if v.env.Instance == nil {
		return ""
	}
	for _, b := range v.env.Instance.BlockDeviceMapping {
		if b.Name == meta {
			return strings.TrimSpace(b.Device)
		}
	}
	return ""
}

// xenAlternatives lists p and, for /dev/sdX or /dev/xvdX, the other
// spelling of the same EC2 device.
func xenAlternatives(p string) []string {
	if rest, ok := strings.CutPrefix(p, "/dev/sd"); ok {
		return []string{p, "/dev/xvd" + rest}
	}
	if rest, ok := strings.CutPrefix(p, "/dev/xvd"); ok {
		return []string{p, "/dev/sd" + rest}
	}
	return []string{p}
}

// existing returns the first of cands present under the root, else the
// first.
func (v View) existing(cands []string) (string, bool) {
	for _, c := range cands {
		if ok, err := v.env.Root.Exists(c); err == nil && ok {
			return c, true
		}
	}
	return cands[0], false
}

// PartitionPath returns the node of partition n of the disk at disk, as
// the kernel names it: disk+n (sdb1), disk+"p"+n (nvme1n1p1, loop0p1) or
// a by-id style disk+"-part"+n, whichever exists under the root; when none
// does, the kernel's spelling.
func (v View) PartitionPath(disk string, n int) (string, bool) {
	s := strconv.Itoa(n)
	cands := []string{disk + s, disk + "p" + s, disk + "-part" + s}
	if last := disk[len(disk)-1]; last >= '0' && last <= '9' {
		cands[0], cands[1] = cands[1], cands[0] // nvme0n1 -> nvme0n1p1
	}
	return v.existing(cands)
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
