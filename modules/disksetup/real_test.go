package disksetup

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/disk/disktest"
	"github.com/ec2init/ec2init/modules/modtest"
)

// hostEnv is an Env on the real root: these tests name only loop devices
// they attached, and the module acts on nothing it is not named.
func hostEnv(t *testing.T) (*modules.Env, *observer.ObservedLogs) {
	t.Helper()
	root, err := sys.NewRoot("/")
	if err != nil {
		t.Fatal(err)
	}
	console, err := os.Create(filepath.Join(t.TempDir(), "console"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { console.Close() })
	core, logs := observer.New(zap.InfoLevel)
	return &modules.Env{Root: root, Runner: &sys.Runner{Root: root}, Console: console, Log: zap.New(core)}, logs
}

func setup(t *testing.T, env *modules.Env, doc string) {
	t.Helper()
	if err := (DiskSetup{}).Run(context.Background(), env, modtest.Config(t, doc)); err != nil {
		t.Fatal(err)
	}
}

func logged(logs *observer.ObservedLogs, msg string) bool {
	for _, e := range logs.TakeAll() {
		if strings.Contains(e.Message, msg) {
			return true
		}
	}
	return false
}

// TestRealBlankVolume is the EBS data volume story: a blank disk gets a
// GPT table and an ext4 filesystem with the label; a second run changes
// nothing (same UUID); a different label or layout without overwrite
// changes nothing either; overwrite: true does.
func TestRealBlankVolume(t *testing.T) {
	disktest.Need(t, "losetup", "sfdisk", "partx", "blkid", "mkfs.ext4")
	loop := disktest.Loop(t, 64<<20)
	p1 := disktest.PartPath(loop, 1)
	env, logs := hostEnv(t)
	first := "disk_setup:\n  " + loop + ": {table_type: gpt, layout: true}\n" +
		"fs_setup:\n  - {device: " + loop + ", partition: auto, filesystem: ext4, label: data}\n"
	setup(t, env, first)
	if pt := disktest.Blkid(t, loop, "PTTYPE"); pt != "gpt" {
		t.Fatalf("PTTYPE %q", pt)
	}
	uuid := disktest.Blkid(t, p1, "UUID")
	if typ, label := disktest.Blkid(t, p1, "TYPE"), disktest.Blkid(t, p1, "LABEL"); typ != "ext4" || label != "data" || uuid == "" {
		t.Fatalf("%s: TYPE=%q LABEL=%q UUID=%q", p1, typ, label, uuid)
	}
	logs.TakeAll()

	setup(t, env, first)
	if got := disktest.Blkid(t, p1, "UUID"); got != uuid {
		t.Fatalf("second run reformatted: UUID %s -> %s", uuid, got)
	}
	if !logged(logs, "a matching filesystem exists") {
		t.Error("second run: no 'matching filesystem' log")
	}

	// Named outright, with another label: not blank, so not formatted.
	setup(t, env, "fs_setup:\n  - {device: "+loop+", partition: 1, filesystem: ext4, label: other}\n")
	if got := disktest.Blkid(t, p1, "UUID"); got != uuid {
		t.Fatalf("formatted without overwrite: UUID %s -> %s", uuid, got)
	}
	if !logged(logs, "the device is not blank; not formatted") {
		t.Error("no 'not blank' log")
	}
	// A new layout without overwrite: the table stays.
	setup(t, env, "disk_setup:\n  "+loop+": {table_type: gpt, layout: [50, 50]}\n")
	if _, err := os.Stat(disktest.PartPath(loop, 2)); err == nil {
		t.Fatal("repartitioned without overwrite")
	}
	if !logged(logs, "the disk is not blank; left as it is") {
		t.Error("no 'left as it is' log")
	}

	// overwrite: true formats.
	setup(t, env, "fs_setup:\n  - {device: "+loop+", partition: 1, filesystem: ext4, label: other, overwrite: true}\n")
	if got, label := disktest.Blkid(t, p1, "UUID"), disktest.Blkid(t, p1, "LABEL"); got == uuid || label != "other" {
		t.Fatalf("overwrite: UUID %s (was %s), LABEL %q", got, uuid, label)
	}
	// ... and repartitions: the old filesystem does not survive in the
	// new first partition, so auto formats it.
	setup(t, env, "disk_setup:\n  "+loop+": {table_type: gpt, layout: [50, 50], overwrite: true}\n"+
		"fs_setup:\n  - {device: "+loop+", partition: auto, filesystem: ext4, label: data}\n")
	p2 := disktest.PartPath(loop, 2)
	disktest.WaitFor(t, p2)
	if typ, label := disktest.Blkid(t, p1, "TYPE"), disktest.Blkid(t, p1, "LABEL"); typ != "ext4" || label != "data" {
		t.Errorf("after repartitioning: p1 TYPE=%q LABEL=%q", typ, label)
	}
	if typ := disktest.Blkid(t, p2, "TYPE"); typ != "" {
		t.Errorf("p2 formatted too: %q", typ)
	}
}

// TestRealRawDevice: partition none puts xfs on the whole blank device,
// once; a device holding another filesystem is left alone.
func TestRealRawDevice(t *testing.T) {
	disktest.Need(t, "losetup", "blkid", "mkfs.xfs", "mkfs.ext4")
	blank := disktest.Loop(t, 320<<20)
	used := disktest.Loop(t, 32<<20)
	disktest.Run(t, "mkfs.ext4", "-q", "-L", "keep", used)
	usedUUID := disktest.Blkid(t, used, "UUID")
	env, logs := hostEnv(t)
	doc := "fs_setup:\n  - {device: " + blank + ", partition: none, filesystem: xfs, label: raw}\n" +
		"  - {device: " + used + ", partition: none, filesystem: xfs, label: raw}\n"
	setup(t, env, doc)
	uuid := disktest.Blkid(t, blank, "UUID")
	if typ, label := disktest.Blkid(t, blank, "TYPE"), disktest.Blkid(t, blank, "LABEL"); typ != "xfs" || label != "raw" {
		t.Fatalf("TYPE=%q LABEL=%q", typ, label)
	}
	if typ, u := disktest.Blkid(t, used, "TYPE"), disktest.Blkid(t, used, "UUID"); typ != "ext4" || u != usedUUID {
		t.Fatalf("a used device was formatted: TYPE=%q UUID=%q", typ, u)
	}
	logs.TakeAll()
	setup(t, env, doc)
	if got := disktest.Blkid(t, blank, "UUID"); got != uuid {
		t.Errorf("second run reformatted: %s -> %s", uuid, got)
	}
	if !logged(logs, "the filesystem is already there") {
		t.Error("no 'already there' log")
	}
}

// TestRealMBRSwap: an MBR layout with a Linux and a swap partition, and
// swap made on the second through the dotted name.
func TestRealMBRSwap(t *testing.T) {
	disktest.Need(t, "losetup", "sfdisk", "partx", "blkid", "mkswap")
	loop := disktest.Loop(t, 64<<20)
	env, _ := hostEnv(t)
	setup(t, env, "device_aliases: {scratch: "+loop+"}\n"+
		"disk_setup:\n  scratch: {table_type: mbr, layout: [[60, 83], [40, 82]]}\n"+
		"fs_setup:\n  - {device: scratch.2, filesystem: swap, label: sw}\n")
	dump := disktest.Run(t, "sfdisk", "--dump", loop)
	if !strings.Contains(dump, "label: dos") || !strings.Contains(dump, "type=83") || !strings.Contains(dump, "type=82") {
		t.Errorf("sfdisk --dump:\n%s", dump)
	}
	if typ, label := disktest.Blkid(t, disktest.PartPath(loop, 2), "TYPE"), disktest.Blkid(t, disktest.PartPath(loop, 2), "LABEL"); typ != "swap" || label != "sw" {
		t.Errorf("p2: TYPE=%q LABEL=%q", typ, label)
	}
	if typ := disktest.Blkid(t, disktest.PartPath(loop, 1), "TYPE"); typ != "" {
		t.Errorf("p1: TYPE=%q", typ)
	}
}

// TestRealRemove: layout remove wipes the table only with overwrite.
func TestRealRemove(t *testing.T) {
	disktest.Need(t, "losetup", "sfdisk", "partx", "blkid", "wipefs")
	loop := disktest.Loop(t, 32<<20)
	disktest.Partition(t, loop, "label: gpt\n,\n")
	env, _ := hostEnv(t)
	setup(t, env, "disk_setup:\n  "+loop+": {layout: remove}\n")
	if pt := disktest.Blkid(t, loop, "PTTYPE"); pt != "gpt" {
		t.Fatalf("removed without overwrite: PTTYPE %q", pt)
	}
	setup(t, env, "disk_setup:\n  "+loop+": {layout: remove, overwrite: true}\n")
	if pt := disktest.Blkid(t, loop, "PTTYPE"); pt != "" {
		t.Fatalf("after remove: PTTYPE %q", pt)
	}
}

// TestRealMountedRefused: a mounted filesystem's disk and partition are
// never written, even with overwrite: true.
func TestRealMountedRefused(t *testing.T) {
	disktest.Need(t, "losetup", "sfdisk", "partx", "blkid", "mkfs.ext4", "mount")
	loop := disktest.Loop(t, 64<<20)
	disktest.Partition(t, loop, "label: gpt\n,\n")
	p1 := disktest.PartPath(loop, 1)
	disktest.Run(t, "mkfs.ext4", "-q", "-L", "busy", p1)
	uuid := disktest.Blkid(t, p1, "UUID")
	dir := t.TempDir()
	if out, err := exec.Command("mount", p1, dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount here: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	env, logs := hostEnv(t)
	setup(t, env, "disk_setup:\n  "+loop+": {table_type: mbr, layout: true, overwrite: true}\n"+
		"fs_setup:\n  - {device: "+loop+", partition: 1, filesystem: xfs, overwrite: true}\n")
	if pt, u := disktest.Blkid(t, loop, "PTTYPE"), disktest.Blkid(t, p1, "UUID"); pt != "gpt" || u != uuid {
		t.Errorf("a mounted disk was written: PTTYPE %q, UUID %s (was %s)", pt, u, uuid)
	}
	var inUse int
	for _, e := range logs.All() {
		if strings.Contains(e.Message, "in use") && strings.Contains(e.ContextMap()["why"].(string), "is mounted at "+dir) {
			inUse++
		}
	}
	if inUse != 2 {
		t.Errorf("%d 'in use' logs, want 2: %v", inUse, logs.All())
	}
}
