// Package disk is the block-device side of the host as the disk modules
// (growpart, resizefs, mounts, disk_setup) see it, always through the root
// prefix: the root's /proc/self/mountinfo, /sys/class/block, /dev and
// /proc/meminfo, and blkid for what a device holds.
//
// Under a root other than "/" (tests, the demo, an image being prepared)
// nothing is read from the running system: a temporary root has no
// mountinfo, sysfs or device nodes, so nothing resolves and the modules do
// nothing, saying why. A root whose /proc is the live procfs is refused for
// mount lookups: its mountinfo would describe this machine's mounts, and
// growing "/" there would grow the machine's own disk.
package disk

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/ec2init/ec2init/modules"
)

// Host paths read under the root.
const (
	MountInfoFile = "/proc/self/mountinfo"
	SysClassBlock = "/sys/class/block"
	SysDevBlock   = "/sys/dev/block"
	MeminfoFile   = "/proc/meminfo"
	SwapsFile     = "/proc/swaps"
)

// procSuperMagic is procfs's statfs type (PROC_SUPER_MAGIC).
const procSuperMagic = 0x9fa0

// ErrNotResolved is wrapped by errors for a device or mount that the root
// does not show: not an error of the host, a reason to skip.
var ErrNotResolved = errors.New("not found under the root")

// View is the host's disks through env's root. Commands given a device
// take HostPath's spelling.
type View struct {
	env *modules.Env
}

// NewView returns the view of env's root.
func NewView(env *modules.Env) View { return View{env: env} }

// Env is the module environment the view was made from.
func (v View) Env() *modules.Env { return v.env }

// chrooted reports whether commands run chrooted into the root, where root
// paths are theirs as they are.
func (v View) chrooted() bool {
	return v.env.Runner != nil && v.env.Runner.Chroot && !v.env.Root.IsHost()
}

// HostPath is the spelling of the root path p for a command: p itself on
// the real root or when chrooted, else the path under the prefix (symlinks
// such as /dev/sdf -> nvme1n1 resolved inside the root).
func (v View) HostPath(p string) (string, error) {
	if v.env.Root.IsHost() || v.chrooted() {
		return p, nil
	}
	return v.env.Root.Path(p)
}

// Mount is one line of mountinfo.
type Mount struct {
	MountPoint   string
	FSType       string
	Source       string
	Options      string // per-mount options (rw, noatime, ...)
	Major, Minor uint32
}

// Mounts reads the root's /proc/self/mountinfo. Under a root other than
// "/", a live procfs at the root's /proc is refused (it describes this
// machine, not the root).
func (v View) Mounts() ([]Mount, error) {
	if !v.env.Root.IsHost() {
		full, err := v.env.Root.Path("/proc")
		if err != nil {
			return nil, err
		}
		var st syscall.Statfs_t
		if err := syscall.Statfs(full, &st); err == nil && st.Type == procSuperMagic {
			return nil, fmt.Errorf("%s/proc is the running kernel's procfs: its mounts are this machine's, not the root's; refusing to act on them: %w",
				v.env.Root.Prefix(), ErrNotResolved)
		}
	}
	b, err := v.env.Root.ReadFile(MountInfoFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", MountInfoFile, ErrNotResolved)
	}
	if err != nil {
		return nil, err
	}
	return ParseMountInfo(string(b))
}

// ParseMountInfo parses the kernel's mountinfo format (proc(5)).
func ParseMountInfo(s string) ([]Mount, error) {
	var out []Mount
	for i, line := range strings.Split(s, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Fields(line)
		sep := -1
		for j := 6; j < len(f); j++ {
			if f[j] == "-" {
				sep = j
				break
			}
		}
		if len(f) < 6 || sep < 0 || sep+2 >= len(f) {
			return nil, fmt.Errorf("%s line %d: not in mountinfo format", MountInfoFile, i+1)
		}
		maj, min, ok := strings.Cut(f[2], ":")
		ma, err1 := strconv.ParseUint(maj, 10, 32)
		mi, err2 := strconv.ParseUint(min, 10, 32)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%s line %d: bad device number %q", MountInfoFile, i+1, f[2])
		}
		out = append(out, Mount{
			MountPoint: Unescape(f[4]),
			Options:    f[5],
			FSType:     f[sep+1],
			Source:     Unescape(f[sep+2]),
			Major:      uint32(ma),
			Minor:      uint32(mi),
		})
	}
	return out, nil
}

// Unescape undoes the kernel's (and fstab's) octal escapes: \040 for a
// space, \011 tab, \012 newline, \134 backslash.
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// MountOf returns the mount holding target (an absolute path in the
// mount namespace of the mountinfo): the longest mount point containing
// it; of mounts stacked on one point, the last (the visible one).
func MountOf(mounts []Mount, target string) (Mount, bool) {
	target = path.Clean(target)
	best, found := Mount{}, false
	for _, m := range mounts {
		mp := path.Clean(m.MountPoint)
		if mp != "/" && target != mp && !strings.HasPrefix(target, mp+"/") {
			continue
		}
		if !found || len(mp) >= len(path.Clean(best.MountPoint)) {
			best, found = m, true
		}
	}
	return best, found
}

// Block is a block device as sysfs describes it.
type Block struct {
	Name string // kernel name: nvme0n1p1, xvda1, loop0
	// Partition is the partition number, 0 for a whole disk (or a device
	// that is no partition: dm-0, md0).
	Partition int
	// Disk is the kernel name of the disk holding a partition.
	Disk string
	// Sectors is the size in 512-byte units, as sysfs counts.
	Sectors uint64
}

// DevPath is the device node's path, /dev/<name>.
func (b Block) DevPath() string { return "/dev/" + b.Name }

// BlockByNumber finds the block device major:minor in the root's sysfs.
func (v View) BlockByNumber(major, minor uint32) (Block, error) {
	return v.block(fmt.Sprintf("%s/%d:%d", SysDevBlock, major, minor))
}

// BlockByName finds the block device called name (kernel name) in the
// root's sysfs.
func (v View) BlockByName(name string) (Block, error) {
	if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		return Block{}, fmt.Errorf("block device name %q: %w", name, ErrNotResolved)
	}
	return v.block(SysClassBlock + "/" + name)
}

// block reads the sysfs directory at link (a symlink into /sys/devices).
func (v View) block(link string) (Block, error) {
	full, err := v.env.Root.Path(link)
	if err != nil {
		return Block{}, err
	}
	fi, err := os.Stat(full)
	if err != nil || !fi.IsDir() {
		return Block{}, fmt.Errorf("%s: %w", link, ErrNotResolved)
	}
	b := Block{Name: path.Base(full)}
	if s, err := readTrim(path.Join(full, "size")); err == nil {
		b.Sectors, _ = strconv.ParseUint(s, 10, 64)
	}
	p, err := readTrim(path.Join(full, "partition"))
	switch {
	case err == nil:
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 {
			return Block{}, fmt.Errorf("%s/partition: %q is not a partition number", link, p)
		}
		b.Partition = n
		b.Disk = path.Base(path.Dir(full))
	case !errors.Is(err, fs.ErrNotExist):
		return Block{}, fmt.Errorf("%s/partition: %w", link, err)
	}
	return b, nil
}

// Partitions lists the partitions of the disk called name, by number.
func (v View) Partitions(name string) ([]Block, error) {
	disk, err := v.BlockByName(name)
	if err != nil {
		return nil, err
	}
	full, err := v.env.Root.Path(SysClassBlock + "/" + disk.Name)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(full)
	if err != nil {
		return nil, fmt.Errorf("%s/%s: %w", SysClassBlock, disk.Name, err)
	}
	var out []Block
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), disk.Name) {
			continue
		}
		if _, err := os.Stat(path.Join(full, e.Name(), "partition")); err != nil {
			continue
		}
		p, err := v.BlockByName(e.Name())
		if err != nil || p.Partition == 0 {
			continue
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Partition < out[j].Partition })
	return out, nil
}

// Holders lists the devices built on the block device called name (its
// sysfs holders: LVM, RAID, dm-crypt).
func (v View) Holders(name string) []string {
	full, err := v.env.Root.Path(SysClassBlock + "/" + name + "/holders")
	if err != nil {
		return nil
	}
	entries, err := os.ReadDir(full)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// DeviceOf returns the block device behind the device node p (a root
// path; symlinks followed inside the root). It fails for what is not a
// block device node.
func (v View) DeviceOf(p string) (Block, error) {
	fi, err := v.env.Root.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Block{}, fmt.Errorf("%s: %w", p, ErrNotResolved)
	}
	if err != nil {
		return Block{}, err
	}
	if fi.Mode()&fs.ModeDevice == 0 || fi.Mode()&fs.ModeCharDevice != 0 {
		return Block{}, fmt.Errorf("%s: not a block device: %w", p, ErrNotResolved)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return Block{}, fmt.Errorf("%s: no device number", p)
	}
	major, minor := splitDev(uint64(st.Rdev))
	return v.BlockByNumber(major, minor)
}

// BlockOfMount returns the block device a mount is on: by its device
// number, or for filesystems with an anonymous one (btrfs) by its source.
func (v View) BlockOfMount(m Mount) (Block, error) {
	if m.Major != 0 {
		return v.BlockByNumber(m.Major, m.Minor)
	}
	if strings.HasPrefix(m.Source, "/dev/") {
		return v.DeviceOf(m.Source)
	}
	return Block{}, fmt.Errorf("%s (%s from %q) is not on a block device: %w", m.MountPoint, m.FSType, m.Source, ErrNotResolved)
}

// splitDev decodes Linux's dev_t.
func splitDev(dev uint64) (major, minor uint32) {
	major = uint32((dev>>8)&0xfff | (dev>>32)&^0xfff)
	minor = uint32(dev&0xff | (dev>>12)&^0xff)
	return major, minor
}

// IsBlockDevice reports whether the root path p is a block device node.
func (v View) IsBlockDevice(p string) bool {
	fi, err := v.env.Root.Stat(p)
	return err == nil && fi.Mode()&fs.ModeDevice != 0 && fi.Mode()&fs.ModeCharDevice == 0
}

func readTrim(full string) (string, error) {
	b, err := os.ReadFile(full)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// ContainerFile is where systemd says the system runs in a container
// (systemd-nspawn, docker, lxc: it holds the manager's name).
const ContainerFile = "/run/systemd/container"

// InContainer reports whether the system under env's root runs in a
// container, whose "disk" is the host's: growing or resizing it is the
// host's business (cloud-init's resizefs skips containers for the same
// reason), and the host's block devices may show through /sys.
func InContainer(env *modules.Env) bool {
	ok, err := env.Root.Exists(ContainerFile)
	return ok && err == nil
}
