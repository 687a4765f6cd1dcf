// Package disktest gives the disk modules' real-effect tests file-backed
// loop devices: created in the test's temporary directory, detached when
// the test ends, and the only devices those tests ever act on.
package disktest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ec2init/ec2init/agent/sys"
)

// Need skips the test unless it runs as root with every tool in tools
// installed (named with their Debian package in the skip message).
func Need(t testing.TB, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: it attaches loop devices")
	}
	pkgs := map[string]string{
		"losetup": "mount", "sfdisk": "fdisk", "partx": "util-linux", "blkid": "util-linux",
		"wipefs": "util-linux", "growpart": "cloud-guest-utils", "mkfs.ext4": "e2fsprogs",
		"resize2fs": "e2fsprogs", "mkfs.xfs": "xfsprogs", "xfs_growfs": "xfsprogs",
		"mkfs.btrfs": "btrfs-progs", "btrfs": "btrfs-progs", "mkswap": "util-linux",
		"unshare": "util-linux", "mount": "mount", "findmnt": "util-linux", "fallocate": "util-linux",
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if _, err := os.Stat("/usr/sbin/" + tool); err != nil {
				t.Skipf("%s not installed (Debian package %s)", tool, pkgs[tool])
			}
		}
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Skip("no /dev/loop-control: loop devices unavailable")
	}
}

// Loop attaches a new sparse file of size bytes as a loop device (with
// partition scanning) and returns its path; the device is detached when
// the test ends.
func Loop(t testing.TB, size int64) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out := Run(t, "losetup", "--find", "--show", "--partscan", img)
	dev := strings.TrimSpace(out)
	if !strings.HasPrefix(dev, "/dev/loop") {
		t.Fatalf("losetup printed %q", out)
	}
	t.Cleanup(func() {
		// Partitions the kernel was told of go first; a busy device is
		// retried briefly (a mount in a namespace being torn down).
		exec.Command("partx", "--delete", dev).Run()
		for i := 0; i < 20; i++ {
			if exec.Command("losetup", "--detach", dev).Run() == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("losetup --detach %s failed", dev)
	})
	return dev
}

// Grow enlarges the loop device's backing file to size bytes and tells
// the kernel (losetup --set-capacity), as when an EBS volume is modified.
func Grow(t testing.TB, dev string, size int64) {
	t.Helper()
	backing := strings.TrimSpace(Run(t, "losetup", "--noheadings", "--output", "BACK-FILE", dev))
	if err := os.Truncate(backing, size); err != nil {
		t.Fatal(err)
	}
	Run(t, "losetup", "--set-capacity", dev)
}

// Partition writes an sfdisk script to dev and makes the kernel know the
// partitions (partx: some kernels do not re-read a loop device's table),
// then waits for the first partition's node.
func Partition(t testing.TB, dev, script string) {
	t.Helper()
	cmd := exec.Command("sfdisk", "--quiet", dev)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk %s: %v\n%s", dev, err, out)
	}
	exec.Command("partx", "--update", dev).Run()
	WaitFor(t, PartPath(dev, 1))
}

// PartPath is the node of partition n of a loop device.
func PartPath(dev string, n int) string { return dev + "p" + strconv.Itoa(n) }

// WaitFor waits up to 10s for path to exist.
func WaitFor(t testing.TB, path string) {
	t.Helper()
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(path); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s did not appear", path)
}

// Run runs argv and returns its standard output; a failure fails the test.
func Run(t testing.TB, argv ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s%s", strings.Join(argv, " "), err, out.String(), errb.String())
	}
	return out.String()
}

// Blkid returns one tag (TYPE, LABEL, UUID, PTTYPE) of dev from a
// low-level probe, "" when absent.
func Blkid(t testing.TB, dev, tag string) string {
	t.Helper()
	out, _ := exec.Command("blkid", "-p", "-s", tag, "-o", "value", dev).Output()
	return strings.TrimSpace(string(out))
}

// Sectors is the size of the block device in 512-byte sectors.
func Sectors(t testing.TB, dev string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(strings.TrimSpace(Run(t, "blockdev", "--getsz", dev)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// FakeBlock lays out, under root, the sysfs entries of a block device as
// the kernel does: /sys/devices/virtual/block/<disk>[/<name>] with size
// (and partition for a partition), linked from /sys/class/block/<name> and
// /sys/dev/block/<major>:<minor>. disk is "" for a whole disk.
func FakeBlock(t testing.TB, root *sys.Root, name, disk string, partition, major, minor int, sectors uint64) {
	t.Helper()
	dir := "/sys/devices/virtual/block/" + name
	if disk != "" {
		dir = "/sys/devices/virtual/block/" + disk + "/" + name
	}
	files := map[string]string{
		dir + "/size": strconv.FormatUint(sectors, 10) + "\n",
		dir + "/dev":  fmt.Sprintf("%d:%d\n", major, minor),
	}
	if partition > 0 {
		files[dir+"/partition"] = strconv.Itoa(partition) + "\n"
	}
	for p, c := range files {
		if err := root.WriteFile(p, []byte(c), 0o644, nil); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"/sys/class/block/" + name:                        "../../.." + dir,
		fmt.Sprintf("/sys/dev/block/%d:%d", major, minor): "../../.." + dir,
	} {
		if err := root.MkdirAll(filepath.Dir(link), 0o755); err != nil {
			t.Fatal(err)
		}
		full, err := root.Path(link)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, full); err != nil {
			t.Fatal(err)
		}
	}
}
