// Package hostname implements cloud-init's set_hostname, update_hostname
// and update_etc_hosts: the host's name from cloud-config (hostname, fqdn)
// or, by default, from IMDS local-hostname; /etc/hostname and the running
// hostname; and the host's own entry in /etc/hosts.
package hostname

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"strings"

	"golang.org/x/sys/unix"
	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/distro"
)

// Files this package reads and writes (host paths under the root).
const (
	HostnameFile = "/etc/hostname"
	HostsFile    = "/etc/hosts"
	// StateFile remembers the names ec2init last set, as cloud-init's
	// /var/lib/cloud/data/set-hostname does, so update_hostname can tell a
	// name changed by hand from one it set itself.
	StateFile = state.StateDir + "/data/set-hostname"
)

// maxHostnameLen is the kernel's HOST_NAME_MAX: the longest name the
// running hostname (and so /etc/hostname) can hold.
const maxHostnameLen = 64

// names are the host's names as cloud-init computes them.
type names struct {
	Hostname string // short name, or whatever the user gave as hostname
	FQDN     string
	// Applied is what goes into /etc/hostname: FQDN when
	// prefer_fqdn_over_hostname, else Hostname.
	Applied string
	// hostKey and fqdnKey name where each came from, for messages:
	// "hostname", "fqdn" or "IMDS local-hostname".
	hostKey, fqdnKey string
}

// settings are the cloud-config keys of the three modules.
type settings struct {
	Hostname, FQDN     string
	PreferFQDN         bool
	Preserve           bool
	CreateHostnameFile bool
}

func readSettings(cfg *config.CloudConfig, d distro.Distro) (settings, error) {
	var s settings
	var err error
	if s.Hostname, err = scalar(cfg, "hostname"); err != nil {
		return s, err
	}
	if s.FQDN, err = scalar(cfg, "fqdn"); err != nil {
		return s, err
	}
	// cloud-init's Red Hat family (Amazon Linux included) prefers the
	// FQDN: its hostname is ip-10-0-1-23.ec2.internal, Debian's ip-10-0-1-23.
	if s.PreferFQDN, err = boolean(cfg, "prefer_fqdn_over_hostname", d.IsRedHatLike()); err != nil {
		return s, err
	}
	if s.Preserve, err = boolean(cfg, "preserve_hostname", false); err != nil {
		return s, err
	}
	if s.CreateHostnameFile, err = boolean(cfg, "create_hostname_file", true); err != nil {
		return s, err
	}
	return s, nil
}

// resolve computes the names as cloud-init's get_hostname_fqdn does: fqdn
// wins, a dotted hostname is an FQDN, and what the config leaves out comes
// from IMDS. ok is false when nothing gives a name.
func resolve(inst instance, s settings) (n names, ok bool) {
	const fromIMDS = "IMDS local-hostname"
	imdsHost, imdsFQDN := inst.names()
	switch {
	case s.FQDN != "":
		n.FQDN, n.fqdnKey = s.FQDN, "fqdn"
		n.Hostname, n.hostKey = s.Hostname, "hostname"
		if n.Hostname == "" {
			n.Hostname, _, _ = strings.Cut(s.FQDN, ".")
			n.hostKey = "fqdn"
		}
	case strings.Index(s.Hostname, ".") > 0:
		n.FQDN, n.fqdnKey = s.Hostname, "hostname"
		n.Hostname, _, _ = strings.Cut(s.Hostname, ".")
		n.hostKey = "hostname"
	default:
		n.FQDN, n.fqdnKey = imdsFQDN, fromIMDS
		n.Hostname, n.hostKey = s.Hostname, "hostname"
		if n.Hostname == "" {
			n.Hostname, n.hostKey = imdsHost, fromIMDS
		}
		if n.FQDN == "" {
			n.FQDN, n.fqdnKey = n.Hostname, n.hostKey
		}
	}
	if n.Hostname == "" {
		return n, false
	}
	n.Applied = n.Hostname
	if s.PreferFQDN {
		n.Applied = n.FQDN
	}
	return n, true
}

// instance is the IMDS fact the names default to.
type instance struct{ localHostname, hostname string }

func instanceOf(env *modules.Env) instance {
	if env.Instance == nil {
		return instance{}
	}
	return instance{localHostname: env.Instance.LocalHostname, hostname: env.Instance.Hostname}
}

// names returns the short name and FQDN of local-hostname
// ("ip-10-0-1-23.ec2.internal": "ip-10-0-1-23" and itself). A VPC whose
// DHCP options list several domains gives several names: the first counts.
// An address becomes "ip-a-b-c-d", as cloud-init names it.
func (i instance) names() (short, fqdn string) {
	f := strings.Fields(i.localHostname)
	if len(f) == 0 {
		f = strings.Fields(i.hostname)
	}
	if len(f) == 0 {
		return "", ""
	}
	fqdn = f[0]
	if ip := net.ParseIP(fqdn); ip != nil && ip.To4() != nil {
		fqdn = "ip-" + strings.ReplaceAll(fqdn, ".", "-")
	}
	short, _, _ = strings.Cut(fqdn, ".")
	return short, fqdn
}

// validName checks a name for /etc/hostname and /etc/hosts: dot-separated
// labels of letters, digits, '-' and '_' (which systemd tolerates). The
// error names key, where the name came from.
func validName(key, name string) error {
	for _, label := range strings.Split(name, ".") {
		if label == "" {
			return fmt.Errorf("%s: %q has an empty label", key, name)
		}
		if len(label) > 63 {
			return fmt.Errorf("%s: %q has a label longer than 63 characters", key, name)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("%s: %q: %q is not allowed in a hostname (letters, digits, '-', '.')", key, name, c)
			}
		}
	}
	return nil
}

// check validates the names before anything is written.
func (n names) check() error {
	if err := validName(n.hostKey, n.Hostname); err != nil {
		return err
	}
	if err := validName(n.fqdnKey, n.FQDN); err != nil {
		return err
	}
	if len(n.FQDN) > 253 {
		return fmt.Errorf("%s: %q is longer than 253 characters", n.fqdnKey, n.FQDN)
	}
	if len(n.Applied) > maxHostnameLen {
		key := n.hostKey
		if n.Applied == n.FQDN && n.Applied != n.Hostname {
			key = n.fqdnKey + " (with prefer_fqdn_over_hostname)"
		}
		return fmt.Errorf("%s: %q is %d characters, longer than the %d a hostname may have", key, n.Applied, len(n.Applied), maxHostnameLen)
	}
	return nil
}

// record is StateFile.
type record struct {
	Hostname string `json:"hostname"`
	FQDN     string `json:"fqdn"`
	// Applied is the name written to /etc/hostname.
	Applied string `json:"applied"`
}

func loadRecord(root *sys.Root) (record, bool, error) {
	b, err := root.ReadFile(StateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return record{}, false, nil
	}
	if err != nil {
		return record{}, false, err
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return record{}, false, fmt.Errorf("%s: %w", StateFile, err)
	}
	if r.Applied == "" { // written by an older agent: the short name was set
		r.Applied = r.Hostname
	}
	return r, true, nil
}

func saveRecord(root *sys.Root, n names) error {
	b, err := json.MarshalIndent(record{Hostname: n.Hostname, FQDN: n.FQDN, Applied: n.Applied}, "", "  ")
	if err != nil {
		return err
	}
	if err := root.MkdirAll(state.StateDir+"/data", 0o700); err != nil {
		return err
	}
	return root.WriteFile(StateFile, append(b, '\n'), 0o600, nil)
}

// systemHostname is the static hostname in /etc/hostname: its first line
// that is not a comment ("" when there is none).
func systemHostname(root *sys.Root) (string, bool, error) {
	b, err := root.ReadFile(HostnameFile)
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" && line[0] != '#' {
			return line, true, nil
		}
	}
	return "", true, nil
}

// apply writes name to /etc/hostname (unless the file is absent and
// create_hostname_file is false) and, when the root is the running
// system, makes it the running hostname. In a temporary or image root the
// running hostname is never touched.
func apply(ctx context.Context, env *modules.Env, name string, s settings) error {
	_, exists, err := systemHostname(env.Root)
	if err != nil {
		return err
	}
	if exists || s.CreateHostnameFile {
		if err := env.Root.WriteFile(HostnameFile, []byte(name+"\n"), 0o644, nil); err != nil {
			return err
		}
	}
	if !env.Root.IsHost() {
		return nil
	}
	// Without the file the name is only for this boot (cloud-init's
	// create_hostname_file: false): the kernel's name always is.
	return setLive(name)
}

// setLive sets the running (kernel) hostname with sethostname(2), as
// hostname(1) does. Not through hostnamectl: activating systemd-hostnamed
// over D-Bus cost about 150 ms of every first boot, and hostnamed reads the
// kernel's name and /etc/hostname afresh whenever it is asked.
func setLive(name string) error {
	if err := unix.Sethostname([]byte(name)); err != nil {
		return fmt.Errorf("set the running hostname: sethostname: %w", err)
	}
	return nil
}

// scalar returns key's value as a string; absent or null is "".
func scalar(cfg *config.CloudConfig, key string) (string, error) {
	v, ok := cfg.Get(key)
	if !ok || v.Node.Tag == "!!null" {
		return "", nil
	}
	if v.Node.Kind != yaml.ScalarNode {
		return "", fmt.Errorf("%s:%d: %s: expected a string", v.Source, v.KeyLine, key)
	}
	return strings.TrimSpace(v.Node.Value), nil
}

// boolean returns key's value, or def when it is absent or null. The YAML
// 1.1 words cloud-init's PyYAML takes for booleans (yes, off, ...) count.
func boolean(cfg *config.CloudConfig, key string, def bool) (bool, error) {
	v, ok := cfg.Get(key)
	if !ok || v.Node.Tag == "!!null" {
		return def, nil
	}
	if v.Node.Kind == yaml.ScalarNode {
		if b, err := config.ParseBool(v.Node.Value); err == nil {
			return b, nil
		}
	}
	return false, fmt.Errorf("%s:%d: %s: expected true or false", v.Source, v.KeyLine, key)
}
