package mounts

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/modules/internal/disk/disktest"
	"github.com/ec2init/ec2init/modules/modtest"
)

// TestRealSwapFile makes a swap file in a temporary root with the real
// fallocate and mkswap: private mode, the size asked, a swap signature and
// an fstab entry. A second run keeps the file (nothing says it is unused);
// with the root's /proc/swaps not listing it, size auto remakes it from
// the root's RAM size.
func TestRealSwapFile(t *testing.T) {
	for _, tool := range []string{"fallocate", "mkswap", "blkid"} {
		if _, err := exec.LookPath(tool); err != nil {
			if _, err := os.Stat("/usr/sbin/" + tool); err != nil {
				t.Skipf("%s not installed (util-linux)", tool)
			}
		}
	}
	env, _ := modtest.Env(t)
	cfg := modtest.Config(t, "swap: {filename: /var/swapfile, size: 8M}")
	ctx := context.Background()
	if err := (Mounts{}).Run(ctx, env, cfg); err != nil {
		t.Fatal(err)
	}
	full, _ := env.Root.Path("/var/swapfile")
	fi, err := os.Stat(full)
	if err != nil || fi.Size() != 8<<20 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("swap file: %v, %v", fi, err)
	}
	uuid := disktest.Blkid(t, full, "UUID")
	if typ := disktest.Blkid(t, full, "TYPE"); typ != "swap" || uuid == "" {
		t.Fatalf("blkid: TYPE=%q UUID=%q", typ, uuid)
	}
	if got := modtest.Get(t, env, FstabFile); got != "/var/swapfile\tnone\tswap\tsw,comment=ec2init\t0\t0\n" {
		t.Errorf("fstab: %q", got)
	}

	if err := (Mounts{}).Run(ctx, env, cfg); err != nil {
		t.Fatal(err)
	}
	if got := disktest.Blkid(t, full, "UUID"); got != uuid {
		t.Errorf("second run remade the swap file: UUID %s -> %s", uuid, got)
	}

	modtest.Put(t, env, "/proc/meminfo", "MemTotal:          16384 kB\nMemFree:            1024 kB\n")
	modtest.Put(t, env, "/proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n")
	if err := (Mounts{}).Run(ctx, env, modtest.Config(t, "swap: {filename: /var/swapfile, size: auto}")); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(full); err != nil || fi.Size() != 16<<20 {
		t.Fatalf("auto-sized swap file: %v, %v (want RAM's 16 MiB)", fi, err)
	}
	if got := disktest.Blkid(t, full, "UUID"); got == uuid || got == "" {
		t.Errorf("auto: swap file not remade (UUID %q)", got)
	}
}

// TestRealMountA: the fstab the module writes is mounted by the real
// mount -a. mount(8) acts on this machine's mount table, so it runs in a
// private mount namespace (unshare -m) with --target-prefix pointing the
// entries' mount points into the temporary root: the loop device's
// filesystem is mounted at <root>/data with the module's options, an
// absent LABEL= device is passed over thanks to nofail, and nothing is
// left mounted when the namespace ends.
func TestRealMountA(t *testing.T) {
	disktest.Need(t, "losetup", "mkfs.ext4", "unshare", "mount", "findmnt")
	loop := disktest.Loop(t, 32<<20)
	disktest.Run(t, "mkfs.ext4", "-q", "-L", "data", loop)

	env, _ := modtest.Env(t)
	cfg := modtest.Config(t, "mounts:\n  - ["+loop+", /data, ext4, \"defaults,noatime,nofail\"]\n  - [LABEL=absent-ec2init-test, /absent]\n")
	if err := (Mounts{}).Run(context.Background(), env, cfg); err != nil {
		t.Fatal(err)
	}
	fstabPath, _ := env.Root.Path(FstabFile)
	script := `mount --all --fstab "$1" --target-prefix "$2" || exit 1
findmnt --raw --noheadings --output SOURCE,FSTYPE,OPTIONS --mountpoint "$2/data"`
	out, err := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", fstabPath, env.Root.Prefix()).CombinedOutput()
	if err != nil {
		t.Fatalf("mount -a in a private namespace: %v\n%s", err, out)
	}
	f := strings.Fields(string(out))
	if len(f) != 3 || f[0] != loop || f[1] != "ext4" || !strings.Contains(f[2], "noatime") {
		t.Errorf("findmnt: %q; want %s ext4 with noatime", out, loop)
	}
	if out, err := exec.Command("findmnt", "--mountpoint", env.Root.Prefix()+"/data").CombinedOutput(); err == nil {
		t.Errorf("the mount leaked out of its namespace: %s", out)
	}
}
