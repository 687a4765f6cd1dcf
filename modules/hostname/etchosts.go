package hostname

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/distro"
)

// The managed block of /etc/hosts (manage_etc_hosts: true or template).
const (
	blockBegin = "# BEGIN ec2init managed (manage_etc_hosts): edits between these lines are replaced at every boot"
	blockEnd   = "# END ec2init managed"
)

// UpdateEtcHosts keeps the host's own names in /etc/hosts at every boot
// (cloud-init's update_etc_hosts), when manage_etc_hosts asks for it.
type UpdateEtcHosts struct{}

func (UpdateEtcHosts) Name() string                 { return "update_etc_hosts" }
func (UpdateEtcHosts) Stage() modules.Stage         { return modules.StageNetwork }
func (UpdateEtcHosts) Frequency() modules.Frequency { return state.Always }
func (UpdateEtcHosts) Schema() modules.Schema {
	return modules.Schema{
		Doc: "Map the hostname and FQDN to a loopback address in /etc/hosts at every boot.",
		Keys: []config.Field{{Name: "manage_etc_hosts", Type: config.OneOf(config.Bool(), config.Enum("template", "localhost")), Default: "false",
			Doc: "true or template: ec2init owns a block at the top of /etc/hosts with the names (127.0.1.1 on Debian-likes, " +
				"127.0.0.1 and ::1 elsewhere), other lines kept; localhost: only add the names' line if it is missing; false: leave /etc/hosts alone."}},
	}
}

func (UpdateEtcHosts) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	mode, err := hostsMode(cfg)
	if err != nil || mode == "" {
		return err
	}
	log := env.Logger()
	d, err := distro.Detect(env.Root)
	if err != nil {
		return err
	}
	s, err := readSettings(cfg, d)
	if err != nil {
		return err
	}
	n, ok := resolve(instanceOf(env), s)
	if !ok {
		log.Warn("update_etc_hosts: no hostname to map: IMDS gave no local-hostname and cloud-config sets neither hostname nor fqdn")
		return nil
	}
	if err := n.check(); err != nil {
		return err
	}
	old, err := env.Root.ReadFile(HostsFile)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	exists := err == nil
	var out []byte
	if mode == "template" {
		out = withBlock(string(old), exists, d, n)
	} else {
		out = withLocalhostEntry(string(old), exists, d, n)
	}
	if exists && string(out) == string(old) {
		return nil
	}
	if err := env.Root.WriteFile(HostsFile, out, 0o644, nil); err != nil {
		return err
	}
	log.Info("updated /etc/hosts", zap.String("manage_etc_hosts", mode), zap.String("fqdn", n.FQDN), zap.String("hostname", n.Hostname))
	return nil
}

// hostsMode reads manage_etc_hosts: "template" (true, as cloud-init takes
// it), "localhost", or "" to leave /etc/hosts alone.
func hostsMode(cfg *config.CloudConfig) (string, error) {
	v, ok := cfg.Get("manage_etc_hosts")
	if !ok || v.Node.Tag == "!!null" {
		return "", nil
	}
	if v.Node.Kind == yaml.ScalarNode {
		switch v.Node.Value {
		case "template", "localhost":
			return v.Node.Value, nil
		}
		if b, err := config.ParseBool(v.Node.Value); err == nil {
			if b {
				return "template", nil
			}
			return "", nil
		}
	}
	return "", fmt.Errorf("%s:%d: manage_etc_hosts: expected true, false, template or localhost", v.Source, v.KeyLine)
}

// localAddr is the address the host's own names map to, as in cloud-init:
// Debian's 127.0.1.1 (so 127.0.0.1 stays "localhost" alone), 127.0.0.1
// elsewhere.
func localAddr(d distro.Distro) string {
	if d.IsDebianLike() {
		return "127.0.1.1"
	}
	return "127.0.0.1"
}

// nameList is "fqdn hostname", or one name when they are the same.
func (n names) nameList() string {
	if n.FQDN == n.Hostname {
		return n.FQDN
	}
	return n.FQDN + " " + n.Hostname
}

// withBlock puts the managed block at the top of hosts (first match wins
// in lookups), replacing an earlier block and keeping every other line. A
// missing file gets the distribution's localhost lines too.
func withBlock(hosts string, exists bool, d distro.Distro, n names) []byte {
	block := []string{blockBegin, localAddr(d) + " " + n.nameList()}
	if !d.IsDebianLike() {
		block = append(block, "::1 "+n.nameList())
	}
	block = append(block, blockEnd)

	var rest []string
	if exists {
		inBlock := false
		for _, line := range splitLines(hosts) {
			switch {
			case line == blockBegin:
				inBlock = true
			case inBlock && line == blockEnd:
				inBlock = false
			case !inBlock:
				rest = append(rest, line)
			}
		}
	} else {
		rest = defaultHosts(d)
	}
	return []byte(strings.Join(append(block, rest...), "\n") + "\n")
}

// defaultHosts are the localhost lines of cloud-init's hosts templates.
func defaultHosts(d distro.Distro) []string {
	if d.IsDebianLike() {
		return []string{"127.0.0.1 localhost", "", "# The following lines are desirable for IPv6 capable hosts",
			"::1 localhost ip6-localhost ip6-loopback", "ff02::1 ip6-allnodes", "ff02::2 ip6-allrouters"}
	}
	return []string{"127.0.0.1 localhost.localdomain localhost", "127.0.0.1 localhost4.localdomain4 localhost4",
		"::1 localhost.localdomain localhost", "::1 localhost6.localdomain6 localhost6"}
}

// withLocalhostEntry is cloud-init's manage_etc_hosts: localhost: if no
// line of the local address has the FQDN as canonical name and the
// hostname as an alias, one is added after that address's last line (or
// at the end); nothing else changes.
func withLocalhostEntry(hosts string, exists bool, d distro.Distro, n names) []byte {
	addr := localAddr(d)
	lines := splitLines(hosts)
	if !exists {
		lines = []string{"# Added by ec2init (manage_etc_hosts: localhost)", "127.0.0.1 localhost"}
	}
	last := -1
	for i, line := range lines {
		f := strings.Fields(line)
		if c := slices.IndexFunc(f, func(s string) bool { return strings.HasPrefix(s, "#") }); c >= 0 {
			f = f[:c]
		}
		if len(f) < 2 || f[0] != addr {
			continue
		}
		if f[1] == n.FQDN && (n.Hostname == n.FQDN || slices.Contains(f[2:], n.Hostname)) {
			return []byte(hosts)
		}
		last = i
	}
	entry := addr + " " + n.nameList()
	if last < 0 {
		lines = append(lines, entry)
	} else {
		lines = slices.Insert(lines, last+1, entry)
	}
	return []byte(strings.Join(lines, "\n") + "\n")
}

// splitLines splits text into lines without a trailing empty one.
func splitLines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}
