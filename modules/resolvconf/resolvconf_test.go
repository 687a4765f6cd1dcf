package resolvconf

import (
	"context"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/modules/modtest"
)

// The wants are what cloud-init's templates/resolv.conf.tmpl renders with
// Jinja (trim_blocks, as cloud-init's templater), plus the final newline.
func TestResolvConf(t *testing.T) {
	const keep = "nameserver 127.0.0.53\n"
	tests := []struct {
		name, osRelease, cfg, want string
	}{
		{"everything", "ID=fedora\n", `manage_resolv_conf: true
resolv_conf:
  nameservers: [8.8.8.8, 1.1.1.1]
  searchdomains: [a.com, b.com]
  domain: example.com
  sortlist: [10.0.0.1/255, 10.0.0.2]
  options: {rotate: true, timeout: 1, edns0: false, attempts: 2}
`, header + "nameserver 8.8.8.8\nnameserver 1.1.1.1\n\nsearch a.com b.com \ndomain example.com\n\nsortlist 10.0.0.1/255 10.0.0.2 \noptions rotate attempts:2 timeout:1\n"},
		{"nameservers only", "ID=rhel\n", "manage_resolv_conf: true\nresolv_conf: {nameservers: [8.8.8.8]}\n",
			header + "nameserver 8.8.8.8\n\n"},
		{"domain only", "ID=fedora\n", "manage_resolv_conf: true\nresolv_conf: {domain: x}\n", header + "domain x\n"},
		{"flags in order", "ID=opensuse-leap\n", "manage_resolv_conf: true\nresolv_conf: {nameservers: ['1'], searchdomains: [s], options: {rotate: true, edns0: true, b: x, a: 1}}\n",
			header + "nameserver 1\n\nsearch s \n\noptions rotate edns0 a:1 b:x\n"},
		{"sortlist ends the file", "ID=fedora\n", "manage_resolv_conf: true\nresolv_conf: {sortlist: [a, b]}\n", header + "\nsortlist a b \n"},
		{"debian: not verified", "ID=debian\n", "manage_resolv_conf: true\nresolv_conf: {nameservers: [8.8.8.8]}\n", keep},
		{"amazon linux: not verified", "ID=amzn\nID_LIKE=fedora\n", "manage_resolv_conf: true\nresolv_conf: {nameservers: [8.8.8.8]}\n", keep},
		{"forced by unverified_modules", "ID=amzn\n", "unverified_modules: [resolv_conf]\nmanage_resolv_conf: true\nresolv_conf: {nameservers: [8.8.8.8]}\n",
			header + "nameserver 8.8.8.8\n\n"},
		{"not managed", "ID=fedora\n", "manage_resolv_conf: false\nresolv_conf: {nameservers: [8.8.8.8]}\n", keep},
		{"no manage key", "ID=fedora\n", "resolv_conf: {nameservers: [8.8.8.8]}\n", keep},
		{"managed without parameters", "ID=fedora\n", "manage_resolv_conf: true\n", keep},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := modtest.Env(t)
			modtest.Put(t, e, "/etc/os-release", tt.osRelease)
			modtest.Put(t, e, File, keep)
			if err := (ResolvConf{}).Run(context.Background(), e, modtest.Config(t, tt.cfg)); err != nil {
				t.Fatal(err)
			}
			if got := modtest.Get(t, e, File); got != tt.want {
				t.Errorf("resolv.conf =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestSchema(t *testing.T) {
	for doc, want := range map[string]string{
		"manage_resolv_conf: [x]\n":             "u.yaml:1:21: error: manage_resolv_conf: expected bool",
		"resolv_conf: {nameservers: 8.8.8.8}\n": "u.yaml:1:28: error: resolv_conf.nameservers: expected list",
		"resolv_conf: {options: [rotate]}\n":    "u.yaml:1:24: error: resolv_conf.options: expected map",
	} {
		if got := modtest.Diagnostics(t, doc, ResolvConf{}); !strings.Contains(got, want) {
			t.Errorf("%q: diagnostics %q, want %q", doc, got, want)
		}
	}
}
