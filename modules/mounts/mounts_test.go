package mounts

import (
	"context"
	"os"
	"reflect"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/disk"
	"github.com/ec2init/ec2init/modules/modtest"
)

// A table as an Amazon Linux image may ship it: its root, a line of
// cloud-init's (not ec2init's), and a line ec2init wrote on an earlier run.
const foreign = `# /etc/fstab
UUID=1d2c / xfs defaults,noatime 1 1
/dev/sdz	/legacy	auto	defaults,nofail,comment=cloudconfig	0	2
tmpfs /tmp tmpfs defaults 0 0
`

const oldOwn = "/dev/xvdh\t/old\text4\tdefaults,comment=ec2init\t0\t2\n"

const opts = DefaultOptions + ",comment=ec2init"

// instanceEnv is a temporary root seen as a Xen instance whose
// block-device-mapping names ephemeral0 sdb (the kernel's xvdb, with one
// partition) and ephemeral1 sdc (absent), ebs1 sdf, and no swap device.
func instanceEnv(t *testing.T, fstab string) (*modules.Env, *observer.ObservedLogs) {
	t.Helper()
	env, _ := modtest.Env(t)
	core, logs := observer.New(zap.InfoLevel)
	env.Log = zap.New(core)
	env.Instance = &imds.Instance{InstanceID: "i-0123456789abcdef0", BlockDeviceMapping: []imds.BlockDevice{
		{Name: "ami", Device: "/dev/xvda"},
		{Name: "ebs1", Device: "sdf"},
		{Name: "ephemeral0", Device: "sdb"},
		{Name: "ephemeral1", Device: "sdc"},
		{Name: "root", Device: "/dev/xvda"},
	}}
	for _, p := range []string{"/dev/xvda", "/dev/xvdb", "/dev/xvdf", "/dev/xvdf1", "/dev/xvdf2"} {
		modtest.Put(t, env, p, "")
	}
	if fstab != "" {
		modtest.Put(t, env, FstabFile, fstab)
	}
	return env, logs
}

func TestFstab(t *testing.T) {
	tests := []struct {
		name  string
		doc   string
		fstab string
		want  string // ec2init's lines after the foreign ones
		dirs  []string
	}{
		{"default ephemeral0", "{}", foreign + oldOwn,
			"/dev/xvdb\t/media/ephemeral0\tauto\t" + opts + "\t0\t2\n", []string{"/media/ephemeral0"}},
		{"no fstab yet", "{}", "",
			"/dev/xvdb\t/media/ephemeral0\tauto\t" + opts + "\t0\t2\n", nil},
		{"entries", `mounts:
  - [ephemeral0, /mnt/scratch]
  - [ebs1, /data, xfs, "noatime,nofail"]
  - [sdg, "/my dir", ext4, defaults, 0, 0]
  - ["fileserver:/export", /nfs, nfs, "ro,_netdev"]
  - [LABEL=logs, /var/log/app, ~, ~, "1"]
`, foreign,
			"/dev/xvdb\t/mnt/scratch\tauto\t" + opts + "\t0\t2\n" +
				"/dev/xvdf1\t/data\txfs\tnoatime,nofail,comment=ec2init\t0\t2\n" +
				"/dev/sdg\t/my\\040dir\text4\tdefaults,comment=ec2init\t0\t0\n" +
				"fileserver:/export\t/nfs\tnfs\tro,_netdev,comment=ec2init\t0\t2\n" +
				"LABEL=logs\t/var/log/app\tauto\t" + opts + "\t1\t2\n",
			[]string{"/mnt/scratch", "/data", "/my dir", "/nfs", "/var/log/app"}},
		{"null mount point removes the default and ec2init's old line", "mounts:\n  - [ephemeral0, null]\n  - [/dev/xvdh]\n", foreign + oldOwn, "", nil},
		{"short form removes", "mounts: [[ephemeral0]]", foreign + oldOwn, "", nil},
		{"a later null removes earlier entries of the device", `mounts:
  - [/dev/xvdh, /first]
  - [/dev/xvdh, null]
  - [/dev/xvdh, /second]
`, foreign + oldOwn,
			"/dev/xvdh\t/second\tauto\t" + opts + "\t0\t2\n" +
				"/dev/xvdb\t/media/ephemeral0\tauto\t" + opts + "\t0\t2\n", []string{"/second"}},
		{"mount_default_fields", "mount_default_fields: [~, ~, ext4, \"defaults,noatime\", \"0\", \"0\"]\nmounts: [[/dev/xvdh, /h]]\n", foreign,
			"/dev/xvdh\t/h\text4\tdefaults,noatime,comment=ec2init\t0\t0\n" +
				"/dev/xvdb\t/media/ephemeral0\text4\tdefaults,noatime,comment=ec2init\t0\t0\n", nil},
		{"dotted partition and alias", "device_aliases: {data: ebs1.2}\nmounts: [[data, /d2], [ebs1.1, /d1]]\n", foreign,
			"/dev/xvdf2\t/d2\tauto\t" + opts + "\t0\t2\n" +
				"/dev/xvdf1\t/d1\tauto\t" + opts + "\t0\t2\n" +
				"/dev/xvdb\t/media/ephemeral0\tauto\t" + opts + "\t0\t2\n", nil},
		{"unmapped and absent IMDS devices", "mounts: [[ephemeral3, /e3], [ephemeral1, /e1]]\n", foreign,
			// ephemeral3 is not mapped: skipped; ephemeral1 is mapped but
			// absent: written under its name, nofail.
			"/dev/sdc\t/e1\tauto\t" + opts + "\t0\t2\n" +
				"/dev/xvdb\t/media/ephemeral0\tauto\t" + opts + "\t0\t2\n", nil},
		{"devices on foreign lines are left to them", "mounts: [[/dev/sdz, /mine], [ephemeral0, /e0]]\n",
			foreign + "/dev/xvdb /media/ephemeral0 auto defaults 0 2\n", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, _ := instanceEnv(t, tt.fstab)
			cfg := modtest.Config(t, tt.doc)
			for round := 1; round <= 2; round++ {
				if err := (Mounts{}).Run(context.Background(), env, cfg); err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
				keep := tt.fstab
				if keep == foreign+oldOwn {
					keep = foreign
				}
				if got := modtest.Get(t, env, FstabFile); got != keep+tt.want {
					t.Fatalf("round %d: fstab\n%s\nwant\n%s%s", round, got, keep, tt.want)
				}
			}
			for _, d := range tt.dirs {
				if fi, err := env.Root.Stat(d); err != nil || !fi.IsDir() {
					t.Errorf("mount point %s: %v", d, err)
				}
			}
		})
	}
}

// TestFstabRemovesOwnEntryOnNull: a device configured on one run and
// given a null mount point on the next loses ec2init's line; the foreign
// lines stay byte for byte, and the file keeps its mode.
func TestFstabRemovesOwnEntryOnNull(t *testing.T) {
	env, _ := instanceEnv(t, foreign)
	full, _ := env.Root.Path(FstabFile)
	if err := os.Chmod(full, 0o640); err != nil {
		t.Fatal(err)
	}
	run := func(doc string) string {
		if err := (Mounts{}).Run(context.Background(), env, modtest.Config(t, doc)); err != nil {
			t.Fatal(err)
		}
		return modtest.Get(t, env, FstabFile)
	}
	if got := run("mounts: [[ephemeral0, null], [/dev/xvdh, /data, ext4]]"); got != foreign+"/dev/xvdh\t/data\text4\t"+opts+"\t0\t2\n" {
		t.Fatalf("first run:\n%s", got)
	}
	if got := run("mounts: [[ephemeral0, null], [/dev/xvdh, null]]"); got != foreign {
		t.Fatalf("second run:\n%s", got)
	}
	if fi, err := os.Stat(full); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("fstab mode: %v, %v", fi.Mode(), err)
	}
}

// TestNotApplied: under a temporary root fstab is written but nothing is
// mounted; the log says what would run.
func TestNotApplied(t *testing.T) {
	env, logs := instanceEnv(t, "")
	modtest.Put(t, env, "/run/systemd/system/.keep", "")
	if err := (Mounts{}).Run(context.Background(), env, modtest.Config(t, "{}")); err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, e := range logs.All() {
		if e.Message == "mounts: the root is not the running system; fstab written, not applied" {
			found = e.ContextMap()["would_run"] == "systemctl daemon-reload; mount -a"
		}
	}
	if !found {
		t.Errorf("no 'not applied' log with the commands: %v", logs.All())
	}
}

// TestNothingToDo: no keys and no ephemeral device: fstab is not created.
func TestNothingToDo(t *testing.T) {
	env, _ := modtest.Env(t)
	if err := (Mounts{}).Run(context.Background(), env, modtest.Config(t, "{}")); err != nil {
		t.Fatal(err)
	}
	if got := modtest.Get(t, env, FstabFile); got != "<absent>" {
		t.Errorf("fstab written: %q", got)
	}
}

func TestBadEntries(t *testing.T) {
	env, _ := instanceEnv(t, "")
	err := (Mounts{}).Run(context.Background(), env, modtest.Config(t, `mounts:
  - /dev/xvdh
  - [/dev/xvdh, /a, b, c, d, e, f]
  - [~, /x]
  - [[a], /y]
  - [/dev/xvdi, /ok]
`))
	for _, want := range []string{
		"mounts[0] (line 2): expected a list [fs_spec, fs_file, ...]; skipped",
		"mounts[1] (line 3): expected 1 to 6 fields, got 7; skipped",
		"mounts[2] (line 4): fs_spec (the device) is required; skipped",
		"mounts[3] (line 5): field 1: expected a string; skipped",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
	if got := modtest.Get(t, env, FstabFile); !strings.Contains(got, "/dev/xvdi\t/ok\t") {
		t.Errorf("the good entry was not written: %q", got)
	}
	for doc, want := range map[string]string{
		"mount_default_fields: [a, b]":    "test.yaml:1: mount_default_fields: expected a list of 6 values",
		"swap: {size: 2X}":                `test.yaml:1: swap.size: "2X": expected bytes or a size such as 512M or 2G (or auto)`,
		"swap: {filename: swap, size: 1}": "swap.filename: expected an absolute path",
		"swap: {filename: \"/swap\\n/dev/sda1 / xfs defaults 0 0\", size: 1M}": `swap.filename: field 1 (fs_spec, the device) "/swap\n/dev/sda1 / xfs defaults 0 0" contains a line break`,
	} {
		err := (Mounts{}).Run(context.Background(), env, modtest.Config(t, doc))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", doc, err, want)
		}
	}
}

func TestSchema(t *testing.T) {
	doc := `mounts:
  - [ephemeral0, /mnt, auto, defaults, 0, 2, extra]
  - /dev/sdb
  - [[x]]
mount_default_fields: [~, ~, auto]
swap:
  filename: /swapfile
  size: lots
  maxsize: 2GB
  extra: true
`
	got := modtest.Diagnostics(t, doc, Mounts{})
	for _, want := range []string{
		"u.yaml:2:5: error: mounts[0]: expected 1 to 6 fields (fs_spec, fs_file, fs_vfstype, fs_mntops, fs_freq, fs_passno), got 7",
		"u.yaml:3:5: error: mounts[1]: expected list of (string or integer or null), got string",
		"u.yaml:4:6: error: mounts[2][0]: expected string or integer or null, got a list",
		"u.yaml:5:23: error: mount_default_fields: expected 6 values, got 3",
		`u.yaml:8:9: error: swap.size: "lots": expected bytes or a size such as 512M or 2G`,
		`u.yaml:10:3: warning: swap.extra: unknown key "extra" (known: filename, size, maxsize)`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	if strings.Contains(got, "swap.maxsize") {
		t.Errorf("2GB is a valid size:\n%s", got)
	}
	ok := "mounts:\n  - [ephemeral0, /mnt, auto, \"defaults,nofail\", \"0\", \"2\"]\n  - [swap, none, swap, sw, 0, 0]\n  - [sdc, null]\n" +
		"mount_default_fields: [None, None, auto, \"defaults,nofail\", \"0\", \"2\"]\nswap: {filename: /swap.img, size: auto, maxsize: 10485760}\n"
	if d := modtest.Diagnostics(t, ok, Mounts{}); d != "" {
		t.Errorf("valid config:\n%s", d)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"1073741824": 1 << 30, "2G": 2 << 30, "2GB": 2 << 30, "512M": 512 << 20, "1.5G": 3 << 29, ".5K": 512,
		"100B": 100, "1T": 1 << 40, "0": 0, "2g": 2 << 30,
	} {
		got, err := parseSize(&yaml.Node{Kind: yaml.ScalarNode, Value: in})
		if err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "G", "2X", "-1G", "lots", "1e400G", "2 G B"} {
		if _, err := parseSize(&yaml.Node{Kind: yaml.ScalarNode, Value: bad}); err == nil {
			t.Errorf("parseSize(%q): no error", bad)
		}
	}
}

func TestSuggestedSwap(t *testing.T) {
	tests := []struct {
		mem, free, max, want int64
	}{
		{1 * gib, 100 * gib, 0, 1 * gib},         // small RAM: as much swap
		{8 * gib, 100 * gib, 0, 4 * gib},         // mid: 4 GiB
		{64 * gib, 1000 * gib, 0, 8 * gib},       // large: sqrt(64) GiB
		{128 * gib, 1000 * gib, 0, 11 * gib},     // sqrt(128)=11.3 -> 11
		{8 * gib, 8 * gib, 0, 2 * gib},           // a quarter of the free space
		{1 * gib, 100 * gib, 10 << 20, 10 << 20}, // maxsize given
		{8 * gib, 10 * gib, 50 * gib, 4 * gib},   // maxsize above 90% of free: capped, still above 4G
		{8 * gib, 2 * gib, 50 * gib, 1932735283}, // ... and below: 90% of 2 GiB
		{512 * mib, 100 * gib, 0, 512 * mib},
	}
	for _, tt := range tests {
		if got := SuggestedSwap(tt.mem, tt.free, tt.max); got != tt.want {
			t.Errorf("SuggestedSwap(%d, %d, %d) = %d, want %d", tt.mem, tt.free, tt.max, got, tt.want)
		}
	}
}

func TestActivationArgv(t *testing.T) {
	tests := []struct {
		systemd, swap bool
		want          [][]string
	}{
		{true, true, [][]string{{"systemctl", "daemon-reload"}, {"mount", "-a"}, {"swapon", "-a"}}},
		{true, false, [][]string{{"systemctl", "daemon-reload"}, {"mount", "-a"}}},
		{false, false, [][]string{{"mount", "-a"}}},
	}
	for _, tt := range tests {
		if got := ActivationArgv(tt.systemd, tt.swap); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%v %v: %v", tt.systemd, tt.swap, got)
		}
	}
}

func TestEscape(t *testing.T) {
	if got := (Entry{"/dev/a b", "/m\tx\\y", "auto", "defaults,comment=ec2init", "0", "2"}).line(); got != "/dev/a\\040b\t/m\\011x\\134y\tauto\tdefaults,comment=ec2init\t0\t2" {
		t.Errorf("line() = %q", got)
	}
}

// TestNitroInstanceStore: a Nitro instance's ephemeral0 is a raw NVMe
// disk: not mounted by default, but an explicit entry reaches it.
func TestNitroInstanceStore(t *testing.T) {
	env, logs := instanceEnv(t, foreign)
	if err := env.Root.Remove("/dev/xvdb"); err != nil {
		t.Fatal(err)
	}
	modtest.Put(t, env, "/sys/block/nvme1n1/device/model", disk.InstanceStoreModel+"\n")
	modtest.Put(t, env, "/dev/nvme1n1", "")
	run := func(doc string) string {
		t.Helper()
		if err := (Mounts{}).Run(context.Background(), env, modtest.Config(t, doc)); err != nil {
			t.Fatal(err)
		}
		return strings.TrimPrefix(modtest.Get(t, env, FstabFile), foreign)
	}
	if got := run("{}"); got != "" {
		t.Errorf("default entries: %q", got)
	}
	if logs.FilterMessageSnippet("Nitro instance-store NVMe disk").Len() != 1 {
		t.Errorf("no log line saying why ephemeral0 is not mounted")
	}
	if got := run("mounts: [[ephemeral0, /scratch]]"); got != "/dev/nvme1n1\t/scratch\tauto\t"+opts+"\t0\t2\n" {
		t.Errorf("explicit entry: %q", got)
	}
}

// TestFstabInjection: a mounts field that would not stay one field of one
// fstab line (a line break, blanks in the later fields, a leading '#', a NUL,
// nothing) refuses its entry: the module fails (degraded) naming the entry
// and the field, the other entries are written, and fstab is byte for byte
// what it is without the bad entry.
func TestFstabInjection(t *testing.T) {
	const good = "  - [/dev/xvdh, /good]\n"
	long := strings.Repeat("a", 1000)
	tests := []struct {
		name, entry, want string
	}{
		{"newline in the mount point", `[/dev/xvdi, "/mnt/x\n/dev/sda1 / ext4 defaults 0 0"]`,
			`mounts[1] (line 3): field 2 (fs_file, the mount point) "/mnt/x\n/dev/sda1 / ext4 defaults 0 0" contains a line break; skipped`},
		{"newline in the type", `[/dev/xvdi, /x, "ext4\n/dev/sda1 /etc ext4 defaults 0 0"]`,
			`field 3 (fs_vfstype) "ext4\n/dev/sda1 /etc ext4 defaults 0 0" contains a line break`},
		{"blanks in the options", `[/dev/xvdi, /x, auto, "defaults 0 0\n/dev/sdb /root"]`,
			`field 4 (fs_mntops) "defaults 0 0\n/dev/sdb /root" contains whitespace`},
		{"tab in the options", `[/dev/xvdi, /x, auto, "defaults,nofail\tx"]`, `field 4 (fs_mntops) "defaults,nofail\tx" contains whitespace`},
		{"carriage return in passno", `[/dev/xvdi, /x, auto, defaults, "0", "2\r/dev/sdc /y auto defaults 0 0"]`,
			`field 6 (fs_passno) "2\r/dev/sdc /y auto defaults 0 0" contains a line break`},
		{"commented device", `["#/dev/xvdi", /x]`, `field 1 (fs_spec, the device) "#/dev/xvdi" starts with '#'`},
		{"newline in the device", `["/dev/xvdi\n/dev/sda1", /x]`, `field 1 (fs_spec, the device) "/dev/xvdi\n/dev/sda1" contains a line break`},
		{"empty freq", `[/dev/xvdi, /x, auto, defaults, ""]`, `field 5 (fs_freq) "" is empty`},
		{"empty mount point", `[/dev/xvdi, ""]`, `field 2 (fs_file, the mount point) "" is empty`},
		{"NUL in the type", `[/dev/xvdi, /x, "ext4\0"]`, `field 3 (fs_vfstype) "ext4\x00" contains a NUL`},
		{"escape character", `[/dev/xvdi, "/x\e[2J"]`, `field 2 (fs_file, the mount point) "/x\x1b[2J" contains a control character`},
		{"long value", `[/dev/xvdi, "/` + long + `\n"]`, `field 2 (fs_file, the mount point) "/` + long[:39] + `..." contains a line break`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clean, _ := instanceEnv(t, foreign)
			if err := (Mounts{}).Run(context.Background(), clean, modtest.Config(t, "mounts:\n"+good)); err != nil {
				t.Fatal(err)
			}
			env, _ := instanceEnv(t, foreign)
			err := (Mounts{}).Run(context.Background(), env, modtest.Config(t, "mounts:\n"+good+"  - "+tt.entry+"\n"))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v\nwant it to contain %s", err, tt.want)
			}
			if len(err.Error()) > 300 {
				t.Errorf("the error echoes the whole value (%d bytes)", len(err.Error()))
			}
			got, want := modtest.Get(t, env, FstabFile), modtest.Get(t, clean, FstabFile)
			if got != want {
				t.Errorf("fstab with the bad entry:\n%s\nwithout it:\n%s", got, want)
			}
			if !strings.Contains(got, "/dev/xvdh\t/good\t") {
				t.Errorf("the good entry is not written:\n%s", got)
			}
		})
	}
}

// TestFstabInjectionDefaultsAndIMDS: mount_default_fields feed every
// entry, so a bad one fails the module with fstab untouched; a device name
// from IMDS's block-device-mapping is checked like a configured one.
func TestFstabInjectionDefaultsAndIMDS(t *testing.T) {
	env, _ := instanceEnv(t, foreign)
	err := (Mounts{}).Run(context.Background(), env, modtest.Config(t,
		"mount_default_fields: [~, ~, auto, \"defaults\\n/dev/sda1 / xfs defaults\", \"0\", \"2\"]\nmounts: [[/dev/xvdh, /h]]\n"))
	if err == nil || !strings.Contains(err.Error(), `mount_default_fields[3]: field 4 (fs_mntops) "defaults\n/dev/sda1 / xfs defaults" contains a line break`) {
		t.Errorf("bad default: %v", err)
	}
	if got := modtest.Get(t, env, FstabFile); got != foreign {
		t.Errorf("fstab changed by a refused default:\n%s", got)
	}

	env, _ = instanceEnv(t, foreign)
	env.Instance.BlockDeviceMapping = append(env.Instance.BlockDeviceMapping,
		imds.BlockDevice{Name: "ebs2", Device: "sdq\nUUID=evil\t/\txfs\tdefaults\t0\t0"})
	err = (Mounts{}).Run(context.Background(), env, modtest.Config(t, "mounts: [[ebs2, /e2], [/dev/xvdh, /h]]\n"))
	if err == nil || !strings.Contains(err.Error(), `fstab entry for mount point "/e2": field 1 (fs_spec, the device)`) {
		t.Errorf("hostile device name from IMDS: %v", err)
	}
	got := modtest.Get(t, env, FstabFile)
	if strings.Contains(got, "evil") || !strings.Contains(got, "/dev/xvdh\t/h\t") {
		t.Errorf("fstab:\n%s", got)
	}
}
