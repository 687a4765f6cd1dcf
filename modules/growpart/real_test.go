package growpart

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/disk/disktest"
	"github.com/ec2init/ec2init/modules/modtest"
)

// hostEnv is an Env on the real root: these tests act on loop devices
// they created, named explicitly, and on nothing else.
func hostEnv(t *testing.T) *modules.Env {
	t.Helper()
	root, err := sys.NewRoot("/")
	if err != nil {
		t.Fatal(err)
	}
	// The console is a file, so a background command gets it too; nothing
	// is written to the host's /var/log.
	console, err := os.Create(filepath.Join(t.TempDir(), "console"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { console.Close() })
	return &modules.Env{Root: root, Runner: &sys.Runner{Root: root}, Console: console}
}

// mountAt mounts dev on a new temporary directory, unmounted when the
// test ends (before the loop device is detached).
func mountAt(t *testing.T, dev string) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", dev, dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount %s here: %v %s", dev, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

func fsSize(t *testing.T, dir string) uint64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * uint64(st.Bsize)
}

// TestRealGrowAndResize is the EBS story on a loop device: a small
// partition with a mounted filesystem on a bigger disk; growpart grows the
// partition to the end of the disk (a second run changes nothing), resizefs
// grows the mounted filesystem online. Then the "volume" is enlarged and
// both run again, the resize in the background (noblock). For ext4, xfs
// and btrfs, each with its own tool.
func TestRealGrowAndResize(t *testing.T) {
	if testing.Short() {
		t.Skip("real loop devices and three filesystems (~3 s); run without -short")
	}
	tests := []struct {
		fs         string
		tools      []string
		disk, part int64 // MiB
	}{
		{"ext4", []string{"mkfs.ext4", "resize2fs"}, 64, 20},
		{"xfs", []string{"mkfs.xfs", "xfs_growfs"}, 512, 320},
		{"btrfs", []string{"mkfs.btrfs", "btrfs"}, 512, 256},
	}
	for _, tt := range tests {
		t.Run(tt.fs, func(t *testing.T) {
			disktest.Need(t, append([]string{"losetup", "sfdisk", "partx", "growpart", "mount"}, tt.tools...)...)
			ctx := context.Background()
			loop := disktest.Loop(t, tt.disk<<20)
			disktest.Partition(t, loop, "label: gpt\n,"+strconv.FormatInt(tt.part, 10)+"MiB\n")
			part := disktest.PartPath(loop, 1)
			mkfs := exec.Command("mkfs."+tt.fs, part)
			if tt.fs == "ext4" {
				mkfs = exec.Command("mkfs.ext4", "-q", part)
			}
			if out, err := mkfs.CombinedOutput(); err != nil {
				t.Fatalf("mkfs.%s: %v %s", tt.fs, err, out)
			}
			dir := mountAt(t, part)

			env := hostEnv(t)
			logs := observe(env)
			cfg := modtest.Config(t, "growpart: {mode: growpart, devices: ["+part+"], ignore_growroot_disabled: true}")
			before := disktest.Sectors(t, part)
			if err := (Growpart{}).Run(ctx, env, cfg); err != nil {
				t.Fatal(err)
			}
			grown := disktest.Sectors(t, part)
			// GPT keeps 1 MiB in front and its backup at the end.
			if grown <= before || grown < (tt.disk-2)<<11 {
				t.Fatalf("partition %d -> %d sectors; want about %d", before, grown, tt.disk<<11)
			}
			if err := (Growpart{}).Run(ctx, env, cfg); err != nil {
				t.Fatal(err)
			}
			if got := messages(logs); !strings.Contains(got, "growpart: partition grown") ||
				!strings.Contains(got, "growpart: partition already fills its disk") {
				t.Errorf("log:\n%s", got)
			}

			if tt.fs == "ext4" && !hasCap(t, capSysResource) {
				t.Skip("online ext4 resize needs CAP_SYS_RESOURCE, which this process lacks (growpart was checked)")
			}
			fsBefore := fsSize(t, dir)
			if _, err := resize(ctx, env, dir, false); err != nil {
				t.Fatal(err)
			}
			fsGrown := fsSize(t, dir)
			if fsGrown < fsBefore+uint64(tt.disk-tt.part-8)<<20 {
				t.Fatalf("filesystem %d -> %d bytes; want it %d MiB bigger", fsBefore, fsGrown, tt.disk-tt.part)
			}

			// The volume is modified: 32 MiB more.
			disktest.Grow(t, loop, (tt.disk+32)<<20)
			if err := (Growpart{}).Run(ctx, env, cfg); err != nil {
				t.Fatal(err)
			}
			if s := disktest.Sectors(t, part); s < grown+(30<<11) {
				t.Fatalf("after the volume grew: %d sectors, was %d", s, grown)
			}
			done, err := resize(ctx, env, dir, true)
			if err != nil || done == nil {
				t.Fatalf("background resize: %v, %v", done, err)
			}
			if err := <-done; err != nil {
				t.Fatalf("background resize: %v", err)
			}
			if got := fsSize(t, dir); got < fsGrown+(24<<20) {
				t.Errorf("after the background resize: %d bytes, was %d", got, fsGrown)
			}
			// Its output went to the console file, framed.
			if b, err := os.ReadFile(env.Console.(*os.File).Name()); err != nil || !strings.Contains(string(b), "== ec2init: resizefs: "+Command(tt.fs, "", "")[0]+" started") {
				t.Errorf("console file: %q, %v", b, err)
			}
		})
	}
}

// TestRealGrowpartSkipsWholeDisk: a device that is no partition is left
// alone, and the run succeeds.
func TestRealGrowpartSkipsWholeDisk(t *testing.T) {
	disktest.Need(t, "losetup", "growpart")
	loop := disktest.Loop(t, 16<<20)
	env := hostEnv(t)
	logs := observe(env)
	cfg := modtest.Config(t, "growpart: {devices: ["+loop+"], ignore_growroot_disabled: true}")
	if err := (Growpart{}).Run(context.Background(), env, cfg); err != nil {
		t.Fatal(err)
	}
	if got := messages(logs); !strings.Contains(got, loop+" is not a partition") {
		t.Errorf("log:\n%s", got)
	}
}

// capSysResource is CAP_SYS_RESOURCE's bit: ext4 refuses an online resize
// without it (EPERM), as a sandbox may drop it even for root.
const capSysResource = 24

func hasCap(t *testing.T, bit uint) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && n&(1<<bit) != 0
		}
	}
	return false
}
