package writefiles

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/modtest"
)

func newEnv(t *testing.T) *modules.Env {
	t.Helper()
	env, _ := modtest.Env(t)
	env.Instance = &imds.Instance{InstanceID: "i-0abc"}
	return env
}

// self is an owner spec every test may chown to, root or not.
func self() string { return fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid()) }

func gz(s string) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return b.Bytes()
}

func TestParseItem(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString
	tests := []struct {
		name    string
		item    string
		path    string
		content string
		perm    os.FileMode
		wantErr string
	}{
		{name: "plain", item: `{path: /etc/a, content: "hi\n"}`, path: "/etc/a", content: "hi\n", perm: 0o644},
		{name: "no content is an empty file", item: `{path: /etc/a}`, path: "/etc/a", perm: 0o644},
		{name: "text/plain", item: `{path: /a, content: x, encoding: text/plain}`, path: "/a", content: "x", perm: 0o644},
		{name: "b64", item: `{path: /a, encoding: b64, content: "` + b64([]byte("secret")) + `"}`, path: "/a", content: "secret", perm: 0o644},
		{name: "base64 wrapped, no padding", item: "path: /a\nencoding: base64\ncontent: |\n  c2Vj\n  cmV0Mg\n", path: "/a", content: "secret2", perm: 0o644},
		{name: "gzip", item: `{path: /a, encoding: gzip, content: !!binary "` + b64(gz("zipped")) + `"}`, path: "/a", content: "zipped", perm: 0o644},
		{name: "gz+b64", item: `{path: /a, encoding: gz+b64, content: "` + b64(gz("both")) + `"}`, path: "/a", content: "both", perm: 0o644},
		{name: "GZIP+BASE64 any case", item: `{path: /a, encoding: GZIP+BASE64, content: "` + b64(gz("both")) + `"}`, path: "/a", content: "both", perm: 0o644},
		{name: "!!binary", item: `{path: /a, content: !!binary "` + b64([]byte{0, 1, 2}) + `"}`, path: "/a", content: "\x00\x01\x02", perm: 0o644},
		{name: "relative path from /", item: `{path: etc/../tmp/a}`, path: "/tmp/a", perm: 0o644},
		{name: "perm string", item: `{path: /a, permissions: '0640'}`, path: "/a", perm: 0o640},
		{name: "perm string no zero", item: `{path: /a, permissions: '600'}`, path: "/a", perm: 0o600},
		{name: "perm string 0o", item: `{path: /a, permissions: '0o755'}`, path: "/a", perm: 0o755},
		{name: "perm YAML octal int", item: `{path: /a, permissions: 0750}`, path: "/a", perm: 0o750},
		{name: "perm decimal int", item: `{path: /a, permissions: 420}`, path: "/a", perm: 0o644},
		{name: "perm setuid", item: `{path: /a, permissions: '4755'}`, path: "/a", perm: 0o4755},
		{name: "perm not octal", item: `{path: /a, permissions: '0999'}`, wantErr: `write_files[0] /a: permissions: "0999" is not an octal mode`},
		{name: "perm too big", item: `{path: /a, permissions: '17777'}`, wantErr: "beyond 07777"},
		{name: "no path", item: `{content: x}`, wantErr: "write_files[0] (line 2): path is required"},
		{name: "bad encoding", item: `{path: /a, encoding: rot13, content: x}`, wantErr: `write_files[0] /a: encoding "rot13": expected one of`},
		{name: "bad base64", item: `{path: /a, encoding: b64, content: "!!s3cr3t!!"}`, wantErr: "write_files[0] /a: content: decoding b64: illegal base64"},
		{name: "bad gzip", item: `{path: /a, encoding: gz+b64, content: "` + b64([]byte("s3cr3t")) + `"}`, wantErr: "content: decoding gz+b64: "},
		{name: "source without uri", item: `{path: /a, source: {headers: {a: b}}}`, wantErr: "source: uri is required"},
		{name: "source unknown key", item: `{path: /a, source: {uri: "https://x", method: POST}}`, wantErr: `source: unknown key "method"`},
		{name: "source with content falls back", item: `{path: /a, source: {uri: "https://x"}, content: y}`, path: "/a", content: "y", perm: 0o644},
		{name: "append not bool", item: `{path: /a, append: maybe}`, wantErr: "append: expected true or false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			items, err := parseItems(modtest.Config(t, "write_files:\n- "+strings.ReplaceAll(tt.item, "\n", "\n  ")+"\n"))
			if err != nil {
				t.Fatal(err)
			}
			it := items[0]
			if tt.wantErr != "" {
				if it.err == nil || !strings.Contains(it.err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", it.err, tt.wantErr)
				}
				if strings.Contains(it.err.Error(), "s3cr3t") {
					t.Errorf("error quotes the content: %v", it.err)
				}
				return
			}
			if it.err != nil {
				t.Fatal(it.err)
			}
			if it.path != tt.path || string(it.content) != tt.content || it.perm != tt.perm {
				t.Errorf("got path %q content %q perm %o; want %q %q %o", it.path, it.content, it.perm, tt.path, tt.content, tt.perm)
			}
		})
	}
}

func readFile(t *testing.T, e *modules.Env, p string) (string, fs.FileInfo) {
	t.Helper()
	full, err := e.Root.Path(p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(full)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(full)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), fi
}

func TestWriteFiles(t *testing.T) {
	e := newEnv(t)
	if err := e.Root.WriteFile("/etc/motd", []byte("old\n"), 0o600, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.Root.WriteFile("/etc/replaced", []byte("old content\n"), 0o600, nil); err != nil {
		t.Fatal(err)
	}
	cfg := modtest.Config(t, fmt.Sprintf(`write_files:
- path: /opt/app/conf/app.ini
  content: "a=1\n"
  owner: "%[1]s"
  permissions: '0640'
- path: /etc/motd
  content: "new\n"
  append: true
  owner: "%[1]s"
- path: /etc/replaced
  content: "short\n"
  owner: "%[1]s"
- path: /srv/later
  content: later
  defer: true
- path: /etc/bad
  encoding: b64
  content: "not base64!"
- path: /etc/after-bad
  owner: "%[1]s"
`, self()))
	err := WriteFiles{}.Run(context.Background(), e, cfg)
	if err == nil || !strings.Contains(err.Error(), "write_files[4] /etc/bad: content: decoding b64") {
		t.Fatalf("error %v, want item 4 named", err)
	}
	if strings.Contains(err.Error(), "not base64") {
		t.Errorf("error quotes content: %v", err)
	}

	tests := []struct {
		path, content string
		perm          os.FileMode
	}{
		{"/opt/app/conf/app.ini", "a=1\n", 0o640},
		{"/etc/motd", "old\nnew\n", 0o644}, // append sets the mode, as cloud-init does
		{"/etc/replaced", "short\n", 0o644},
		{"/etc/after-bad", "", 0o644},
	}
	for _, tt := range tests {
		got, fi := readFile(t, e, tt.path)
		if got != tt.content || fi.Mode().Perm() != tt.perm {
			t.Errorf("%s: %q mode %o; want %q %o", tt.path, got, fi.Mode().Perm(), tt.content, tt.perm)
		}
	}
	for _, d := range []string{"/opt", "/opt/app", "/opt/app/conf"} {
		fi, err := e.Root.Stat(d)
		if err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("parent %s: %v %v, want a 0755 directory", d, fi, err)
		}
	}
	if ok, _ := e.Root.Exists("/srv/later"); ok {
		t.Error("deferred item written in the network stage")
	}

	if !(WriteFilesDeferred{}).Wanted(cfg) {
		t.Fatal("write_files_deferred not wanted with write_files set")
	}
	err = (WriteFilesDeferred{}).Run(context.Background(), e, cfg)
	if os.Getuid() != 0 {
		// The default owner root:root needs root to chown to.
		if err == nil || !strings.Contains(err.Error(), "write_files[3] /srv/later") {
			t.Fatalf("deferred pass as non-root: %v, want item 3 named", err)
		}
		return
	}
	if err != nil {
		t.Fatalf("deferred pass: %v", err)
	}
	if got, _ := readFile(t, e, "/srv/later"); got != "later" {
		t.Errorf("deferred item: %q", got)
	}
}

func TestWriteFilesDeferredWanted(t *testing.T) {
	if (WriteFilesDeferred{}).Wanted(modtest.Config(t, "runcmd: []\n")) {
		t.Error("wanted without write_files")
	}
	if len((WriteFilesDeferred{}).Schema().Keys) != 0 {
		t.Error("write_files_deferred declares keys: the registry forbids two owners of write_files")
	}
}

// An owner users has not created yet (or a package creates in the final
// stage) is retried in the deferred pass, not failed.
func TestOwnerCreatedLater(t *testing.T) {
	tests := []struct {
		name      string
		addUser   bool // between the passes
		wantFinal string
	}{
		{name: "created before the final stage", addUser: true},
		{name: "never created", wantFinal: `write_files[1] /home/app/.token: owner "app:app": user "app" not found in /etc/passwd`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.Root.WriteFile("/etc/passwd", []byte("root:x:0:0::/root:/bin/sh\n"), 0o644, nil)
			cfg := modtest.Config(t, fmt.Sprintf(`write_files:
- {path: /etc/first, owner: "%s"}
- {path: /home/app/.token, owner: "app:app", permissions: '0600', content: s3cr3t}
`, self()))
			if err := (WriteFiles{}).Run(context.Background(), e, cfg); err != nil {
				t.Fatalf("network stage: %v", err)
			}
			if ok, _ := e.Root.Exists("/home/app/.token"); ok {
				t.Fatal("written before its owner exists")
			}
			rec, err := e.Root.ReadFile("/var/lib/ec2init/instances/i-0abc/" + pendingFile)
			if err != nil || !strings.Contains(string(rec), `"path": "/home/app/.token"`) || strings.Contains(string(rec), "s3cr3t") {
				t.Fatalf("pending record %q, %v", rec, err)
			}
			if tt.addUser {
				uid, gid := os.Getuid(), os.Getgid()
				e.Root.AppendFile("/etc/passwd", fmt.Appendf(nil, "app:x:%d:%d::/home/app:/bin/sh\n", uid, gid), 0o644)
				e.Root.WriteFile("/etc/group", fmt.Appendf(nil, "app:x:%d:\n", gid), 0o644, nil)
			}
			err = (WriteFilesDeferred{}).Run(context.Background(), e, cfg)
			if tt.wantFinal != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantFinal) || strings.Contains(err.Error(), "s3cr3t") {
					t.Fatalf("final stage error %v, want %q", err, tt.wantFinal)
				}
			} else if err != nil {
				t.Fatalf("final stage: %v", err)
			} else if got, fi := readFile(t, e, "/home/app/.token"); got != "s3cr3t" || fi.Mode().Perm() != 0o600 {
				t.Errorf("token %q mode %o", got, fi.Mode().Perm())
			}
			if ok, _ := e.Root.Exists("/var/lib/ec2init/instances/i-0abc/" + pendingFile); ok {
				t.Error("pending record left after the deferred pass")
			}
		})
	}
}

func TestOwnerAndSetuid(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("chown to another user needs root")
	}
	e := newEnv(t)
	e.Root.WriteFile("/etc/passwd", []byte("root:x:0:0::/root:/bin/sh\nsvc:x:1234:1234::/srv:/bin/sh\n"), 0o644, nil)
	e.Root.WriteFile("/etc/group", []byte("root:x:0:\nsvc:x:1234:\nops:x:2345:\n"), 0o644, nil)
	cfg := modtest.Config(t, `write_files:
- {path: /srv/a/b/tool, owner: "svc:ops", permissions: '6755', content: x}
- {path: /srv/log, owner: svc, append: true, content: y}
- {path: /srv/c/d/conf, owner: "svc:", content: z}
- {path: /opt/e/f, owner: ":ops", content: w}
- {path: /opt/g, owner: "none:-1", content: v}
`)
	if err := (WriteFiles{}).Run(context.Background(), e, cfg); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path     string
		uid, gid uint32
		mode     os.FileMode
	}{
		{"/srv/a/b/tool", 1234, 2345, 0o755 | os.ModeSetuid | os.ModeSetgid},
		{"/srv/a", 1234, 2345, 0o755 | os.ModeDir}, // created for the item: its owner
		{"/srv", 1234, 2345, 0o755 | os.ModeDir},
		// As cloud-init: a user without a group leaves the group root's.
		{"/srv/log", 1234, 0, 0o644},
		{"/srv/c/d/conf", 1234, 0, 0o644},
		{"/srv/c/d", 1234, 0, 0o755 | os.ModeDir},
		{"/srv/c", 1234, 0, 0o755 | os.ModeDir},
		{"/opt/e/f", 0, 2345, 0o644},
		{"/opt/e", 0, 2345, 0o755 | os.ModeDir},
		{"/opt", 0, 2345, 0o755 | os.ModeDir}, // the topmost created, as ensure_dir
		{"/opt/g", 0, 0, 0o644},
	}
	for _, tt := range tests {
		fi, err := e.Root.Stat(tt.path)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != tt.uid || st.Gid != tt.gid || fi.Mode() != tt.mode {
			t.Errorf("%s: %d:%d %v; want %d:%d %v", tt.path, st.Uid, st.Gid, fi.Mode(), tt.uid, tt.gid, tt.mode)
		}
	}
}

// TestRealUseradd checks that an owner created by the real useradd in the
// root (as the users module does) is what write_files resolves.
func TestRealUseradd(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("useradd --prefix needs root")
	}
	useradd, err := exec.LookPath("useradd")
	if err != nil {
		t.Skip("useradd not installed (Debian package passwd)")
	}
	e := newEnv(t)
	prefix := e.Root.Prefix()
	// The minimal account files useradd edits in place.
	for f, line := range map[string]string{"passwd": "root:x:0:0:root:/root:/bin/sh", "group": "root:x:0:", "shadow": "root:*:19000:0:99999:7:::", "gshadow": "root:*::"} {
		if err := e.Root.WriteFile("/etc/"+f, []byte(line+"\n"), 0o644, nil); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command(useradd, "--prefix", prefix, "--uid", "4321", "--user-group", "--no-create-home", "deploy").CombinedOutput(); err != nil {
		t.Skipf("useradd --prefix failed here: %v: %s", err, out)
	}
	cfg := modtest.Config(t, "write_files:\n- {path: /home/deploy/.config/app.env, owner: 'deploy:deploy', permissions: '0600', content: \"K=v\\n\"}\n")
	if err := (WriteFiles{}).Run(context.Background(), e, cfg); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(prefix, "home/deploy/.config/app.env"))
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 4321 || fi.Mode().Perm() != 0o600 {
		t.Errorf("owner uid %d mode %o; want 4321 0600", st.Uid, fi.Mode().Perm())
	}
}

func TestSchema(t *testing.T) {
	r, err := modules.NewRegistry(WriteFiles{}, WriteFilesDeferred{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := config.ParseDoc("u.yaml", []byte(`write_files:
- path: /a
  encoding: rot13
  source: {headers: {A: b}}
- content: x
  append: 3
- path: /b
  permissions: 0644
  owner: app:app
`))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, diag := range r.ValidateDoc(d) {
		got = append(got, diag.String())
	}
	all := strings.Join(got, "\n")
	for _, w := range []string{
		"u.yaml:3:13: error: write_files[0].encoding: expected one of gz",
		`u.yaml:4:11: error: write_files[0].source: missing required key "uri"`,
		`u.yaml:5:3: error: write_files[1]: missing required key "path"`,
		"u.yaml:6:11: error: write_files[1].append: expected boolean",
	} {
		if !strings.Contains(all, w) {
			t.Errorf("diagnostics lack %q:\n%s", w, all)
		}
	}
	if len(got) != 4 {
		t.Errorf("want 4 diagnostics (permissions may be an integer), got:\n%s", all)
	}
}
