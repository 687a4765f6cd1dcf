package software

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ec2init/ec2init/agent/fetch"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules/modtest"
)

func TestInstallFile(t *testing.T) {
	self := fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid())
	tests := []struct {
		name      string
		install   Install
		wantMode  os.FileMode
		wantOwner string // uid:gid
		wantErr   string
	}{
		{name: "defaults", install: Install{Dest: "/usr/local/bin/tool"}, wantMode: 0o644, wantOwner: self},
		{name: "mode", install: Install{Dest: "/usr/local/bin/tool", Mode: 0o750}, wantMode: 0o750, wantOwner: self},
		{name: "setuid kept after chown", install: Install{Dest: "/usr/local/bin/tool", Mode: 0o4755, Owner: self}, wantMode: 0o755 | fs.ModeSetuid, wantOwner: self},
		{name: "owner by name", install: Install{Dest: "/srv/app/conf", Mode: 0o640, Owner: "app:app"}, wantMode: 0o640, wantOwner: "1234:1234"},
		{name: "unknown owner", install: Install{Dest: "/srv/app/conf", Owner: "nobody-here"}, wantErr: `owner "nobody-here"`},
		{name: "dest is a directory", install: Install{Dest: "/srv"}, wantErr: "install /srv: is a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if strings.HasPrefix(tt.wantOwner, "1234") && os.Getuid() != 0 {
				t.Skip("chown to another user needs root")
			}
			env := newEnv(t)
			writeHost(t, env.Root, "/etc/passwd", []byte("root:x:0:0::/root:/bin/sh\napp:x:1234:1234::/srv/app:/bin/false\n"))
			writeHost(t, env.Root, "/etc/group", []byte("root:x:0:\napp:x:1234:\n"))
			writeHost(t, env.Root, "/srv/old", []byte("x"))
			writeHost(t, env.Root, tt.install.Dest+".keep", []byte("neighbour"))
			art := writeHost(t, env.Root, "/cache/a", []byte("new content"))
			tt.install.Type = TypeFile
			p, err := installFile(env.Root, &Item{Name: "t", Install: tt.install}, art, "", true)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			full, _ := env.Root.Path(tt.install.Dest)
			fi, err := os.Stat(full)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode()&(fs.ModePerm|fs.ModeSetuid) != tt.wantMode {
				t.Errorf("mode %v, want %v", fi.Mode(), tt.wantMode)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if got := fmt.Sprintf("%d:%d", st.Uid, st.Gid); got != tt.wantOwner {
				t.Errorf("owner %s, want %s", got, tt.wantOwner)
			}
			if readHost(t, env.Root, tt.install.Dest) != "new content" || p.SHA256 != sha256hex([]byte("new content")) || p.Size != 11 || !p.MTime.Equal(fi.ModTime()) {
				t.Errorf("installed %+v", p)
			}
			// Nothing else in the directory: no temporary file left.
			entries, _ := os.ReadDir(filepath.Dir(full))
			if len(entries) != 2 {
				t.Errorf("directory holds %d entries, want the file and its neighbour", len(entries))
			}
		})
	}
}

// bootConfig is a cloud-config of items served by o, the CA under the root.
func bootConfig(ca, items string) string {
	return "software:\n  ca_file: " + ca + "\n  items:\n" + indent(items, 4)
}

func readResults(t *testing.T, root *sys.Root, id string) map[string]ItemResult {
	t.Helper()
	data, err := root.ReadFile("/var/lib/ec2init/instances/" + id + "/software.json")
	if err != nil {
		t.Fatal(err)
	}
	var rec state.ItemReport[ItemResult]
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	out := map[string]ItemResult{}
	for _, r := range rec.Items {
		out[r.Name] = r
	}
	return out
}

func TestRunBootItems(t *testing.T) {
	o := newOrigin(t)
	env := newEnv(t)
	ca := o.installCA(t, env.Root)
	tool := []byte("#!/bin/sh\necho tool\n")
	tgz := tarGz(t, []entry{{name: "app/bin/app", body: "app v2", mode: 0o755}})
	toolURL := o.Put("/tool", tool)
	tgzURL := o.Put("/app.tar.gz", tgz)
	o.Put("/app.tar.gz.sha256", []byte(sha256hex(tgz)+"  app.tar.gz\n"))
	cfg := modtest.Config(t, bootConfig(ca, `
- name: tool
  source: `+toolURL+`?token=secret
  sha512: `+sha512hex(tool)+`
  install: {type: file, dest: /usr/local/bin/tool, mode: '0755'}
- name: app
  source: `+tgzURL+`
  sha256_url: `+tgzURL+`.sha256
  frequency: always
  install: {type: tarball, dest: /opt/app, strip_components: 1}
  service: {unit: app.service, enable: true, restart: true}
`))
	m, rec := module()
	if err := m.Run(context.Background(), env, cfg); err != nil {
		t.Fatal(err)
	}
	if readHost(t, env.Root, "/usr/local/bin/tool") != string(tool) || readHost(t, env.Root, "/opt/app/bin/app") != "app v2" {
		t.Error("items not installed")
	}
	if got, want := rec.Actions(), []string{"daemon-reload", "enable app.service", "restart app.service"}; !reflect.DeepEqual(got, want) {
		t.Errorf("systemd actions %q, want %q", got, want)
	}
	res := readResults(t, env.Root, "i-0abc")
	if r := res["tool"]; r.Action != ActionInstalled || !r.Installed || r.Source != toolURL || r.Checksum != "sha512:"+sha512hex(tool) || r.Bytes != int64(len(tool)) || r.Cached {
		t.Errorf("tool result: %+v", r)
	}
	if r := res["app"]; r.Action != ActionInstalled || r.Checksum != "sha256:"+sha256hex(tgz) || r.Frequency != "always" {
		t.Errorf("app result: %+v", r)
	}
	if fi, err := env.Root.Stat("/var/lib/ec2init/instances/i-0abc/software.json"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("results file mode: %v %v", fi, err)
	}
	// A reboot of the same instance: the per-instance item is done, the
	// always item is installed again from the cache. No artifact is
	// downloaded twice.
	if err := m.Run(context.Background(), env, cfg); err != nil {
		t.Fatal(err)
	}
	res = readResults(t, env.Root, "i-0abc")
	if res["tool"].Action != ActionSkipped || res["app"].Action != ActionInstalled || !res["app"].Cached {
		t.Errorf("reboot results: tool %+v, app %+v", res["tool"], res["app"])
	}
	if o.Count("/tool") != 1 || o.Count("/app.tar.gz") != 1 {
		t.Errorf("artifact requests: tool %d, app %d; want 1 each", o.Count("/tool"), o.Count("/app.tar.gz"))
	}
}

// A checksum mismatch fails its item alone: nothing of it is installed,
// the previous version stays, the other items are installed and the error
// names the failed one.
func TestChecksumMismatchLeavesOldVersion(t *testing.T) {
	o := newOrigin(t)
	env := newEnv(t)
	ca := o.installCA(t, env.Root)
	writeHost(t, env.Root, "/usr/local/bin/tool", []byte("tool v1"))
	writeHost(t, env.Root, "/opt/app/bin/app", []byte("app v1"))
	tampered := tarGz(t, []entry{{name: "bin/app", body: "app v2 (tampered)"}})
	good := []byte("fine")
	cfg := modtest.Config(t, bootConfig(ca, `
- name: tool
  source: `+o.Put("/tool", []byte("tool v2 (tampered)"))+`
  sha256: `+sha256hex([]byte("tool v2"))+`
  install: {type: file, dest: /usr/local/bin/tool}
- name: app
  source: `+o.Put("/app.tgz", tampered)+`
  sha256: `+sha256hex([]byte("what was published"))+`
  install: {type: tarball, dest: /opt/app}
  service: {unit: app.service, restart: true}
- name: other
  source: `+o.Put("/other", good)+`
  sha256: `+sha256hex(good)+`
  install: {type: file, dest: /etc/other}
`))
	m, rec := module()
	err := m.Run(context.Background(), env, cfg)
	if err == nil || !errors.Is(err, fetch.ErrChecksum) || !strings.Contains(err.Error(), "tool: fetch") || !strings.Contains(err.Error(), "app: fetch") {
		t.Fatalf("err = %v, want both items' checksum errors", err)
	}
	if readHost(t, env.Root, "/usr/local/bin/tool") != "tool v1" || readHost(t, env.Root, "/opt/app/bin/app") != "app v1" {
		t.Error("a tampered artifact replaced the previous version")
	}
	if readHost(t, env.Root, "/etc/other") != "fine" {
		t.Error("the good item was not installed")
	}
	if len(rec.Actions()) != 0 {
		t.Errorf("systemd acted on a failed item: %q", rec.Actions())
	}
	res := readResults(t, env.Root, "i-0abc")
	if r := res["tool"]; r.Action != ActionFailed || r.Installed || !strings.Contains(r.Error, "checksum") {
		t.Errorf("tool result: %+v", r)
	}
	// The failed per-instance item is tried again at the next boot.
	o.Put("/tool", []byte("tool v2"))
	if err := m.Run(context.Background(), env, cfg); err == nil || strings.Contains(err.Error(), "tool:") {
		t.Errorf("second run: %v (tool should now install, app still fail)", err)
	}
	if readHost(t, env.Root, "/usr/local/bin/tool") != "tool v2" {
		t.Error("tool not installed on the retry")
	}
}

// A tarball refused for an unsafe entry fails its item and names it.
func TestUnsafeTarballItem(t *testing.T) {
	env := newEnv(t)
	writeHost(t, env.Root, "/opt/app/v1", []byte("one"))
	evil := tarGz(t, []entry{{name: "../../etc/cron.d/evil", body: "* * * * * root sh"}})
	writeHost(t, env.Root, "/srv/evil.tgz", evil)
	cfg := modtest.Config(t, `software:
  items:
    - {name: evil, source: "file:///srv/evil.tgz", sha256: `+sha256hex(evil)+`, install: {type: tarball, dest: /opt/app}}
`)
	m, _ := module()
	err := m.Run(context.Background(), env, cfg)
	if !errors.Is(err, ErrUnsafeEntry) || !strings.HasPrefix(err.Error(), "evil: install /opt/app:") {
		t.Fatalf("err = %v", err)
	}
	if ok, _ := env.Root.Exists("/etc/cron.d/evil"); ok {
		t.Fatal("an entry was written outside dest")
	}
	if readHost(t, env.Root, "/opt/app/v1") != "one" {
		t.Error("previous install changed")
	}
}

// file:// sources read from the root; without a checksum they are used in
// place (only remote sources must carry one).
func TestLocalSources(t *testing.T) {
	env := newEnv(t)
	body := []byte("local")
	writeHost(t, env.Root, "/srv/local", body)
	cfg := modtest.Config(t, `software:
  items:
    - {name: plain, source: "file:///srv/local", install: {type: file, dest: /etc/plain}}
    - {name: checked, source: "file:///srv/local", sha256: `+sha256hex(body)+`, install: {type: file, dest: /etc/checked}}
    - {name: missing, source: "file:///srv/none", install: {type: file, dest: /etc/none}}
`)
	m, _ := module()
	err := m.Run(context.Background(), env, cfg)
	if err == nil || !strings.HasPrefix(err.Error(), "missing: source file:///srv/none:") {
		t.Fatalf("err = %v", err)
	}
	if readHost(t, env.Root, "/etc/plain") != "local" || readHost(t, env.Root, "/etc/checked") != "local" {
		t.Error("local items not installed")
	}
	if r := readResults(t, env.Root, "i-0abc")["plain"]; r.Checksum != "sha256:"+sha256hex(body) {
		t.Errorf("plain result: %+v", r)
	}
}

// The Hybrid choice is one word: a bake item never baked is fetched at
// boot (with a warning), and a baked item flipped to boot is fetched at
// boot as any boot item, its manifest entry ignored.
func TestPolicyFlip(t *testing.T) {
	o := newOrigin(t)
	body := []byte("exporter")
	url := o.Put("/ne", body)
	items := func(policy string) string {
		return `
- name: ne
  policy: ` + policy + `
  source: ` + url + `
  sha256: ` + sha256hex(body) + `
  install: {type: file, dest: /opt/ne/ne}
  service: {unit: ne.service, enable: true, start: true}
`
	}

	// bake, never baked: installed at boot with a warning.
	env := newEnv(t)
	core, logs := observer.New(zap.WarnLevel)
	env.Log = zap.New(core)
	m, rec := module()
	if err := m.Run(context.Background(), env, modtest.Config(t, bootConfig(o.installCA(t, env.Root), items("bake")))); err != nil {
		t.Fatal(err)
	}
	if readHost(t, env.Root, "/opt/ne/ne") != "exporter" {
		t.Error("never-baked bake item not installed at boot")
	}
	if logs.FilterMessageSnippet("never baked").Len() != 1 {
		t.Errorf("warnings: %v", logs.All())
	}
	// Installed once for the instance, like a per-instance boot item.
	if err := m.Run(context.Background(), env, modtest.Config(t, bootConfig("/etc/ec2init/test-ca.pem", items("bake")))); err != nil {
		t.Fatal(err)
	}
	if r := readResults(t, env.Root, "i-0abc")["ne"]; r.Action != ActionSkipped || o.Count("/ne") != 1 {
		t.Errorf("reboot: %+v, %d requests", r, o.Count("/ne"))
	}
	if got := rec.Actions(); !reflect.DeepEqual(got, []string{"daemon-reload", "enable ne.service", "start ne.service"}) {
		t.Errorf("actions %q", got)
	}

	// Baked, then flipped to boot: fetched (from the cache here) and
	// installed at boot.
	env = newEnv(t)
	ca := o.installCA(t, env.Root)
	man, _, err := m.Bake(context.Background(), env, modtest.Config(t, bootConfig(ca, items("bake"))), "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteManifest(env.Root, man); err != nil {
		t.Fatal(err)
	}
	if err := env.Root.Remove("/opt/ne/ne"); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(context.Background(), env, modtest.Config(t, bootConfig(ca, items("boot")))); err != nil {
		t.Fatal(err)
	}
	if readHost(t, env.Root, "/opt/ne/ne") != "exporter" {
		t.Error("flipped item not installed at boot")
	}
	if r := readResults(t, env.Root, "i-0abc")["ne"]; r.Action != ActionInstalled || r.Policy != PolicyBoot {
		t.Errorf("result %+v", r)
	}
}

func TestManifestVerify(t *testing.T) {
	type change func(t *testing.T, env *envT)
	setBody := func(p, body string, keepTime bool) change {
		return func(t *testing.T, e *envT) {
			full, _ := e.root.Path(p)
			fi, err := os.Stat(full)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			if keepTime {
				os.Chtimes(full, fi.ModTime(), fi.ModTime())
			}
		}
	}
	tests := []struct {
		name     string
		verify   string
		change   change
		wantErr  string // "" verified
		newSum   bool   // the configured checksum is another than baked
		selected string // which item: file or tree
	}{
		{name: "file untouched", verify: VerifyQuick, selected: "file"},
		{name: "file untouched, full", verify: VerifyFull, selected: "file"},
		{name: "file resized", verify: VerifyQuick, selected: "file", change: setBody("/usr/local/bin/tool", "longer content", false), wantErr: "/usr/local/bin/tool: size 14, baked 4"},
		{name: "file touched", verify: VerifyQuick, selected: "file", change: func(t *testing.T, e *envT) {
			full, _ := e.root.Path("/usr/local/bin/tool")
			os.Chtimes(full, e.now, e.now)
		}, wantErr: "/usr/local/bin/tool: modified"},
		{name: "same size and mtime: quick misses it", verify: VerifyQuick, selected: "file", change: setBody("/usr/local/bin/tool", "TOOL", true)},
		{name: "same size and mtime: full finds it", verify: VerifyFull, selected: "file", change: setBody("/usr/local/bin/tool", "TOOL", true), wantErr: "/usr/local/bin/tool: content differs"},
		{name: "file removed", verify: VerifyQuick, selected: "file", change: func(t *testing.T, e *envT) { e.root.Remove("/usr/local/bin/tool") }, wantErr: "/usr/local/bin/tool is missing"},
		{name: "another version configured", verify: VerifyQuick, selected: "file", newSum: true, wantErr: "the image was baked with sha256:"},
		{name: "tree untouched", verify: VerifyFull, selected: "tree"},
		{name: "tree file added", verify: VerifyQuick, selected: "tree", change: func(t *testing.T, e *envT) {
			writeHost(t, e.root, "/opt/app/extra", []byte("x"))
		}, wantErr: "/opt/app: files added, removed, resized or modified (3 files"},
		{name: "tree file modified", verify: VerifyQuick, selected: "tree", change: setBody("/opt/app/bin/app", "app v3", false), wantErr: "/opt/app: files added"},
		{name: "tree: same size and mtime, quick misses it", verify: VerifyQuick, selected: "tree", change: setBody("/opt/app/bin/app", "APP V2", true)},
		{name: "tree: same size and mtime, full finds it", verify: VerifyFull, selected: "tree", change: setBody("/opt/app/bin/app", "APP V2", true), wantErr: "/opt/app: content differs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t)
			tool := []byte("tool")
			tgz := tarGz(t, []entry{{name: "bin/app", body: "app v2"}, {name: "README", body: "r"}})
			writeHost(t, env.Root, "/srv/tool", tool)
			writeHost(t, env.Root, "/srv/app.tgz", tgz)
			items := map[string]string{
				"file": `{name: tool, policy: bake, verify: %s, source: "file:///srv/tool", sha256: %s, install: {type: file, dest: /usr/local/bin/tool}}`,
				"tree": `{name: app, policy: bake, verify: %s, source: "file:///srv/app.tgz", sha256: %s, install: {type: tarball, dest: /opt/app}}`,
			}
			sums := map[string]string{"file": sha256hex(tool), "tree": sha256hex(tgz)}
			doc := func(sum string) string {
				return "software:\n  items:\n    - " + fmt.Sprintf(items[tt.selected], tt.verify, sum) + "\n"
			}
			m, _ := module()
			man, _, err := m.Bake(context.Background(), env, modtest.Config(t, doc(sums[tt.selected])), "test")
			if err != nil {
				t.Fatal(err)
			}
			if err := WriteManifest(env.Root, man); err != nil {
				t.Fatal(err)
			}
			if tt.change != nil {
				tt.change(t, &envT{root: env.Root, now: man.BakedAt.Add(1e9)})
			}
			sum := sums[tt.selected]
			if tt.newSum {
				sum = sha256hex([]byte("a newer release"))
			}
			err = m.Run(context.Background(), env, modtest.Config(t, doc(sum)))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("verify: %v", err)
				}
				for _, r := range readResults(t, env.Root, "i-0abc") {
					if r.Action != ActionVerified {
						t.Errorf("result %+v", r)
					}
				}
				return
			}
			if !errors.Is(err, ErrChanged) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want ErrChanged and %q", err, tt.wantErr)
			}
		})
	}
}

// envT is what a change in TestManifestVerify works on.
type envT struct {
	root *sys.Root
	now  time.Time
}

// Bake then boot: baked items are installed from a loopback HTTPS origin
// (self-signed CA from ca_file), recorded in the manifest (0600); the boot
// verifies them without a request and fetches the boot item.
func TestBakeThenBoot(t *testing.T) {
	o := newOrigin(t)
	env := newEnv(t)
	ca := o.installCA(t, env.Root)
	ne := tarZst(t, []entry{{name: "ne-1.8.2/ne", body: "exporter", mode: 0o755}, {name: "ne-1.8.2/LICENSE", body: "Apache"}})
	cli := []byte("cli v1")
	app := []byte("app build 42")
	doc := bootConfig(ca, `
- name: node-exporter
  policy: bake
  source: `+o.Put("/ne.tar.zst", ne)+`
  sha256: `+sha256hex(ne)+`
  install: {type: tarball, dest: /opt/node-exporter, strip_components: 1}
  service: {unit: node-exporter.service, enable: true, start: true}
- name: cli
  policy: bake
  verify: full
  source: `+o.Put("/cli", cli)+`
  sha512: `+sha512hex(cli)+`
  install: {type: file, dest: /usr/local/bin/cli, mode: '0755'}
- name: app
  policy: boot
  source: `+o.Put("/app", app)+`
  sha256_url: `+o.Put("/app.sha256", []byte(sha256hex(app)+"\n"))+`
  install: {type: file, dest: /srv/app/app}
  service: {unit: app.service, restart: true}
`)
	bakeEnv := *env
	bakeEnv.Instance = nil // bake runs on a build instance with no state of its own
	m, bakeRec := module()
	man, results, err := m.Bake(context.Background(), &bakeEnv, modtest.Config(t, doc), "1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 2 || o.Count("/app") != 0 {
		t.Fatalf("bake touched the boot item: %d results, %d requests", len(results), o.Count("/app"))
	}
	if got := bakeRec.Actions(); !reflect.DeepEqual(got, []string{"daemon-reload", "enable node-exporter.service"}) {
		t.Errorf("bake systemd actions %q: units are enabled, not started, on the build instance", got)
	}
	if err := WriteManifest(env.Root, man); err != nil {
		t.Fatal(err)
	}
	if fi, err := env.Root.Stat(ManifestFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("manifest: %v %v", fi, err)
	}
	back, err := ReadManifest(env.Root)
	if err != nil || back.EC2InitVersion != "1.2.3" || len(back.Items) != 2 {
		t.Fatalf("manifest read back: %+v %v", back, err)
	}
	if it := back.Find("node-exporter"); it.Algo != "sha256" || it.Sum != sha256hex(ne) || it.Size != int64(len(ne)) ||
		len(it.Installed) != 1 || it.Installed[0].Kind != KindTree || it.Installed[0].Files != 2 || it.Source != o.URL+"/ne.tar.zst" {
		t.Errorf("node-exporter in the manifest: %+v", it)
	}
	if it := back.Find("cli"); it.Algo != "sha512" || it.Installed[0].SHA256 != sha256hex(cli) || it.Installed[0].Path != "/usr/local/bin/cli" {
		t.Errorf("cli in the manifest: %+v", it)
	}

	// The boot of an instance of the image.
	asInstance(env, "i-0new")
	m, bootRec := module()
	if err := m.Run(context.Background(), env, modtest.Config(t, doc)); err != nil {
		t.Fatal(err)
	}
	if o.Count("/ne.tar.zst") != 1 || o.Count("/cli") != 1 {
		t.Errorf("baked artifacts fetched again at boot: ne %d, cli %d requests", o.Count("/ne.tar.zst"), o.Count("/cli"))
	}
	if o.Count("/app") != 1 || readHost(t, env.Root, "/srv/app/app") != string(app) {
		t.Errorf("boot item: %d requests", o.Count("/app"))
	}
	if got := bootRec.Actions(); !reflect.DeepEqual(got, []string{"start node-exporter.service", "daemon-reload", "restart app.service"}) {
		t.Errorf("boot systemd actions %q", got)
	}
	res := readResults(t, env.Root, "i-0new")
	if res["node-exporter"].Action != ActionVerified || res["cli"].Action != ActionVerified || res["app"].Action != ActionInstalled {
		t.Errorf("results %+v", res)
	}
}
