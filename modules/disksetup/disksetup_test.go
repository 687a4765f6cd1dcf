package disksetup

import (
	"context"
	"os"
	"reflect"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/growpart"
	"github.com/ec2init/ec2init/modules/modtest"
	"github.com/ec2init/ec2init/modules/mounts"
)

const (
	linuxGUID = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
	swapGUID  = "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F"
)

func TestScript(t *testing.T) {
	const disk = 1000 << 20 // 1000 MiB
	tests := []struct {
		table string
		parts []part
		want  string
		err   string
	}{
		{"gpt", []part{{percent: 100}}, "label: gpt\ntype=" + linuxGUID + "\n", ""},
		{"mbr", []part{{percent: 100}}, "label: dos\ntype=83\n", ""},
		{"mbr", []part{{percent: 33}, {percent: 33}, {percent: 34}},
			"label: dos\nsize=330MiB, type=83\nsize=330MiB, type=83\ntype=83\n", ""},
		{"gpt", []part{{percent: 50}, {percent: 25, typ: "82"}},
			"label: gpt\nsize=500MiB, type=" + linuxGUID + "\nsize=250MiB, type=" + swapGUID + "\n", ""},
		{"gpt", []part{{percent: 90, typ: "8300"}, {percent: 10, typ: "8200"}},
			"label: gpt\nsize=900MiB, type=" + linuxGUID + "\ntype=" + swapGUID + "\n", ""},
		{"gpt", []part{{percent: 100, typ: "e6d6d379-f507-44c2-a23c-238f2a3df928"}}, "label: gpt\ntype=E6D6D379-F507-44C2-A23C-238F2A3DF928\n", ""},
		{"mbr", []part{{percent: 70, typ: "8e"}, {percent: 30, typ: "8200"}}, "label: dos\nsize=700MiB, type=8e\ntype=82\n", ""},
		{"mbr", []part{{percent: 60}, {percent: 50}}, "", "add up to 110%"},
		{"mbr", []part{{percent: 0}}, "", "layout[0]: 0% is not between 1 and 100"},
		{"mbr", []part{{percent: 20}, {percent: 20}, {percent: 20}, {percent: 20}, {percent: 20}}, "", "do not fit an MBR table"},
		{"gpt", []part{{percent: 100, typ: "a5"}}, "", `layout[0]: partition type "a5": not one ec2init knows for gpt`},
		{"mbr", []part{{percent: 100, typ: "linux"}}, "", `partition type "linux": expected an MBR type`},
		{"msdos", []part{{percent: 100}}, "", `table_type "msdos"`},
		{"gpt", nil, "", "no partitions"},
	}
	for _, tt := range tests {
		got, err := Script(tt.table, tt.parts, disk)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s %v: %v, want %q", tt.table, tt.parts, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s %v:\n%s%v\nwant\n%s", tt.table, tt.parts, got, err, tt.want)
		}
	}
	if _, err := Script("gpt", []part{{percent: 1}, {percent: 99}}, 50<<20); err == nil || !strings.Contains(err.Error(), "less than 1 MiB") {
		t.Errorf("tiny partition: %v", err)
	}
}

func TestParse(t *testing.T) {
	disks := []struct {
		doc  string
		want diskSpec
		err  string
	}{
		{"{table_type: gpt, layout: true}", diskSpec{table: "gpt", all: true, layout: []part{{percent: 100}}}, ""},
		{"{layout: [33, [66, 82]], overwrite: true}", diskSpec{table: "mbr", layout: []part{{percent: 33}, {percent: 66, typ: "82"}}, overwrite: true}, ""},
		{"{layout: remove}", diskSpec{table: "mbr", remove: true}, ""},
		{"{layout: false}", diskSpec{table: "mbr"}, ""},
		{"{}", diskSpec{table: "mbr"}, ""},
		{"{table_type: apm}", diskSpec{}, `table_type: "apm"`},
		{"{layout: [half]}", diskSpec{}, `layout[0]: "half" is not a whole percentage`},
		{"{layout: [[50]]}", diskSpec{}, "layout[0]: expected a percentage or [percentage, partition type]"},
		{"{layout: maybe}", diskSpec{}, "layout: expected true, false, remove"},
		{"{overwrite: please}", diskSpec{}, "overwrite: expected true or false"},
		{"[x]", diskSpec{}, "expected a mapping"},
	}
	for _, tt := range disks {
		cfg := modtest.Config(t, "d: "+tt.doc)
		v, _ := cfg.Get("d")
		got, err := parseDisk(v.Node)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: %v, want %q", tt.doc, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: %+v, %v; want %+v", tt.doc, got, err, tt.want)
		}
	}
	fss := []struct {
		doc  string
		want fsSpec
		err  string
	}{
		{"{device: /dev/xvdf, filesystem: ext4, label: data}", fsSpec{device: "/dev/xvdf", fstype: "ext4", label: "data", partition: "any"}, ""},
		{"{device: ephemeral0.1, filesystem: xfs, overwrite: true, extra_opts: -m 0 -i 4096}",
			fsSpec{device: "ephemeral0", fstype: "xfs", partition: "1", overwrite: true, extraOpts: []string{"-m", "0", "-i", "4096"}}, ""},
		{"{device: d, filesystem: ext4, partition: 2, extra_opts: [-E, nodiscard]}", fsSpec{device: "d", fstype: "ext4", partition: "2", extraOpts: []string{"-E", "nodiscard"}}, ""},
		{"{device: d, partition: None, cmd: 'mkfs -t %(filesystem)s %(device)s'}", fsSpec{device: "d", partition: "none", shell: "mkfs -t %(filesystem)s %(device)s"}, ""},
		{"{device: d, cmd: [mkfs.ext4, '%(device)s']}", fsSpec{device: "d", partition: "any", cmd: []string{"mkfs.ext4", "%(device)s"}}, ""},
		{"{device: d, filesystem: ext4, partition: auto, replace_fs: ntfs}", fsSpec{device: "d", fstype: "ext4", partition: "auto", replaceFS: "ntfs"}, ""},
		{"{filesystem: ext4}", fsSpec{}, "device is required"},
		{"{device: d}", fsSpec{}, "filesystem (or cmd) is required"},
		{"{device: d, filesystem: ext4, partition: first}", fsSpec{}, `partition: "first": expected auto, any, none or a partition number`},
		{"{device: d, filesystem: ext4, partition: 0}", fsSpec{}, "expected auto, any, none or a partition number"},
		{"{device: d.1, filesystem: ext4, partition: 2}", fsSpec{}, "device d.1 names partition 1 but partition is 2"},
		{"{device: [d], filesystem: ext4}", fsSpec{}, "device: expected a string"},
		{"{device: d, filesystem: ext4, extra_opts: {a: b}}", fsSpec{}, "extra_opts: expected a string or a list of strings"},
	}
	for _, tt := range fss {
		cfg := modtest.Config(t, "f: "+tt.doc)
		v, _ := cfg.Get("f")
		got, err := parseFS(v.Node)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: %v, want %q", tt.doc, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: %+v, %v; want %+v", tt.doc, got, err, tt.want)
		}
	}
}

func TestMkfsArgv(t *testing.T) {
	tests := []struct {
		s    fsSpec
		want []string
	}{
		{fsSpec{fstype: "ext4", label: "data"}, []string{"mkfs.ext4", "-L", "data", "/dev/xvdf1"}},
		{fsSpec{fstype: "ext4", overwrite: true, extraOpts: []string{"-m", "0"}}, []string{"mkfs.ext4", "-F", "-m", "0", "/dev/xvdf1"}},
		{fsSpec{fstype: "xfs", label: "x", overwrite: true}, []string{"mkfs.xfs", "-L", "x", "-f", "/dev/xvdf1"}},
		{fsSpec{fstype: "btrfs", overwrite: true}, []string{"mkfs.btrfs", "-f", "/dev/xvdf1"}},
		{fsSpec{fstype: "vfat", label: "EFI", overwrite: true}, []string{"mkfs.vfat", "-n", "EFI", "/dev/xvdf1"}},
		{fsSpec{fstype: "swap", label: "sw"}, []string{"mkswap", "-L", "sw", "/dev/xvdf1"}},
		{fsSpec{fstype: "ext4", label: "my data", shell: "mkfs.%(filesystem)s -L '%(label)s' %(device)s && tune2fs -c0 %(device)s"},
			[]string{"sh", "-c", "mkfs.ext4 -L 'my data' /dev/xvdf1 && tune2fs -c0 /dev/xvdf1"}},
		{fsSpec{fstype: "ext4", label: "a b", cmd: []string{"mkfs.%(filesystem)s", "-L", "%(label)s", "%(device)s"}},
			[]string{"mkfs.ext4", "-L", "a b", "/dev/xvdf1"}},
	}
	for _, tt := range tests {
		got, err := mkfsArgv(tt.s, "/dev/xvdf1")
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%+v: %q, %v; want %q", tt.s, got, err, tt.want)
		}
	}
	if _, err := mkfsArgv(fsSpec{fstype: "../../bin/sh"}, "/dev/x"); err == nil {
		t.Error("a path as filesystem type was accepted")
	}
}

func TestSchema(t *testing.T) {
	doc := `device_aliases:
  data: /dev/xvdf
  bad: [x]
disk_setup:
  data:
    table_type: gpt
    layout: [60, [50, 82]]
  ephemeral0:
    table_type: dos
    layout: sometimes
    overwrite: true
fs_setup:
  - label: data
    filesystem: ext4
    partition: first
  - device: data.1
    filesystem: xfs
    extra_opts: [-f]
    size: 10
`
	got := modtest.Diagnostics(t, doc, DiskSetup{})
	for _, want := range []string{
		"u.yaml:3:8: error: device_aliases.bad: expected string, got a list",
		"u.yaml:7:13: error: disk_setup.data.layout: the partitions add up to 110%, more than the disk",
		`u.yaml:9:17: error: disk_setup.ephemeral0.table_type: expected one of mbr, gpt, got "dos"`,
		"u.yaml:10:13: error: disk_setup.ephemeral0.layout: expected boolean or one of remove or list of (integer or list of (integer or string)), got string",
		`u.yaml:13:5: error: fs_setup[0]: missing required key "device"`,
		`u.yaml:15:16: error: fs_setup[0].partition: expected integer or one of auto, any, none, got string`,
		`u.yaml:19:5: warning: fs_setup[1].size: unknown key "size"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	if n := len(strings.Split(got, "\n")); n != 7 {
		t.Errorf("%d findings, want 7:\n%s", n, got)
	}
	ok := `device_aliases: {my_alias: /dev/sdb}
disk_setup:
  my_alias: {table_type: mbr, layout: [[33, 82], 66], overwrite: false}
  /dev/sdd: {table_type: gpt, layout: true}
fs_setup:
  - {label: fs1, filesystem: ext4, device: my_alias.1, cmd: mkfs -t %(filesystem)s -L %(label)s %(device)s}
  - {label: swap, device: swap_disk.1, filesystem: swap}
  - {label: fs3, device: /dev/sdd1, filesystem: ext4, partition: auto, overwrite: false, replace_fs: ntfs, extra_opts: [-m, "0"]}
  - {device: ephemeral0, filesystem: xfs, partition: 1}
`
	if d := modtest.Diagnostics(t, ok, DiskSetup{}); d != "" {
		t.Errorf("cloud-init's example:\n%s", d)
	}
}

// TestTemporaryRoot: under a root without device nodes nothing is touched:
// IMDS names the instance lacks are skipped, mapped ones that are absent
// are skipped with a warning, a /dev path named outright is an error.
func TestTemporaryRoot(t *testing.T) {
	env, _ := modtest.Env(t)
	core, logs := observer.New(zap.InfoLevel)
	env.Log = zap.New(core)
	env.Instance = &imds.Instance{BlockDeviceMapping: []imds.BlockDevice{{Name: "ephemeral0", Device: "sdb"}}}
	env.Runner.Env = map[string]string{"PATH": t.TempDir()} // no tool could run
	cfg := modtest.Config(t, `disk_setup:
  ephemeral0: {layout: true}
  ephemeral1: {layout: true}
  /dev/xvdf: {layout: true}
fs_setup:
  - {device: ephemeral0.1, filesystem: ext4}
  - {device: /dev/xvdg, filesystem: ext4, partition: none}
`)
	err := (DiskSetup{}).Run(context.Background(), env, cfg)
	for _, want := range []string{
		"disk_setup./dev/xvdf: /dev/xvdf is not a block device under the root " + env.Root.Prefix(),
		"fs_setup[1] (line 7): /dev/xvdg is not a block device under the root",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
	var msgs []string
	for _, e := range logs.All() {
		msgs = append(msgs, e.Message+" "+e.ContextMap()["device"].(string))
	}
	got := strings.Join(msgs, "\n")
	for _, want := range []string{
		"disk_setup: the instance's device is not present under its mapped name; skipped ephemeral0",
		"disk_setup: the instance has no such device in its block-device-mapping; skipped ephemeral1",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %q:\n%s", want, got)
		}
	}
}

var _ modules.Module = DiskSetup{}

// TestTogether: the four disk modules share one registry (each key has one
// owner; device_aliases is disk_setup's) and, on an empty cloud-config in
// a temporary root with an instance that maps ephemeral0 (as the demo's
// simulator does), run without error and write nothing: growpart, resizefs
// and mounts are on by default but find no device there, disk_setup has
// nothing to do without its keys.
func TestTogether(t *testing.T) {
	ms := []modules.Module{growpart.Growpart{}, growpart.Resizefs{}, DiskSetup{}, mounts.Mounts{}}
	r, err := modules.NewRegistry(ms...)
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := r.Owner(KeyAliases); !ok || m.Name() != "disk_setup" {
		t.Errorf("device_aliases owner: %v", m)
	}
	env, _ := modtest.Env(t)
	env.Instance = &imds.Instance{InstanceID: "i-0123456789abcdef0",
		BlockDeviceMapping: []imds.BlockDevice{{Name: "ami", Device: "/dev/xvda"}, {Name: "ephemeral0", Device: "/dev/sdb"}, {Name: "root", Device: "/dev/xvda"}}}
	env.Runner.Env = map[string]string{"PATH": t.TempDir()} // nothing could run
	cfg := modtest.Config(t, "{}")
	for _, m := range ms {
		want := m.Name() != "disk_setup"
		if got := modules.ShouldRun(m, cfg); got != want {
			t.Errorf("%s: ShouldRun = %v, want %v", m.Name(), got, want)
		}
		if !want {
			continue
		}
		if err := m.Run(context.Background(), env, cfg); err != nil {
			t.Errorf("%s: %v", m.Name(), err)
		}
	}
	entries, err := os.ReadDir(env.Root.Prefix())
	if err != nil || len(entries) != 0 {
		t.Errorf("the root is not empty: %v %v", entries, err)
	}
}
