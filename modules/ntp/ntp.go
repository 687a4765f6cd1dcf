// Package ntp implements cloud-init's ntp module: chrony,
// systemd-timesyncd, ntp (ntpd/ntpsec), ntpdate and openntpd, or a client
// the cloud-config describes itself (config: confpath, check_exe,
// service_name, packages, template). On EC2 the Amazon Time Sync Service
// (169.254.169.123, or fd00:ec2::123 on IPv6-only instances) is always the
// preferred source; the cloud-config's servers and pools are added to it.
// A client that is not installed is installed with the image's package
// manager, as cloud-init does.
package ntp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/agent/userdata"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/distro"
	"github.com/ec2init/ec2init/modules/internal/pkgmgr"
)

// The Amazon Time Sync Service, reachable from every instance without
// internet access. Polled every 16 s, as AWS recommends.
const (
	TimeSyncIPv4    = "169.254.169.123"
	TimeSyncIPv6    = "fd00:ec2::123"
	timeSyncOptions = "prefer iburst minpoll 4 maxpoll 4"
)

// Clients.
const (
	Chrony    = "chrony"
	Timesyncd = "systemd-timesyncd"
	Ntpd      = "ntp"
	Ntpdate   = "ntpdate"
	OpenNTPD  = "openntpd"
)

// knownClients are the clients cloud-init knows; any other name needs its
// whole description under config.
var knownClients = []string{"auto", Chrony, Timesyncd, Ntpd, Ntpdate, OpenNTPD}

const header = "# Written by ec2init (cloud-config ntp) at every new instance: edit the cloud-config, not this file.\n"

// serviceTimeout bounds systemctl.
const serviceTimeout = 90 * time.Second

// NTP configures time synchronisation once per instance.
type NTP struct{}

func (NTP) Name() string                 { return "ntp" }
func (NTP) Stage() modules.Stage         { return modules.StageConfig }
func (NTP) Frequency() modules.Frequency { return state.PerInstance }
func (NTP) Schema() modules.Schema {
	listOfStrings := config.ListOf(config.String())
	return modules.Schema{
		Doc: "Configure chrony, systemd-timesyncd, ntpd, ntpdate, openntpd or a client of your own, with the Amazon Time Sync Service as preferred source.",
		Keys: []config.Field{{Name: "ntp", Type: config.OneOf(config.Null(), config.Object(
			config.Field{Name: "enabled", Type: config.Bool(), Default: "true", Doc: "false leaves time synchronisation alone."},
			config.Field{Name: "ntp_client", Type: config.String(), Default: "auto",
				Doc: "auto (chrony if installed, else systemd-timesyncd if installed, else chrony), chrony, systemd-timesyncd, ntp, ntpdate, openntpd, or a name of your own described under config."},
			config.Field{Name: "servers", Type: listOfStrings, Doc: "NTP servers, after the Amazon Time Sync Service."},
			config.Field{Name: "pools", Type: listOfStrings, Doc: "NTP pools."},
			config.Field{Name: "peers", Type: listOfStrings, Doc: "NTP peers (chrony and ntp)."},
			config.Field{Name: "allow", Type: listOfStrings, Doc: "Networks allowed to use this host as NTP server (chrony and ntp)."},
			config.Field{Name: "config", Type: config.Object(
				config.Field{Name: "confpath", Type: config.String(), Doc: "The client's configuration file."},
				config.Field{Name: "service_name", Type: config.String(), Doc: "The systemd service restarted after the change."},
				config.Field{Name: "check_exe", Type: config.String(), Doc: "The program whose presence says the client is installed."},
				config.Field{Name: "packages", Type: listOfStrings, Doc: "Packages installed when check_exe is missing."},
				config.Field{Name: "template", Type: config.String(),
					Doc: "The configuration file as a \"## template: jinja\" template, rendered with servers, pools, peers and allow (servers is the Time Sync Service when neither servers nor pools is given)."},
			), Doc: "Overrides of the client's defaults; a client of your own needs confpath, check_exe, service_name and template."},
		))}},
	}
}

// Check: a client cloud-init does not know must be described whole, as
// cloud-init's supplemental validation requires.
func (NTP) Check(source, key string, v *yaml.Node) []config.Diagnostic {
	if v.Kind != yaml.MappingNode {
		return nil
	}
	var clientName string
	given := map[string]bool{}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i].Value, v.Content[i+1]
		switch {
		case k == "ntp_client" && val.Kind == yaml.ScalarNode:
			clientName = val.Value
		case k == "config" && val.Kind == yaml.MappingNode:
			for j := 0; j+1 < len(val.Content); j += 2 {
				if val.Content[j+1].Value != "" {
					given[val.Content[j].Value] = true
				}
			}
		}
	}
	if clientName == "" || slices.Contains(knownClients, clientName) {
		return nil
	}
	var missing []string
	for _, f := range []string{"confpath", "check_exe", "service_name", "template"} {
		if !given[f] {
			missing = append(missing, f)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return []config.Diagnostic{{Source: source, Line: v.Line, Column: v.Column, Path: key + ".config", Severity: config.SeverityError,
		Message: fmt.Sprintf("ntp_client %q is not a client cloud-init knows: config needs %s", clientName, strings.Join(missing, ", "))}}
}

// settings is the ntp key.
type settings struct {
	Enabled   *bool    `yaml:"enabled"`
	Client    string   `yaml:"ntp_client"`
	Servers   []string `yaml:"servers"`
	Pools     []string `yaml:"pools"`
	Peers     []string `yaml:"peers"`
	Allow     []string `yaml:"allow"`
	Overrides struct {
		ConfPath    string   `yaml:"confpath"`
		ServiceName string   `yaml:"service_name"`
		CheckExe    string   `yaml:"check_exe"`
		Packages    []string `yaml:"packages"`
		Template    string   `yaml:"template"`
	} `yaml:"config"`
}

// client is one NTP client's defaults on a distribution.
type client struct {
	name     string
	confPath string
	service  string
	checkExe string
	packages []string
}

// clientFor is client name's defaults on d, as cloud-init's table has them
// (ok false: a name cloud-init does not know). Where cloud-init's path is
// one the installed daemon does not read (Debian's ntpsec and openntpd),
// the daemon's own is used.
func clientFor(root *sys.Root, name string, d distro.Distro) (client, bool) {
	debian := d.IsDebianLike()
	switch name {
	case Chrony:
		if debian {
			return client{name: Chrony, confPath: "/etc/chrony/chrony.conf", service: "chrony", checkExe: "chronyd", packages: []string{"chrony"}}, true
		}
		return client{name: Chrony, confPath: "/etc/chrony.conf", service: "chronyd", checkExe: "chronyd", packages: []string{"chrony"}}, true
	case Timesyncd:
		return client{name: Timesyncd, confPath: "/etc/systemd/timesyncd.conf.d/ec2init.conf",
			service: "systemd-timesyncd", checkExe: "systemd-timesyncd"}, true
	case Ntpd:
		if debian {
			if ok, _ := root.Exists("/etc/ntpsec"); ok {
				return client{name: Ntpd, confPath: "/etc/ntpsec/ntp.conf", service: "ntpsec", checkExe: "ntpd", packages: []string{"ntpsec"}}, true
			}
			return client{name: Ntpd, confPath: "/etc/ntp.conf", service: "ntp", checkExe: "ntpd", packages: []string{"ntpsec"}}, true
		}
		return client{name: Ntpd, confPath: "/etc/ntp.conf", service: "ntpd", checkExe: "ntpd", packages: []string{"ntp"}}, true
	case Ntpdate:
		return client{name: Ntpdate, confPath: "/etc/ntp.conf", service: "ntpdate", checkExe: "ntpdate", packages: []string{"ntpdate"}}, true
	case OpenNTPD:
		if debian {
			return client{name: OpenNTPD, confPath: "/etc/openntpd/ntpd.conf", service: "openntpd", checkExe: "ntpd", packages: []string{"openntpd"}}, true
		}
		return client{name: OpenNTPD, confPath: "/etc/ntpd.conf", service: "ntpd", checkExe: "ntpd"}, true
	}
	return client{name: name}, false
}

func (NTP) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	var s settings
	if _, err := cfg.Decode("ntp", &s); err != nil {
		return err
	}
	log := env.Logger()
	if s.Enabled != nil && !*s.Enabled {
		log.Info("ntp: enabled is false; time synchronisation left alone")
		return nil
	}
	for _, k := range []struct {
		key  string
		list []string
	}{{"servers", s.Servers}, {"pools", s.Pools}, {"peers", s.Peers}, {"allow", s.Allow}} {
		if err := checkItems(k.key, k.list); err != nil {
			return err
		}
	}
	d, err := distro.Detect(env.Root)
	if err != nil {
		return err
	}
	c, err := choose(env.Root, s, d)
	if err != nil {
		return err
	}
	if ok, where := installed(env.Root, c.checkExe); !ok {
		if err := install(ctx, env, c, where); err != nil {
			return err
		}
	}
	timeSync := timeSyncServer(env)
	var conf []byte
	switch {
	case s.Overrides.Template != "":
		if conf, err = renderTemplate(s, timeSync); err != nil {
			return err
		}
	case c.name == Chrony:
		conf = chronyConf(d, timeSync, s)
	case c.name == Timesyncd:
		for _, k := range []struct {
			key  string
			list []string
		}{{"peers", s.Peers}, {"allow", s.Allow}} {
			if len(k.list) > 0 {
				log.Warn("ntp: systemd-timesyncd has no "+k.key+"; ignored", zap.String("key", "ntp."+k.key))
			}
		}
		conf = timesyncdConf(timeSync, s)
	case c.name == Ntpd || c.name == Ntpdate:
		conf = ntpConf(c, timeSync, s)
	case c.name == OpenNTPD:
		if len(s.Peers) > 0 || len(s.Allow) > 0 {
			log.Warn("ntp: openntpd has no peers or allow; ignored")
		}
		conf = openntpdConf(timeSync, s)
	}
	if err := env.Root.WriteFile(c.confPath, conf, 0o644, nil); err != nil {
		return err
	}
	log.Info("ntp configured", zap.String("client", c.name), zap.String("config", c.confPath),
		zap.Int("servers", len(s.Servers)), zap.Int("pools", len(s.Pools)))
	if !env.Root.IsHost() {
		return nil
	}
	return restart(ctx, env.Runner, c.service)
}

// install installs c's packages when its program is missing, as cloud-init
// does; a client with no packages to install is an error naming it.
func install(ctx context.Context, env *modules.Env, c client, where string) error {
	missing := fmt.Sprintf("%s is not installed (no %s", c.name, c.checkExe)
	if where != "" {
		missing += " in " + where
	}
	missing += ")"
	if len(c.packages) == 0 {
		return errors.New(missing + " and config.packages names none to install")
	}
	var pkgs []pkgmgr.Package
	for _, p := range c.packages {
		if err := pkgmgr.CheckWord("ntp.config.packages", p); err != nil {
			return err
		}
		pkgs = append(pkgs, pkgmgr.Package{Name: p})
	}
	if err := (pkgmgr.Manager{}).Apply(ctx, env, pkgmgr.Request{Packages: pkgs}); err != nil {
		return fmt.Errorf("%s; installing %s: %w", missing, strings.Join(c.packages, " "), err)
	}
	if ok, _ := installed(env.Root, c.checkExe); !ok {
		return fmt.Errorf("%s after installing %s", missing, strings.Join(c.packages, " "))
	}
	return nil
}

// renderTemplate renders config.template as cloud-init renders an ntp
// template: servers, pools, peers and allow; with neither servers nor
// pools, the Time Sync Service is the one server (cloud-init would use
// pool.ntp.org, unreachable from a private subnet).
func renderTemplate(s settings, timeSync string) ([]byte, error) {
	servers := s.Servers
	if len(servers) == 0 && len(s.Pools) == 0 {
		servers = []string{timeSync}
	}
	list := func(l []string) []any {
		out := make([]any, len(l))
		for i, v := range l {
			out[i] = strings.TrimSpace(v)
		}
		return out
	}
	out, err := userdata.RenderTemplate([]byte(s.Overrides.Template), map[string]any{
		"servers": list(servers), "pools": list(s.Pools), "peers": list(s.Peers), "allow": list(s.Allow), "time_sync_server": timeSync,
	})
	if err != nil {
		return nil, fmt.Errorf("ntp.config.template: %w", err)
	}
	return out, nil
}

// choose picks the client: ntp_client, or for auto the first installed of
// chrony and systemd-timesyncd (chrony when neither is).
func choose(root *sys.Root, s settings, d distro.Distro) (client, error) {
	var c client
	switch s.Client {
	case "", "auto":
		c, _ = clientFor(root, Chrony, d)
		if t, _ := clientFor(root, Timesyncd, d); !has(root, c.checkExe) && has(root, t.checkExe) {
			c = t
		}
	default:
		var known bool
		c, known = clientFor(root, s.Client, d)
		o := s.Overrides
		if !known && (o.ConfPath == "" || o.CheckExe == "" || o.ServiceName == "" || o.Template == "") {
			return client{}, fmt.Errorf("ntp.config: ntp_client %q is not a client cloud-init knows: give confpath, check_exe, service_name and template", s.Client)
		}
	}
	o := s.Overrides
	if o.ConfPath != "" {
		if !strings.HasPrefix(o.ConfPath, "/") {
			return client{}, fmt.Errorf("ntp.config.confpath: %q is not an absolute path", o.ConfPath)
		}
		c.confPath = o.ConfPath
	}
	if o.ServiceName != "" {
		c.service = o.ServiceName
	}
	if o.CheckExe != "" {
		c.checkExe = o.CheckExe
	}
	if o.Packages != nil {
		c.packages = o.Packages
	}
	return c, nil
}

// installed looks for exe under the root: an absolute path as it is, a
// bare name in the program directories (systemd's for its daemons).
func installed(root *sys.Root, exe string) (bool, string) {
	dirs := []string{"/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/lib/systemd", "/lib/systemd"}
	if strings.HasPrefix(exe, "/") {
		ok, _ := root.Exists(exe)
		return ok, exe
	}
	for _, d := range dirs {
		if ok, _ := root.Exists(d + "/" + exe); ok {
			return true, ""
		}
	}
	return false, strings.Join(dirs, ", ")
}

func has(root *sys.Root, exe string) bool {
	ok, _ := installed(root, exe)
	return ok
}

// checkItems refuses what would break out of its line in the generated
// file: a line break would let a name add directives of its own.
func checkItems(key string, items []string) error {
	for i, it := range items {
		if strings.TrimSpace(it) == "" {
			return fmt.Errorf("ntp.%s[%d]: empty", key, i)
		}
		if strings.ContainsFunc(it, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f || r == '#' }) {
			return fmt.Errorf("ntp.%s[%d]: contains a line break, control character or '#'", key, i)
		}
	}
	return nil
}

// timeSyncServer is the Time Sync Service's address the instance can reach:
// the IPv6 one on an instance with no IPv4 address.
func timeSyncServer(env *modules.Env) string {
	if in := env.Instance; in != nil && in.LocalIPv4 == "" {
		for _, ni := range in.NetworkInterfaces {
			if len(ni.IPv6s) > 0 {
				return TimeSyncIPv6
			}
		}
	}
	return TimeSyncIPv4
}

// chronyConf is a whole chrony.conf: the sources, then the distribution's
// usual housekeeping directives (the paths its chrony package uses).
func chronyConf(d distro.Distro, timeSync string, s settings) []byte {
	var b bytes.Buffer
	b.WriteString(header)
	b.WriteString("\n# Amazon Time Sync Service\n")
	fmt.Fprintf(&b, "server %s %s\n", timeSync, timeSyncOptions)
	writeSources(&b, s)
	writeSection(&b, "clients allowed (cloud-config ntp.allow)", "allow", "", s.Allow)
	b.WriteString("\n")
	if d.IsDebianLike() {
		b.WriteString(`confdir /etc/chrony/conf.d
sourcedir /run/chrony-dhcp
sourcedir /etc/chrony/sources.d
keyfile /etc/chrony/chrony.keys
driftfile /var/lib/chrony/chrony.drift
ntsdumpdir /var/lib/chrony
logdir /var/log/chrony
maxupdateskew 100.0
rtcsync
makestep 1 3
leapsectz right/UTC
`)
	} else {
		b.WriteString(`driftfile /var/lib/chrony/drift
makestep 1.0 3
rtcsync
keyfile /etc/chrony.keys
ntsdumpdir /var/lib/chrony
leapsectz right/UTC
logdir /var/log/chrony
`)
	}
	return b.Bytes()
}

// writeSources writes the servers, pools and peers in the syntax chrony and
// ntpd share.
func writeSources(b *bytes.Buffer, s settings) {
	writeSection(b, "servers (cloud-config ntp.servers)", "server", " iburst", s.Servers)
	writeSection(b, "pools (cloud-config ntp.pools)", "pool", " iburst", s.Pools)
	writeSection(b, "peers (cloud-config ntp.peers)", "peer", "", s.Peers)
}

// writeSection writes one directive per item under a comment title.
func writeSection(b *bytes.Buffer, title, directive, opts string, items []string) {
	if len(items) == 0 {
		return
	}
	fmt.Fprintf(b, "\n# %s\n", title)
	for _, it := range items {
		fmt.Fprintf(b, "%s %s%s\n", directive, strings.TrimSpace(it), opts)
	}
}

// ntpConf is a whole ntp.conf for ntpd (ntpsec or classic ntp) and
// ntpdate, which reads its servers.
func ntpConf(c client, timeSync string, s settings) []byte {
	var b bytes.Buffer
	b.WriteString(header)
	drift := "/var/lib/ntp/ntp.drift"
	if c.service == "ntpsec" {
		drift = "/var/lib/ntpsec/ntp.drift"
	}
	fmt.Fprintf(&b, "driftfile %s\n\n# Amazon Time Sync Service\nserver %s %s\n", drift, timeSync, timeSyncOptions)
	writeSources(&b, s)
	b.WriteString("\n# Access control: serve time, allow no changes; the networks in ntp.allow may query.\n")
	b.WriteString("restrict default kod nomodify nopeer noquery limited\nrestrict 127.0.0.1\nrestrict ::1\n")
	for _, a := range s.Allow {
		fmt.Fprintf(&b, "restrict %s kod nomodify notrap nopeer\n", strings.TrimSpace(a))
	}
	return b.Bytes()
}

// openntpdConf is a whole ntpd.conf for OpenNTPD: "servers" resolves a
// name to all its addresses (a pool).
func openntpdConf(timeSync string, s settings) []byte {
	var b bytes.Buffer
	b.WriteString(header)
	fmt.Fprintf(&b, "\n# Amazon Time Sync Service\nserver %s\n", timeSync)
	for _, it := range s.Servers {
		fmt.Fprintf(&b, "server %s\n", strings.TrimSpace(it))
	}
	for _, it := range s.Pools {
		fmt.Fprintf(&b, "servers %s\n", strings.TrimSpace(it))
	}
	return b.Bytes()
}

// timesyncdConf is a timesyncd.conf drop-in: the Time Sync Service first,
// then the servers and pools (timesyncd tells them apart no further).
func timesyncdConf(timeSync string, s settings) []byte {
	all := []string{timeSync}
	for _, it := range append(append([]string(nil), s.Servers...), s.Pools...) {
		all = append(all, strings.TrimSpace(it))
	}
	return []byte(header + "[Time]\nNTP=" + strings.Join(all, " ") + "\n")
}

// restart enables the service and restarts it so it reads the new file.
func restart(ctx context.Context, r *sys.Runner, service string) error {
	for _, verb := range []string{"enable", "restart"} {
		var out bytes.Buffer
		res, err := r.Run(ctx, sys.Cmd{Name: "systemctl " + verb, Argv: []string{"systemctl", verb, service}, Output: &out, Timeout: serviceTimeout})
		if err != nil {
			return fmt.Errorf("systemctl %s %s: %w", verb, service, err)
		}
		if res.ExitCode != 0 {
			msg, _, _ := strings.Cut(strings.TrimSpace(out.String()), "\n")
			return fmt.Errorf("systemctl %s %s: exit status %d: %s", verb, service, res.ExitCode, msg)
		}
	}
	return nil
}
