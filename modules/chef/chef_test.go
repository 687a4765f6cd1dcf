package chef

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest/observer"

	"github.com/ec2init/ec2init/agent/fetch"
	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/internal/testkit"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/bootstrap"
	"github.com/ec2init/ec2init/modules/internal/bootstrap/bootstraptest"
	"github.com/ec2init/ec2init/modules/modtest"
)

const pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEvalidationSECRETkey\n-----END RSA PRIVATE KEY-----\n"

func env(t *testing.T) (*modules.Env, *observer.ObservedLogs, *bytes.Buffer) {
	e, console := modtest.Env(t)
	e.Instance = &imds.Instance{InstanceID: "i-0abc"}
	e.Version = "1.2.3"
	return e, bootstraptest.Observe(e), console
}

// body drops client.rb's first line, which holds the time.
func body(s string) string {
	_, rest, _ := strings.Cut(s, "\n")
	return rest
}

func TestFiles(t *testing.T) {
	e, _, _ := env(t)
	modtest.Put(t, e, "/var/cache/chef/old.json", "old")
	fake := testkit.FakeTool(t, t.TempDir(), "chef-client", "#!/bin/sh\nexit 0\n")
	cfg := modtest.Config(t, `chef:
  server_url: https://chef.example.com/organizations/acme
  validation_name: acme-validator
  validation_cert: |
    `+strings.ReplaceAll(strings.TrimSpace(pem), "\n", "\n    ")+`
  chef_license: accept
  run_list: ["recipe[apache2]", "role[db]"]
  initial_attributes:
    apache: {prefork: {maxclients: 100}, keepalive: "off"}
  encrypted_data_bag_secret: /etc/chef/secrets/databag
  log_level: ":debug"
  file_backup_path: /srv/chef "backup"
`)
	if err := (Chef{client: fake}).Run(context.Background(), e, cfg); err != nil {
		t.Fatal(err)
	}
	want := `chef_license           "accept"
log_level              :debug
ssl_verify_mode        :verify_none
log_location           "/var/log/chef/client.log"
validation_client_name "acme-validator"
validation_key         "/etc/chef/validation.pem"
client_key             "/etc/chef/client.pem"
chef_server_url        "https://chef.example.com/organizations/acme"
environment            "_default"
node_name              "i-0abc"
json_attribs           "/etc/chef/firstboot.json"
file_cache_path        "/var/chef/cache"
file_backup_path       "/srv/chef \"backup\""
pid_file               "/var/run/chef/client.pid"
Chef::Log::Formatter.show_time = true
encrypted_data_bag_secret "/etc/chef/secrets/databag"
`
	rb := modtest.Get(t, e, "/etc/chef/client.rb")
	if !strings.HasPrefix(rb, "# Created by ec2init v. 1.2.3 on ") {
		t.Errorf("client.rb header: %q", rb)
	}
	if got := body(rb); got != want {
		t.Errorf("client.rb:\n%s\nwant:\n%s", got, want)
	}
	if got, want := modtest.Get(t, e, "/etc/chef/firstboot.json"),
		`{"run_list": ["recipe[apache2]", "role[db]"], "apache": {"prefork": {"maxclients": 100}, "keepalive": "off"}}`; got != want {
		t.Errorf("firstboot.json:\n%s\nwant:\n%s", got, want)
	}
	if got := modtest.Get(t, e, "/etc/chef/validation.pem"); got != strings.TrimSpace(pem)+"\n" {
		t.Errorf("validation.pem = %q", got)
	}
	fi, err := e.Root.Stat("/etc/chef/validation.pem")
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("validation.pem mode %v, %v; want 0600", fi.Mode(), err)
	}
	for _, d := range append(defaultDirs, "/etc/chef/secrets") {
		if fi, err := e.Root.Stat(d); err != nil || !fi.IsDir() {
			t.Errorf("directory %s not made: %v", d, err)
		}
	}
	if got := modtest.Get(t, e, "/var/chef/cache/old.json"); got != "old" {
		t.Errorf("old cache not migrated: %q", got)
	}
}

func TestSystemCertAndDefaults(t *testing.T) {
	e, logs, _ := env(t)
	fake := testkit.FakeTool(t, t.TempDir(), "chef-client", "#!/bin/sh\nexit 0\n")
	modtest.Put(t, e, "/etc/chef/validation.pem", "existing")
	cfg := modtest.Config(t, `chef:
  server_url: https://chef.example.com
  validation_name: v
  validation_cert: system
  node_name: web1
  environment: prod
  show_time: false
  ssl_verify_mode: ~
  firstboot_path: ""
  config_path: /etc/chef/other.rb
  directories: [/srv/chef]
`)
	if err := (Chef{client: fake}).Run(context.Background(), e, cfg); err != nil {
		t.Fatal(err)
	}
	if got := modtest.Get(t, e, "/etc/chef/validation.pem"); got != "existing" {
		t.Errorf("system: validation.pem rewritten: %q", got)
	}
	want := `log_level              :info
log_location           "/var/log/chef/client.log"
validation_client_name "v"
validation_key         "/etc/chef/validation.pem"
client_key             "/etc/chef/client.pem"
chef_server_url        "https://chef.example.com"
environment            "prod"
node_name              "web1"
json_attribs           "/etc/chef/firstboot.json"
file_cache_path        "/var/chef/cache"
file_backup_path       "/var/chef/backup"
pid_file               "/var/run/chef/client.pid"
`
	if got := body(modtest.Get(t, e, "/etc/chef/other.rb")); got != want {
		t.Errorf("client.rb:\n%s\nwant:\n%s", got, want)
	}
	if got := modtest.Get(t, e, "/etc/chef/firstboot.json"); got != "<absent>" {
		t.Errorf("firstboot.json written with an empty firstboot_path")
	}
	if _, err := e.Root.Stat("/srv/chef"); err != nil {
		t.Error(err)
	}
	if logs.Len() == 0 {
		t.Error("nothing logged")
	}
}

// TestOmnibus fetches the omnibus installer from a local HTTPS origin
// through the one fetcher and runs it; a checksum mismatch runs nothing.
func TestOmnibus(t *testing.T) {
	dir := t.TempDir()
	mark := filepath.Join(dir, "installed")
	clientLog := filepath.Join(dir, "client.log")
	client := filepath.Join(dir, "chef-client")
	// The installer installs a chef-client that records its arguments.
	script := "#!/bin/sh\necho \"$@\" > " + mark + "\nprintf '#!/bin/sh\\necho \"$@\" > " + clientLog + "\\n' > " + client + "\nchmod 755 " + client + "\necho omnibus done\n"
	sum := sha256.Sum256([]byte(script))
	good := hex.EncodeToString(sum[:])
	o := testkit.NewOrigin(t, nil)
	u := o.Put("/chef/install.sh", []byte(script))
	base := "chef:\n  server_url: https://chef.example.com\n  validation_name: v\n  validation_cert: \"" + strings.ReplaceAll(pem, "\n", `\n`) + "\"\n  install_type: omnibus\n  omnibus_url_retries: 0\n"
	tests := []struct {
		name, extra, wantErr, wantArgs, wantClient string
	}{
		{"https, no checksum", "  omnibus_url: " + u + "\n", "", "\n", "<absent>"},
		{"checksum, version, exec", "  omnibus_url: " + u + "\n  omnibus_sha256: " + good + "\n  omnibus_version: \"18.2\"\n  exec: true\n  exec_arguments: [--once, -o, \"recipe[x]\"]\n  delete_validation_post_exec: true\n",
			"", "-v 18.2\n", "--once -o recipe[x]\n"},
		{"checksum mismatch", "  omnibus_url: " + u + "\n  omnibus_sha256: " + strings.Repeat("ab", 32) + "\n  exec: true\n", "sha256 mismatch", "<absent>", "<absent>"},
		{"not found", "  omnibus_url: " + o.URL + "/nope\n", "HTTP 404", "<absent>", "<absent>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, p := range []string{mark, clientLog, client} {
				os.Remove(p)
			}
			e, logs, console := env(t)
			e.Fetcher = fetch.New(fetch.Options{Client: o.Client(), BaseBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
			err := (Chef{client: client}).Run(context.Background(), e, modtest.Config(t, base+tt.extra))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if tt.wantErr == "sha256 mismatch" && !errors.Is(err, bootstrap.ErrChecksum) {
					t.Errorf("%v is not ErrChecksum", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			read := func(p string) string {
				b, err := os.ReadFile(p)
				if err != nil {
					return "<absent>"
				}
				return string(b)
			}
			if got := read(mark); got != tt.wantArgs {
				t.Errorf("installer ran with %q, want %q", got, tt.wantArgs)
			}
			if got := read(clientLog); got != tt.wantClient {
				t.Errorf("chef-client ran with %q, want %q", got, tt.wantClient)
			}
			if tt.wantClient != "<absent>" && modtest.Get(t, e, DefaultValidationKey) != "<absent>" {
				t.Error("delete_validation_post_exec: validation key kept")
			}
			if tt.wantErr == "" && !strings.Contains(console.String(), "omnibus done") {
				t.Errorf("installer output not in the output log")
			}
			// The validation key is in no log line, error or output.
			bootstraptest.NoLeak(t, "SECRET", logs, console.String(), err)
		})
	}
}

func TestBadInput(t *testing.T) {
	tests := []struct{ name, cfg, wantErr string }{
		{"no server_url", "chef: {validation_name: v, validation_cert: \"" + pem + "\"}", "missing required key server_url"},
		{"symbol", "chef: {server_url: x, validation_name: v, log_level: 'info; system(\"id\")'}", "log_level: \"info; system(\\\"id\\\")\" is not a Ruby symbol"},
		{"exec_arguments", "chef: {server_url: x, validation_name: v, exec: true, exec_arguments: {a: b}}", "exec_arguments: line 1: want a list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, logs, _ := env(t)
			fake := testkit.FakeTool(t, t.TempDir(), "chef-client", "#!/bin/sh\nexit 0\n")
			err := (Chef{client: fake}).Run(context.Background(), e, modtest.Config(t, tt.cfg))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			bootstraptest.NoLeak(t, "SECRET", logs, "", err)
			if got := modtest.Get(t, e, DefaultValidationKey); got != "<absent>" {
				t.Errorf("bad input still wrote the validation key")
			}
		})
	}
}

func TestSchema(t *testing.T) {
	tests := []struct{ name, doc, want string }{
		{"valid", "chef:\n  server_url: https://x\n  validation_name: v\n  install_type: omnibus\n  omnibus_sha256: abc\n  run_list: [a]\n", ""},
		{"missing required", "chef:\n  node_name: n\n",
			"u.yaml:2:3: error: chef: missing required key \"server_url\"\nu.yaml:2:3: error: chef: missing required key \"validation_name\""},
		{"wrong types", "chef:\n  server_url: https://x\n  validation_name: v\n  install_type: rpm\n  omnibus_url_retries: many\n  validation_cert: [a]\n",
			"u.yaml:4:17: error: chef.install_type: expected one of packages, gems, omnibus, got \"rpm\"\nu.yaml:5:24: error: chef.omnibus_url_retries: expected integer, got string\nu.yaml:6:20: error: chef.validation_cert: expected string, got a list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := modtest.Diagnostics(t, tt.doc, Chef{}); got != tt.want {
				t.Errorf("diagnostics:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

// TestClientRBRuby reads the rendered client.rb with the real ruby (chef's
// own language), each setting recorded as the value Ruby sees: quoting
// holds for quotes, backslashes and #{...}.
func TestClientRBRuby(t *testing.T) {
	ruby, err := exec.LookPath("ruby")
	if err != nil {
		t.Skip("ruby not installed (apt-get install ruby)")
	}
	e, _, _ := env(t)
	fake := testkit.FakeTool(t, t.TempDir(), "chef-client", "#!/bin/sh\nexit 0\n")
	cfg := modtest.Config(t, `chef:
  server_url: https://chef.example.com
  validation_name: 'v"#{system("id")}\'
  node_name: 'web \n 1'
  log_level: ":warn"
`)
	if err := (Chef{client: fake}).Run(context.Background(), e, cfg); err != nil {
		t.Fatal(err)
	}
	full, err := e.Root.Path("/etc/chef/client.rb")
	if err != nil {
		t.Fatal(err)
	}
	eval := `module Chef; module Log; class Formatter; class << self; attr_accessor :show_time; end; end; end; end
o = Object.new
def o.method_missing(n, *a) = puts("#{n}=#{a[0].is_a?(String) ? a[0] : a[0].inspect}")
o.instance_eval(File.read(ARGV[0]), ARGV[0])
puts "show_time=#{Chef::Log::Formatter.show_time}"`
	out, err := exec.Command(ruby, "-e", eval, full).CombinedOutput()
	if err != nil {
		t.Fatalf("ruby: %v\n%s", err, out)
	}
	want := `log_level=:warn
ssl_verify_mode=:verify_none
log_location=/var/log/chef/client.log
validation_client_name=v"#{system("id")}\
client_key=/etc/chef/client.pem
chef_server_url=https://chef.example.com
environment=_default
node_name=web \n 1
json_attribs=/etc/chef/firstboot.json
file_cache_path=/var/chef/cache
file_backup_path=/var/chef/backup
pid_file=/var/run/chef/client.pid
show_time=true
`
	if string(out) != want {
		t.Errorf("ruby read:\n%s\nwant:\n%s", out, want)
	}
}
