package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/agent/imds/imdssim"
	"github.com/ec2init/ec2init/internal/testkit"
	"github.com/ec2init/ec2init/modules/software"
)

func hexSHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func tgzOf(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	tw := tar.NewWriter(zw)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	tw.Close()
	zw.Close()
	return b.Bytes()
}

func writeFileT(t *testing.T, p string, data []byte, perm os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, perm); err != nil {
		t.Fatal(err)
	}
}

func listRoot(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			rel, _ := filepath.Rel(root, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

// The AMI builder's flow: ec2init bake --root R --config F against a
// loopback HTTPS origin (its CA in ca_file), then the boot of an instance
// of the image runs the software module: baked items are verified without
// a request, the boot item is fetched.
func TestBakeCommand(t *testing.T) {
	ne := tgzOf(t, map[string]string{"ne-1.8.2/node_exporter": "exporter"})
	app := []byte("app build 42")
	o := testkit.NewOrigin(t, map[string][]byte{"/ne.tgz": ne, "/app": app})
	root := t.TempDir()
	caPEM := o.CAPEM()
	writeFileT(t, filepath.Join(root, "etc/pki/origin-ca.pem"), caPEM, 0o644)
	// What the build instance has, and clean removes.
	writeFileT(t, filepath.Join(root, "etc/machine-id"), []byte("0123456789abcdef0123456789abcdef\n"), 0o444)
	writeFileT(t, filepath.Join(root, "etc/ssh/ssh_host_ed25519_key"), []byte("key"), 0o600)
	writeFileT(t, filepath.Join(root, "var/lib/ec2init/instances/i-build/sem/x"), nil, 0o600)
	writeFileT(t, filepath.Join(root, "var/log/ec2init.log"), []byte("log"), 0o600)

	cfgFile := filepath.Join(t.TempDir(), "software.yaml")
	doc := `#cloud-config
software:
  ca_file: /etc/pki/origin-ca.pem
  items:
    - name: node-exporter
      policy: bake
      source: ` + o.URL + `/ne.tgz
      sha256: ` + hexSHA256(ne) + `
      install: {type: tarball, dest: /opt/node-exporter, strip_components: 1}
      service: {unit: node-exporter.service, enable: true, start: true}
    - name: app
      policy: boot
      source: ` + o.URL + `/app
      sha256: ` + hexSHA256(app) + `
      install: {type: file, dest: /srv/app/app}
`
	writeFileT(t, cfgFile, []byte(doc), 0o644)

	// The plan changes nothing and fetches nothing.
	before := listRoot(t, root)
	r := runCLI(t, binary, "bake", "--root", root, "--config", cfgFile, "--dry-run")
	if r.code != 0 {
		t.Fatalf("bake --dry-run: %+v", r)
	}
	for _, want := range []string{"node-exporter  bake    tarball", "fetch, verify, install, enable node-exporter.service", "app            boot    file", "at boot (policy boot)", "sha256:" + hexSHA256(ne)[:16] + "…", "dry run"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("plan lacks %q:\n%s", want, r.stdout)
		}
	}
	if after := listRoot(t, root); !reflect.DeepEqual(after, before) || o.Count("/ne.tgz") != 0 {
		t.Fatalf("--dry-run changed the root or fetched (%d requests)", o.Count("/ne.tgz"))
	}

	r = runCLI(t, binary, "bake", "--root", root, "--config", cfgFile, "--log-level", "error")
	if r.code != 0 {
		t.Fatalf("bake: %+v", r)
	}
	for _, want := range []string{"NAME", "node-exporter  tarball  sha256:" + hexSHA256(ne)[:16] + "…", "installed", "removed /etc/machine-id (emptied)", "baked 1 item(s)"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("summary lacks %q:\n%s", want, r.stdout)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(root, "opt/node-exporter/node_exporter")); string(b) != "exporter" {
		t.Errorf("node_exporter not installed: %q", b)
	}
	if o.Count("/app") != 0 {
		t.Error("bake fetched the boot item")
	}
	// The clean: state, logs, host keys gone, machine-id empty.
	for _, p := range []string{"var/lib/ec2init/instances", "var/log/ec2init.log", "etc/ssh/ssh_host_ed25519_key"} {
		if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
			t.Errorf("%s survived the bake's clean", p)
		}
	}
	if b, err := os.ReadFile(filepath.Join(root, "etc/machine-id")); err != nil || len(b) != 0 {
		t.Errorf("machine-id: %q %v", b, err)
	}
	// The manifest, written after the clean, 0600.
	fi, err := os.Stat(filepath.Join(root, software.ManifestFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("manifest: %v %v", fi, err)
	}
	data, _ := os.ReadFile(filepath.Join(root, software.ManifestFile))
	var man software.Manifest
	if err := json.Unmarshal(data, &man); err != nil || len(man.Items) != 1 || man.Items[0].Sum != hexSHA256(ne) || man.EC2InitVersion == "" {
		t.Fatalf("manifest %s: %v", data, err)
	}

	// The --config file became the image's cloud-config.
	if b, err := os.ReadFile(filepath.Join(root, "etc/ec2init/cloud.cfg.d/90-bake-1-software.cfg")); err != nil || string(b) != doc {
		t.Fatalf("image cloud-config: %q %v", b, err)
	}

	// An instance of the image boots, with no user data at all: the
	// image's list applies, the baked item is verified (no request), the
	// boot item fetched.
	sim, url := imdssim.Start(t, imdssim.Options{})
	sim.SetUserData(nil)
	r = runCLI(t, binary, "boot", "--root", root, "--endpoint="+url, testBoot, "--log-level=error")
	if r.code != 0 {
		t.Fatalf("boot: %+v", r)
	}
	if o.Count("/ne.tgz") != 1 || o.Count("/app") != 1 {
		t.Errorf("requests at boot: baked %d (want 1, the bake's), boot item %d (want 1)", o.Count("/ne.tgz"), o.Count("/app"))
	}
	if b, _ := os.ReadFile(filepath.Join(root, "srv/app/app")); string(b) != string(app) {
		t.Error("boot item not installed")
	}
	if r := runCLI(t, binary, "status", "--root", root, testBoot); r.code != 0 || !strings.Contains(r.stdout, "status: done") {
		t.Errorf("status after the boot: %+v", r)
	}
	// status --long lists each item and what the boot did with it.
	r = runCLI(t, binary, "status", "--long", "--root", root, testBoot)
	for _, re := range []string{`(?m)^SOFTWARE\s+POLICY\s+ACTION\s+VERSION\s+CHECKSUM\s+BYTES\s+SIGNER\s+FROM\s+ERROR$`,
		`(?m)^node-exporter\s+bake\s+verified\s+-\s+sha256:` + hexSHA256(ne)[:16] + `…`,
		`(?m)^app\s+boot\s+installed\s+-\s+sha256:\S+\s+12\s+-\s+` + regexp.QuoteMeta(o.URL+"/app") + `\s*$`} {
		if !regexp.MustCompile(re).MatchString(r.stdout) {
			t.Errorf("status --long lacks %s:\n%s", re, r.stdout)
		}
	}

	// A re-bake replaces its own copy of the list, and reads the file
	// given, not the copy.
	r = runCLI(t, binary, "bake", "--root", root, "--config", cfgFile, "--log-level", "error")
	if r.code != 0 {
		t.Fatalf("re-bake: %+v", r)
	}
	if m, _ := filepath.Glob(filepath.Join(root, "etc/ec2init/cloud.cfg.d/*")); len(m) != 1 {
		t.Errorf("image cloud-config after a re-bake: %q", m)
	}
}

// A bake that cannot complete changes no state: an invalid cloud-config
// stops it before anything, a failed item before the clean.
func TestBakeCommandFailures(t *testing.T) {
	o := testkit.NewOrigin(t, map[string][]byte{"/a": []byte("tampered")})
	root := t.TempDir()
	writeFileT(t, filepath.Join(root, "etc/machine-id"), []byte("id\n"), 0o444)
	caPEM := o.CAPEM()
	writeFileT(t, filepath.Join(root, "etc/ca.pem"), caPEM, 0o644)
	dir := t.TempDir()

	bad := filepath.Join(dir, "bad.yaml")
	writeFileT(t, bad, []byte("software:\n  items:\n    - {name: a, policy: bake, source: \""+o.URL+"/a\", install: {type: file, dest: /a}}\n"), 0o644)
	r := runCLI(t, binary, "bake", "--root", root, "--config", bad)
	if r.code != 1 || !strings.Contains(r.stderr, bad+":3:7: error: software.items[0]: a remote source needs a checksum") {
		t.Errorf("missing checksum: %+v", r)
	}

	mismatch := filepath.Join(dir, "mismatch.yaml")
	writeFileT(t, mismatch, []byte("software:\n  ca_file: /etc/ca.pem\n  items:\n    - {name: a, policy: bake, source: \""+o.URL+"/a\", sha256: "+hexSHA256([]byte("published"))+", install: {type: file, dest: /a}}\n"), 0o644)
	r = runCLI(t, binary, "bake", "--root", root, "--config", mismatch, "--log-level", "error")
	if r.code != 1 || !strings.Contains(r.stdout, "failed: fetch") || !strings.Contains(r.stderr, "checksum") {
		t.Errorf("checksum mismatch: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(root, "a")); err == nil {
		t.Error("a tampered artifact was installed")
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/machine-id")); string(b) != "id\n" {
		t.Error("a failed bake cleaned the image")
	}
	if _, err := os.Stat(filepath.Join(root, software.ManifestFile)); err == nil {
		t.Error("a failed bake wrote a manifest")
	}

	none := filepath.Join(dir, "none.yaml")
	writeFileT(t, none, []byte("runcmd: [\"true\"]\n"), 0o644)
	if r := runCLI(t, binary, "bake", "--root", root, "--config", none); r.code != 1 || !strings.Contains(r.stderr, "no software key") {
		t.Errorf("no software key: %+v", r)
	}
}

// bake --pin on the build instance: the bake item and the boot item are
// resolved from their version_from (the boot item verified, not
// installed), and an instance of the image installs those versions after
// a newer one is published, without asking for the latest; status --long
// shows the versions, the signer-less checksum and where the bytes came
// from.
func TestBakePinCommand(t *testing.T) {
	o := testkit.NewOrigin(t, nil)
	app12, app13, tool := []byte("app 1.2.0"), []byte("app 1.3.0"), []byte("tool 2.0.1")
	o.Put("/app/LATEST", []byte("1.2.0\n"))
	o.Put("/app/app-1.2.0", app12)
	o.Put("/app/app-1.2.0.sha256", []byte(hexSHA256(app12)+"  app-1.2.0\n"))
	o.Put("/tool/latest.json", []byte(`{"version": "2.0.1", "url": "tool-2.0.1", "sha256": "`+hexSHA256(tool)+`"}`))
	o.Put("/tool/tool-2.0.1", tool)
	root := t.TempDir()
	writeFileT(t, filepath.Join(root, "etc/pki/origin-ca.pem"), o.CAPEM(), 0o644)
	cfgFile := filepath.Join(t.TempDir(), "software.yaml")
	writeFileT(t, cfgFile, []byte(`#cloud-config
software:
  ca_file: /etc/pki/origin-ca.pem
  items:
    - name: tool
      policy: bake
      version_from: `+o.URL+`/tool/latest.json
      install: {type: file, dest: /opt/tool/tool}
    - name: app
      version_from: `+o.URL+`/app/LATEST
      source: `+o.URL+`/app/app-{version}
      sha256_url: `+o.URL+`/app/app-{version}.sha256
      install: {type: file, dest: /srv/app/app}
`), 0o644)

	r := runCLI(t, binary, "bake", "--root", root, "--config", cfgFile, "--pin", "--dry-run")
	if r.code != 0 || !strings.Contains(r.stdout, "then (--pin): each version_from item frozen to the version resolved, in /etc/ec2init/cloud.cfg.d/90-bake-pin.cfg") ||
		o.Count("/app/LATEST")+o.Count("/tool/latest.json") != 0 {
		t.Errorf("bake --pin --dry-run: %+v", r)
	}
	r = runCLI(t, binary, "bake", "--root", root, "--config", cfgFile, "--pin", "--log-level", "error")
	if r.code != 0 {
		t.Fatalf("bake --pin: %+v", r)
	}
	for _, want := range []string{"pinned tool 2.0.1 (bake, " + o.URL + "/tool/tool-2.0.1)", "pinned app 1.2.0 (boot, " + o.URL + "/app/app-1.2.0)",
		"image cloud-config: /etc/ec2init/cloud.cfg.d/90-bake-pin.cfg (pinned versions)"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("bake --pin lacks %q:\n%s", want, r.stdout)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "srv/app/app")); err == nil {
		t.Error("bake --pin installed the boot item")
	}
	if o.Count("/app/app-1.2.0") != 1 {
		t.Errorf("the boot item was fetched %d times at bake, want 1 (verified for its digest)", o.Count("/app/app-1.2.0"))
	}

	// A newer version is published; the image still installs the pinned.
	o.Put("/app/LATEST", []byte("1.3.0\n"))
	o.Put("/app/app-1.3.0", app13)
	o.Put("/app/app-1.3.0.sha256", []byte(hexSHA256(app13)+"  app-1.3.0\n"))
	latest := o.Count("/app/LATEST")
	sim, url := imdssim.Start(t, imdssim.Options{})
	sim.SetUserData(nil)
	if r := runCLI(t, binary, "boot", "--root", root, "--endpoint="+url, testBoot, "--log-level=error"); r.code != 0 {
		t.Fatalf("boot: %+v", r)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "srv/app/app")); string(b) != string(app12) {
		t.Errorf("the instance installed %q, want the pinned 1.2.0", b)
	}
	if o.Count("/app/LATEST") != latest || o.Count("/app/app-1.3.0") != 0 {
		t.Error("the instance asked for the latest version")
	}
	r = runCLI(t, binary, "status", "--long", "--root", root, testBoot)
	for _, re := range []string{
		`(?m)^tool\s+bake\s+verified\s+2\.0\.1\s+sha256:` + hexSHA256(tool)[:16] + `…\s+10\s+-\s+` + regexp.QuoteMeta(o.URL+"/tool/tool-2.0.1") + `\s*$`,
		`(?m)^app\s+boot\s+installed\s+1\.2\.0 \(pinned\)\s+sha256:` + hexSHA256(app12)[:16] + `…\s+9\s+-\s+` + regexp.QuoteMeta(o.URL+"/app/app-1.2.0") + `\s*$`,
	} {
		if !regexp.MustCompile(re).MatchString(r.stdout) {
			t.Errorf("status --long lacks %s:\n%s", re, r.stdout)
		}
	}
}
