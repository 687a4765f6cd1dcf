package disk

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/internal/testkit"
	"github.com/ec2init/ec2init/modules/internal/disk/disktest"
	"github.com/ec2init/ec2init/modules/modtest"
)

const mountinfo = `22 1 259:1 / / rw,noatime shared:1 - xfs /dev/nvme0n1p1 rw,attr2,inode64
23 22 0:21 / /proc rw,nosuid - proc proc rw
24 22 259:5 / /data rw,relatime shared:2 - ext4 /dev/nvme1n1 rw
25 24 0:40 / /data/my\040dir rw - tmpfs tmpfs rw
26 22 0:31 /@home /home rw,relatime - btrfs /dev/nvme2n1p2 rw,space_cache
27 24 259:6 / /data ro,relatime - ext4 /dev/nvme3n1 ro
`

func TestParseMountInfo(t *testing.T) {
	ms, err := ParseMountInfo(mountinfo)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 6 {
		t.Fatalf("got %d mounts", len(ms))
	}
	want := Mount{MountPoint: "/data/my dir", FSType: "tmpfs", Source: "tmpfs", Options: "rw", Major: 0, Minor: 40}
	if ms[3] != want {
		t.Errorf("escaped mount point: %+v, want %+v", ms[3], want)
	}
	tests := []struct {
		target, mountPoint, source string
	}{
		{"/", "/", "/dev/nvme0n1p1"},
		{"/etc/hosts", "/", "/dev/nvme0n1p1"},
		{"/data", "/data", "/dev/nvme3n1"}, // the later mount hides the earlier
		{"/data/x", "/data", "/dev/nvme3n1"},
		{"/data/my dir/f", "/data/my dir", "tmpfs"},
		{"/database", "/", "/dev/nvme0n1p1"},
		{"/home/ec2-user/", "/home", "/dev/nvme2n1p2"},
	}
	for _, tt := range tests {
		m, ok := MountOf(ms, tt.target)
		if !ok || m.MountPoint != tt.mountPoint || m.Source != tt.source {
			t.Errorf("MountOf(%q) = %+v, %v; want %s from %s", tt.target, m, ok, tt.mountPoint, tt.source)
		}
	}
	for _, bad := range []string{"22 1 259:1 / /\n", "22 1 x:1 / / rw - xfs /dev/x rw\n", "1 2 3:4 / / rw - xfs\n"} {
		if _, err := ParseMountInfo(bad); err == nil {
			t.Errorf("ParseMountInfo(%q): no error", bad)
		}
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`/a\040b`: "/a b", `/t\011x`: "/t\tx", `/b\134s`: `/b\s`, `/end\04`: `/end\04`, `plain`: "plain", `\999`: `\999`,
	} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestBlocks resolves devices through a sysfs laid out under a temporary
// root, as the kernel lays it out.
func TestBlocks(t *testing.T) {
	env, _ := modtest.Env(t)
	disktest.FakeBlock(t, env.Root, "nvme0n1", "", 0, 259, 0, 16777216)
	disktest.FakeBlock(t, env.Root, "nvme0n1p1", "nvme0n1", 1, 259, 1, 16000000)
	disktest.FakeBlock(t, env.Root, "nvme0n1p128", "nvme0n1", 128, 259, 2, 2048)
	disktest.FakeBlock(t, env.Root, "nvme1n1", "", 0, 259, 5, 2097152)
	modtest.Put(t, env, MountInfoFile, mountinfo)
	v := NewView(env)

	b, err := v.BlockByNumber(259, 1)
	if want := (Block{Name: "nvme0n1p1", Partition: 1, Disk: "nvme0n1", Sectors: 16000000}); err != nil || b != want {
		t.Errorf("BlockByNumber(259,1) = %+v, %v; want %+v", b, err, want)
	}
	b, err = v.BlockByName("nvme1n1")
	if want := (Block{Name: "nvme1n1", Sectors: 2097152}); err != nil || b != want {
		t.Errorf("BlockByName(nvme1n1) = %+v, %v", b, err)
	}
	if _, err := v.BlockByNumber(8, 0); !errors.Is(err, ErrNotResolved) {
		t.Errorf("missing device: %v, want ErrNotResolved", err)
	}
	for _, bad := range []string{"", "..", "a/b"} {
		if _, err := v.BlockByName(bad); !errors.Is(err, ErrNotResolved) {
			t.Errorf("BlockByName(%q): %v", bad, err)
		}
	}
	parts, err := v.Partitions("nvme0n1")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range parts {
		names = append(names, p.Name)
	}
	if !reflect.DeepEqual(names, []string{"nvme0n1p1", "nvme0n1p128"}) {
		t.Errorf("partitions: %v", names)
	}

	ms, err := v.Mounts()
	if err != nil {
		t.Fatal(err)
	}
	root, _ := MountOf(ms, "/")
	if b, err := v.BlockOfMount(root); err != nil || b.Name != "nvme0n1p1" {
		t.Errorf("block of /: %+v, %v", b, err)
	}
	tmp, _ := MountOf(ms, "/data/my dir")
	if _, err := v.BlockOfMount(tmp); !errors.Is(err, ErrNotResolved) {
		t.Errorf("tmpfs: %v, want ErrNotResolved", err)
	}
	// btrfs has an anonymous device number; its source is no device node
	// in this root.
	home, _ := MountOf(ms, "/home")
	if _, err := v.BlockOfMount(home); !errors.Is(err, ErrNotResolved) {
		t.Errorf("btrfs without node: %v, want ErrNotResolved", err)
	}
	if _, err := v.DeviceOf("/dev/nvme0n1p1"); !errors.Is(err, ErrNotResolved) {
		t.Errorf("DeviceOf without node: %v", err)
	}
	modtest.Put(t, env, "/dev/regular", "")
	if _, err := v.DeviceOf("/dev/regular"); !errors.Is(err, ErrNotResolved) || !strings.Contains(err.Error(), "not a block device") {
		t.Errorf("DeviceOf regular file: %v", err)
	}
}

// TestNoMountInfo: a temporary root has no /proc: nothing resolves.
func TestNoMountInfo(t *testing.T) {
	env, _ := modtest.Env(t)
	if _, err := NewView(env).Mounts(); !errors.Is(err, ErrNotResolved) {
		t.Errorf("Mounts() = %v, want ErrNotResolved", err)
	}
}

// TestLiveProcRefused: a root whose /proc is the running kernel's procfs
// (bind-mounted for a chroot) must not be taken for the root's mounts.
func TestLiveProcRefused(t *testing.T) {
	testkit.RequireRoot(t, "needs root to bind-mount /proc")
	env, _ := modtest.Env(t)
	if err := env.Root.MkdirAll("/proc", 0o755); err != nil {
		t.Fatal(err)
	}
	p, _ := env.Root.Path("/proc")
	if out, err := exec.Command("mount", "--bind", "/proc", p).CombinedOutput(); err != nil {
		t.Skipf("cannot bind-mount /proc: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "--lazy", p).Run() })
	_, err := NewView(env).Mounts()
	if !errors.Is(err, ErrNotResolved) || !strings.Contains(err.Error(), "running kernel's procfs") {
		t.Errorf("Mounts() = %v, want the live procfs refused", err)
	}
}

func TestNames(t *testing.T) {
	for name, want := range map[string]bool{
		"ephemeral0": true, "ephemeral12": true, "ephemeral": true, "ebs1": true, "swap": true, "root": true, "ami": true,
		"ephemeralx": false, "ebs": false, "sdb": false, "/dev/sdb": false, "ephemeral0:x": false,
	} {
		if IsMetaName(name) != want {
			t.Errorf("IsMetaName(%q) != %v", name, want)
		}
	}
	for name, want := range map[string]bool{
		"sdb": true, "xvdb1": true, "vdc": true, "hda": true, "sr0": true, "nvme1n1": true, "nvme1n1p2": true,
		"sdb/": false, "loop0": false, "md0": false, "LABEL=x": false,
	} {
		if IsShortName(name) != want {
			t.Errorf("IsShortName(%q) != %v", name, want)
		}
	}
	for name, want := range map[string][2]any{
		"ephemeral0.1": {"ephemeral0", 1}, "mydisk.2": {"mydisk", 2}, "/dev/sdb.1": {"/dev/sdb.1", 0},
		"ephemeral0": {"ephemeral0", 0}, "x.0": {"x.0", 0}, ".1": {".1", 0}, "a.b": {"a.b", 0},
	} {
		b, p := SplitDotted(name)
		if b != want[0] || p != want[1] {
			t.Errorf("SplitDotted(%q) = %q, %d; want %v", name, b, p, want)
		}
	}
}

// TestResolve: IMDS names from block-device-mapping, the sd/xvd spellings,
// aliases and dotted partitions.
func TestResolve(t *testing.T) {
	env, _ := modtest.Env(t)
	env.Instance = &imds.Instance{BlockDeviceMapping: []imds.BlockDevice{
		{Name: "ami", Device: "/dev/xvda"},
		{Name: "ephemeral0", Device: "sdb"},
		{Name: "ephemeral1", Device: "sdc"},
		{Name: "ebs1", Device: "/dev/sdf"},
		{Name: "swap", Device: "sdd"},
	}}
	// What this "instance" shows: a Xen guest that names sdb xvdb, a
	// partition on it, ebs1 under its mapping's name.
	for _, p := range []string{"/dev/xvdb", "/dev/xvdb1", "/dev/sdf", "/dev/nvme1n1", "/dev/nvme1n1p1"} {
		modtest.Put(t, env, p, "")
	}
	v := NewView(env)
	aliases := map[string]string{"data": "ebs1", "scratch": "ephemeral0.1", "fast": "/dev/nvme1n1"}
	tests := []struct {
		in   string
		want Name
		ok   bool
	}{
		{"ephemeral0", Name{Path: "/dev/xvdb", Exists: true, Meta: "ephemeral0"}, true},
		{"ephemeral", Name{Path: "/dev/xvdb", Exists: true, Meta: "ephemeral0"}, true},
		{"ephemeral0.1", Name{Path: "/dev/xvdb", Exists: true, Meta: "ephemeral0", Partition: 1}, true},
		{"ephemeral1", Name{Path: "/dev/sdc", Meta: "ephemeral1"}, true}, // mapped, not present: the mapping's name
		{"ephemeral2", Name{Meta: "ephemeral2"}, false},                  // not mapped
		{"ebs1", Name{Path: "/dev/sdf", Exists: true, Meta: "ebs1"}, true},
		{"swap", Name{Path: "/dev/sdd", Meta: "swap"}, true},
		{"data", Name{Path: "/dev/sdf", Exists: true, Meta: "ebs1"}, true},
		{"scratch", Name{Path: "/dev/xvdb", Exists: true, Meta: "ephemeral0", Partition: 1}, true},
		{"fast", Name{Path: "/dev/nvme1n1", Exists: true}, true},
		{"sdb", Name{Path: "/dev/xvdb", Exists: true}, true},
		{"xvdf", Name{Path: "/dev/sdf", Exists: true}, true},
		{"/dev/sdz", Name{Path: "/dev/sdz"}, true},
		{"LABEL=data", Name{Path: "LABEL=data"}, true},
		{"fileserver:/export", Name{Path: "fileserver:/export"}, true},
	}
	for _, tt := range tests {
		got, ok := v.Resolve(tt.in, aliases)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Resolve(%q) = %+v, %v; want %+v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
	for _, tt := range []struct {
		disk string
		n    int
		want string
		ok   bool
	}{
		{"/dev/xvdb", 1, "/dev/xvdb1", true},
		{"/dev/nvme1n1", 1, "/dev/nvme1n1p1", true},
		{"/dev/nvme1n1", 2, "/dev/nvme1n1p2", false},
		{"/dev/sdf", 3, "/dev/sdf3", false},
	} {
		if got, ok := v.PartitionPath(tt.disk, tt.n); got != tt.want || ok != tt.ok {
			t.Errorf("PartitionPath(%s, %d) = %s, %v", tt.disk, tt.n, got, ok)
		}
	}
	env.Instance = nil
	if _, ok := v.Resolve("ephemeral0", nil); ok {
		t.Error("no instance: ephemeral0 resolved")
	}
}

func TestParseExport(t *testing.T) {
	s, err := parseExport("/dev/x", "DEVNAME=/dev/x\nLABEL=my\\ data\nUUID=1234\nTYPE=ext4\nUSAGE=filesystem")
	if err != nil || s != (Signature{Type: "ext4", Label: "my data", UUID: "1234"}) {
		t.Errorf("parseExport = %+v, %v", s, err)
	}
	if _, err := parseExport("/dev/x", "blkid: error: /dev/x: Operation not permitted"); err == nil {
		t.Error("an error line parsed as a signature")
	}
	for s, want := range map[Signature]string{
		{}:                              "nothing",
		{PTType: "gpt"}:                 "gpt partition table",
		{Type: "xfs", Label: "d"}:       `xfs signature labelled "d"`,
		{Type: "swap", PTType: "dos"}:   "swap signature and dos partition table",
		{Type: "ext4", UUID: "x"}:       "ext4 signature",
		{Type: "LVM2_member", UUID: ""}: "LVM2_member signature",
	} {
		if got := s.String(); got != want {
			t.Errorf("%+v.String() = %q, want %q", s, got, want)
		}
	}
}

// TestProbeReal runs the real blkid on image files inside a temporary
// root: blank, formatted, partitioned.
func TestProbeReal(t *testing.T) {
	for _, tool := range []string{"blkid", "mkfs.ext4", "sfdisk"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (util-linux, e2fsprogs, fdisk)", tool)
		}
	}
	env, _ := modtest.Env(t)
	v := NewView(env)
	mk := func(name string) string {
		p, _ := env.Root.Path("/" + name)
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, 16<<20); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mk("blank.img")
	fs := mk("fs.img")
	if out, err := exec.Command("mkfs.ext4", "-q", "-L", "my data", fs).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v %s", err, out)
	}
	pt := mk("pt.img")
	cmd := exec.Command("sfdisk", "--quiet", pt)
	cmd.Stdin = strings.NewReader("label: gpt\n,8MiB\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v %s", err, out)
	}
	ctx := context.Background()
	if s, err := v.Probe(ctx, "/blank.img"); err != nil || !s.Empty() {
		t.Errorf("blank: %+v, %v", s, err)
	}
	if s, err := v.Probe(ctx, "/fs.img"); err != nil || s.Type != "ext4" || s.Label != "my data" || s.UUID == "" {
		t.Errorf("ext4: %+v, %v", s, err)
	}
	if s, err := v.Probe(ctx, "/pt.img"); err != nil || s.PTType != "gpt" || s.Empty() {
		t.Errorf("gpt: %+v, %v", s, err)
	}
	if _, err := v.Probe(ctx, "/missing.img"); err == nil {
		t.Error("missing device: no error")
	}
	if err := env.Root.MkdirAll("/dir", 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Probe(ctx, "/dir"); err == nil {
		t.Error("a directory probed without error")
	}
	hp, err := v.HostPath("/fs.img")
	if err != nil || hp != filepath.Join(env.Root.Prefix(), "fs.img") {
		t.Errorf("HostPath = %s, %v", hp, err)
	}
}

// TestResolveNitroInstanceStore: on a Nitro instance IMDS maps ephemeralN
// to sdX names no device has; the instance-store volumes are the NVMe
// disks whose model says so, in controller order (EBS ones are skipped).
func TestResolveNitroInstanceStore(t *testing.T) {
	env, _ := modtest.Env(t)
	env.Instance = &imds.Instance{BlockDeviceMapping: []imds.BlockDevice{
		{Name: "ami", Device: "/dev/xvda"},
		{Name: "ephemeral0", Device: "sdb"},
		{Name: "ephemeral1", Device: "sdc"},
		{Name: "ephemeral2", Device: "sdd"},
	}}
	models := map[string]string{
		"nvme0n1":  "Amazon Elastic Block Store",
		"nvme2n1":  InstanceStoreModel,
		"nvme10n1": InstanceStoreModel, // after nvme2 numerically, not as a string
		"nvme1n1":  InstanceStoreModel + "\n",
	}
	for name, model := range models {
		modtest.Put(t, env, "/sys/block/"+name+"/device/model", model)
		modtest.Put(t, env, "/dev/"+name, "")
	}
	modtest.Put(t, env, "/sys/block/nvme1n1p1/device/model", InstanceStoreModel) // not a disk
	v := NewView(env)
	for _, tt := range []struct {
		in   string
		want Name
		ok   bool
	}{
		{"ephemeral0", Name{Path: "/dev/nvme1n1", Exists: true, Meta: "ephemeral0", InstanceStoreNVMe: true}, true},
		{"ephemeral1", Name{Path: "/dev/nvme2n1", Exists: true, Meta: "ephemeral1", InstanceStoreNVMe: true}, true},
		{"ephemeral2.1", Name{Path: "/dev/nvme10n1", Exists: true, Meta: "ephemeral2", Partition: 1, InstanceStoreNVMe: true}, true},
		{"ephemeral3", Name{Meta: "ephemeral3"}, false}, // not mapped
	} {
		got, ok := v.Resolve(tt.in, nil)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Resolve(%q) = %+v, %v; want %+v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
	// A mapped sdX device that exists (a Xen instance) wins.
	modtest.Put(t, env, "/dev/xvdb", "")
	if got, _ := v.Resolve("ephemeral0", nil); got.Path != "/dev/xvdb" {
		t.Errorf("with /dev/xvdb present: %+v", got)
	}
}
