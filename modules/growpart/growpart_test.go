package growpart

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/internal/testkit"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/disk"
	"github.com/ec2init/ec2init/modules/internal/disk/disktest"
	"github.com/ec2init/ec2init/modules/modtest"
)

func observe(env *modules.Env) *observer.ObservedLogs {
	core, logs := observer.New(zap.InfoLevel)
	env.Log = zap.New(core)
	return logs
}

func messages(logs *observer.ObservedLogs) string {
	var out []string
	for _, e := range logs.All() {
		line := e.Message
		for _, f := range e.Context {
			if f.Key == "why" || f.Key == "device" {
				line += " " + f.Key + "=" + f.String
			}
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

func TestParse(t *testing.T) {
	tests := []struct {
		doc  string
		want settings
		err  string
	}{
		{"{}", settings{mode: "auto", devices: []string{"/"}}, ""},
		{"growpart:", settings{mode: "auto", devices: []string{"/"}}, ""},
		{"growpart: {mode: growpart, devices: [/, /dev/xvdf1]}", settings{mode: "growpart", devices: []string{"/", "/dev/xvdf1"}}, ""},
		{"growpart: {mode: off}", settings{mode: "off", devices: []string{"/"}}, ""},
		{"growpart: {mode: 'off'}", settings{mode: "off", devices: []string{"/"}}, ""},
		{"growpart: {mode: false}", settings{mode: "off", devices: []string{"/"}}, ""},
		{"growpart: {devices: [], ignore_growroot_disabled: true}", settings{mode: "auto", devices: []string{}, ignoreDisable: true}, ""},
		{"growpart: {mode: true}", settings{}, "test.yaml:1: growpart.mode: true is not a mode"},
		{"growpart: {mode: gpart}", settings{}, "gpart is FreeBSD's"},
		{"growpart: {mode: fast}", settings{}, `growpart.mode: "fast": expected auto, growpart or off`},
		{"growpart: {devices: /}", settings{}, "growpart.devices: expected a list"},
		{"growpart: {ignore_growroot_disabled: maybe}", settings{}, "expected true or false"},
		{"growpart: [/]", settings{}, "growpart: expected a mapping"},
	}
	for _, tt := range tests {
		got, err := parse(modtest.Config(t, tt.doc))
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: error %v, want %q", tt.doc, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: %+v, %v; want %+v", tt.doc, got, err, tt.want)
		}
	}
}

func TestResizeMode(t *testing.T) {
	for doc, want := range map[string]string{
		"{}": "on", "resize_rootfs:": "on", "resize_rootfs: true": "on", "resize_rootfs: false": "off",
		"resize_rootfs: noblock": "noblock", "resize_rootfs: off": "off", "resize_rootfs: 'noblock'": "noblock",
		"resize_rootfs: later": "error", "resize_rootfs: [x]": "error", "resize_rootfs: 'false'": "error",
	} {
		got, err := resizeMode(modtest.Config(t, doc))
		if err != nil {
			got = "error"
			if !strings.Contains(err.Error(), "resize_rootfs: expected true, false or noblock") {
				t.Errorf("%s: %v", doc, err)
			}
		}
		if got != want {
			t.Errorf("%s: %s, want %s", doc, got, want)
		}
	}
}

func TestSchema(t *testing.T) {
	doc := `growpart:
  mode: sometimes
  devices: /
  ignore_growroot_disabled: "yes"
  extra: 1
resize_rootfs: later
`
	got := modtest.Diagnostics(t, doc, Growpart{}, Resizefs{})
	want := []string{
		"u.yaml:2:9: error: growpart.mode: expected one of auto, growpart, off or boolean, got string",
		"u.yaml:3:12: error: growpart.devices: expected list of string, got string",
		"u.yaml:4:29: error: growpart.ignore_growroot_disabled: expected boolean (true or false), got string",
		"u.yaml:5:3: warning: growpart.extra: unknown key \"extra\" (known: mode, devices, ignore_growroot_disabled)",
		"u.yaml:6:16: error: resize_rootfs: expected boolean or one of noblock, got string",
	}
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("missing %q in:\n%s", w, got)
		}
	}
	if n := len(strings.Split(got, "\n")); n != len(want) {
		t.Errorf("%d findings, want %d:\n%s", n, len(want), got)
	}
	if d := modtest.Diagnostics(t, "growpart: {mode: off, devices: [/, /dev/xvdf]}\nresize_rootfs: noblock\n", Growpart{}, Resizefs{}); d != "" {
		t.Errorf("valid config: %s", d)
	}
	for _, m := range []modules.Module{Growpart{}, Resizefs{}} {
		if _, ok := m.(modules.Wanted); !ok || !m.(modules.Wanted).Wanted(modtest.Config(t, "{}")) {
			t.Errorf("%s is not on by default", m.Name())
		}
	}
}

// fakeGrowpart puts a growpart on the runner's PATH that records its
// arguments and answers with output and exit code.
func fakeGrowpart(t *testing.T, env *modules.Env, output string, code int) (argsFile string) {
	t.Helper()
	dir := t.TempDir()
	argsFile = filepath.Join(dir, "args")
	script := "#!/bin/sh\necho \"$@\" > " + argsFile + "\nprintf '%s\\n' '" + output + "'\nexit " + string(rune('0'+code)) + "\n"
	testkit.FakeTool(t, dir, "growpart", script)
	env.Runner.Env = map[string]string{"PATH": dir + ":" + sys.DefaultPath}
	return argsFile
}

// TestGrowpartExitCodes: growpart's exit 1 with NOCHANGE is "nothing to
// do", not a failure; any other non-zero exit is.
func TestGrowpartExitCodes(t *testing.T) {
	tests := []struct {
		name   string
		output string
		code   int
		want   outcome
		msg    string
	}{
		{"grown", "CHANGED: partition=1 start=2048 old: size=40960 end=43007 new: size=128991 end=131038", 0, changed, "CHANGED: partition=1"},
		{"nothing to grow", "NOCHANGE: partition 1 is size 128991. it cannot be grown", 1, nochange, "NOCHANGE"},
		{"exit 1 without NOCHANGE", "something odd", 1, failed, "growpart /dev/xvda 1 exited 1: something odd"},
		{"failure", "FAILED: /dev/xvda: does not exist", 2, failed, "exited 2: FAILED: /dev/xvda: does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, console := modtest.Env(t)
			args := fakeGrowpart(t, env, tt.output, tt.code)
			r := runGrowpart(context.Background(), env, "/dev/xvda", 1, "/dev/xvda1")
			if r.outcome != tt.want || !strings.Contains(r.msg, tt.msg) || r.part != "/dev/xvda1" {
				t.Errorf("got %+v, want outcome %d with %q", r, tt.want, tt.msg)
			}
			if b, err := os.ReadFile(args); err != nil || string(b) != "/dev/xvda 1\n" {
				t.Errorf("growpart got args %q, %v", b, err)
			}
			if !strings.Contains(console.String(), tt.output) {
				t.Errorf("console %q lacks growpart's output", console.String())
			}
		})
	}
	env, _ := modtest.Env(t)
	env.Runner.Env = map[string]string{"PATH": t.TempDir()}
	if r := runGrowpart(context.Background(), env, "/dev/xvda", 1, "/dev/xvda1"); r.outcome != missingTool {
		t.Errorf("no growpart installed: %+v", r)
	}
}

// TestPartitionOf resolves mount points and device paths through a root
// holding mountinfo and sysfs.
func TestPartitionOf(t *testing.T) {
	env, _ := modtest.Env(t)
	disktest.FakeBlock(t, env.Root, "nvme0n1", "", 0, 259, 0, 16777216)
	disktest.FakeBlock(t, env.Root, "nvme0n1p1", "nvme0n1", 1, 259, 1, 16000000)
	disktest.FakeBlock(t, env.Root, "nvme1n1", "", 0, 259, 5, 2097152)
	modtest.Put(t, env, disk.MountInfoFile, `22 1 259:1 / / rw,noatime - xfs /dev/nvme0n1p1 rw
24 22 259:5 / /data rw - ext4 /dev/nvme1n1 rw
25 22 0:40 / /run rw - tmpfs tmpfs rw
`)
	v := disk.NewView(env)
	tests := []struct {
		dev  string
		want disk.Block
		err  string
	}{
		{"/", disk.Block{Name: "nvme0n1p1", Partition: 1, Disk: "nvme0n1", Sectors: 16000000}, ""},
		{"/var/log", disk.Block{Name: "nvme0n1p1", Partition: 1, Disk: "nvme0n1", Sectors: 16000000}, ""},
		{"/data", disk.Block{Name: "nvme1n1", Sectors: 2097152}, ""},
		{"/run", disk.Block{}, "not on a block device"},
		{"/dev/nvme0n1p1", disk.Block{}, "/dev/nvme0n1p1: not found under the root"},
		{"data", disk.Block{}, "neither a mount point nor a /dev path"},
	}
	for _, tt := range tests {
		got, err := partitionOf(v, tt.dev)
		if tt.err != "" {
			if !errors.Is(err, disk.ErrNotResolved) || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: %v, want %q", tt.dev, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: %+v, %v; want %+v", tt.dev, got, err, tt.want)
		}
	}
	// A whole disk and a partition whose disk has no node here are skipped.
	for dev, why := range map[string]string{
		"/data": "/dev/nvme1n1 is not a partition",
		"/":     "/dev/nvme0n1 is not a block device under the root",
	} {
		if r := grow(context.Background(), v, dev); r.outcome != skipped || !strings.Contains(r.msg, why) {
			t.Errorf("grow(%s) = %+v, want skipped: %s", dev, r, why)
		}
	}
}

// TestTemporaryRoot: in a root without /proc and /sys (the demo, tests)
// both modules are on by default, find nothing and succeed, saying why.
func TestTemporaryRoot(t *testing.T) {
	env, _ := modtest.Env(t)
	logs := observe(env)
	env.Runner.Env = map[string]string{"PATH": t.TempDir()} // nothing could run anyway
	cfg := modtest.Config(t, "{}")
	for _, m := range []modules.Module{Growpart{}, Resizefs{}} {
		if err := m.Run(context.Background(), env, cfg); err != nil {
			t.Errorf("%s: %v", m.Name(), err)
		}
	}
	got := messages(logs)
	for _, want := range []string{
		"growpart: skipped device=/ why=/proc/self/mountinfo: not found under the root",
		"resizefs: skipped why=/proc/self/mountinfo: not found under the root",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %q:\n%s", want, got)
		}
	}
}

func TestDisabled(t *testing.T) {
	tests := []struct {
		doc, want string
	}{
		{"{}", "growpart: /etc/growroot-disabled exists; nothing grown"},
		{"growpart: {ignore_growroot_disabled: true}", "growpart: skipped device=/"},
		{"growpart: {mode: off}", "growpart: mode is off; nothing grown"},
		{"growpart: {devices: []}", "growpart: /etc/growroot-disabled exists"},
		{"growpart: {devices: [], ignore_growroot_disabled: true}", "growpart: no devices listed"},
		{"resize_rootfs: false", "resizefs: resize_rootfs is false"},
	}
	for _, tt := range tests {
		env, _ := modtest.Env(t)
		modtest.Put(t, env, DisabledFile, "")
		logs := observe(env)
		m := modules.Module(Growpart{})
		if strings.HasPrefix(tt.doc, "resize") {
			m = Resizefs{}
		}
		if err := m.Run(context.Background(), env, modtest.Config(t, tt.doc)); err != nil {
			t.Errorf("%s: %v", tt.doc, err)
		}
		if got := messages(logs); !strings.Contains(got, tt.want) {
			t.Errorf("%s: log %q lacks %q", tt.doc, got, tt.want)
		}
	}
}

func TestCommand(t *testing.T) {
	tests := []struct {
		fstype string
		want   []string
	}{
		{"ext4", []string{"resize2fs", "/dev/xvda1"}},
		{"ext3", []string{"resize2fs", "/dev/xvda1"}},
		{"ext2", []string{"resize2fs", "/dev/xvda1"}},
		{"xfs", []string{"xfs_growfs", "/"}},
		{"btrfs", []string{"btrfs", "filesystem", "resize", "max", "/"}},
		{"vfat", nil},
		{"zfs", nil},
	}
	for _, tt := range tests {
		if got := Command(tt.fstype, "/dev/xvda1", "/"); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.fstype, got, tt.want)
		}
	}
}

// TestResizeCommand picks the command from the root's mountinfo and sysfs.
func TestResizeCommand(t *testing.T) {
	tests := []struct {
		name, mountinfo string
		argv            []string // "ROOT" stands for the prefix
		why             string
	}{
		{"xfs root", "22 1 259:1 / / rw,noatime - xfs /dev/nvme0n1p1 rw\n", []string{"xfs_growfs", "ROOT"}, ""},
		{"btrfs on a known device number", "22 1 259:1 / / rw - btrfs /dev/nvme0n1p1 rw\n", []string{"btrfs", "filesystem", "resize", "max", "ROOT"}, ""},
		{"ext4 without a device node", "22 1 259:1 / / rw - ext4 /dev/root rw\n", nil, "/dev/nvme0n1p1 is not a block device under the root"},
		{"read-only", "22 1 259:1 / / ro,noatime - xfs /dev/nvme0n1p1 ro\n", nil, "/ is mounted read-only"},
		{"container overlay", "22 1 0:50 / / rw - overlay overlay rw,lowerdir=/a\n", nil, "not on a block device"},
		{"vfat", "22 1 259:1 / / rw - vfat /dev/nvme0n1p1 rw\n", nil, "no resizer for vfat"},
		{"nothing at /", "22 1 259:1 / /boot rw - xfs /dev/nvme0n1p1 rw\n", nil, "nothing is mounted at /"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, _ := modtest.Env(t)
			disktest.FakeBlock(t, env.Root, "nvme0n1", "", 0, 259, 0, 100)
			disktest.FakeBlock(t, env.Root, "nvme0n1p1", "nvme0n1", 1, 259, 1, 90)
			modtest.Put(t, env, disk.MountInfoFile, tt.mountinfo)
			argv, why, err := resizeCommand(disk.NewView(env), "/")
			if err != nil {
				t.Fatal(err)
			}
			for i := range tt.argv {
				if tt.argv[i] == "ROOT" {
					tt.argv[i] = env.Root.Prefix()
				}
			}
			if !reflect.DeepEqual(argv, tt.argv) || !strings.Contains(why, tt.why) {
				t.Errorf("got %v (%s), want %v (%s)", argv, why, tt.argv, tt.why)
			}
		})
	}
}

// TestContainer: in a container (systemd's /run/systemd/container) the
// disk is the host's: neither module looks for devices.
func TestContainer(t *testing.T) {
	for _, m := range []modules.Module{Growpart{}, Resizefs{}} {
		env, _ := modtest.Env(t)
		modtest.Put(t, env, disk.ContainerFile, "systemd-nspawn\n")
		logs := observe(env)
		if err := m.Run(context.Background(), env, modtest.Config(t, "{}")); err != nil {
			t.Errorf("%s: %v", m.Name(), err)
		}
		if got := messages(logs); !strings.Contains(got, m.Name()+": running in a container") {
			t.Errorf("%s: log %q", m.Name(), got)
		}
	}
}
