// Package ntp implements cloud-init's ntp module for chrony and
// systemd-timesyncd. On EC2 the Amazon Time Sync Service (169.254.169.123,
// or fd00:ec2::123 on IPv6-only instances) is always the preferred source;
// the cloud-config's servers and pools are added to it. Packages are not
// installed here: the packages module does that.
package ntp

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/distro"
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
)

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
		Doc: "Configure chrony or systemd-timesyncd, with the Amazon Time Sync Service as preferred source.",
		Keys: []config.Field{{Name: "ntp", Type: config.OneOf(config.Null(), config.Object(
			config.Field{Name: "enabled", Type: config.Bool(), Default: "true", Doc: "false leaves time synchronisation alone."},
			config.Field{Name: "ntp_client", Type: config.Enum("auto", Chrony, Timesyncd, "ntp", "ntpdate", "openntpd"), Default: "auto",
				Doc: "auto: chrony if installed, else systemd-timesyncd if installed, else chrony. ntp, ntpdate and openntpd are not supported."},
			config.Field{Name: "servers", Type: listOfStrings, Doc: "NTP servers, after the Amazon Time Sync Service."},
			config.Field{Name: "pools", Type: listOfStrings, Doc: "NTP pools."},
			config.Field{Name: "peers", Type: listOfStrings, Doc: "NTP peers (chrony only)."},
			config.Field{Name: "allow", Type: listOfStrings, Doc: "Networks allowed to use this host as NTP server (chrony only)."},
			config.Field{Name: "config", Type: config.Object(
				config.Field{Name: "confpath", Type: config.String(), Doc: "The client's configuration file."},
				config.Field{Name: "service_name", Type: config.String(), Doc: "The systemd service restarted after the change."},
				config.Field{Name: "check_exe", Type: config.String(), Doc: "The program whose presence says the client is installed."},
			), Doc: "Overrides of the client's defaults (templates and package installation are not supported)."},
		))}},
	}
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
		ConfPath    string `yaml:"confpath"`
		ServiceName string `yaml:"service_name"`
		CheckExe    string `yaml:"check_exe"`
	} `yaml:"config"`
}

// client is one NTP client's defaults on a distribution.
type client struct {
	name     string
	confPath string
	service  string
	checkExe string
}

func clientFor(name string, d distro.Distro) client {
	switch name {
	case Timesyncd:
		return client{name: Timesyncd, confPath: "/etc/systemd/timesyncd.conf.d/ec2init.conf",
			service: "systemd-timesyncd", checkExe: "systemd-timesyncd"}
	}
	if d.IsDebianLike() {
		return client{name: Chrony, confPath: "/etc/chrony/chrony.conf", service: "chrony", checkExe: "chronyd"}
	}
	return client{name: Chrony, confPath: "/etc/chrony.conf", service: "chronyd", checkExe: "chronyd"}
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
		return fmt.Errorf("%s is not installed (no %s in %s); install it with the packages key, ec2init's ntp module does not install packages",
			c.name, c.checkExe, where)
	}
	var conf []byte
	switch c.name {
	case Chrony:
		conf = chronyConf(d, timeSyncServer(env), s)
	case Timesyncd:
		for _, k := range []struct {
			key  string
			list []string
		}{{"peers", s.Peers}, {"allow", s.Allow}} {
			if len(k.list) > 0 {
				log.Warn("ntp: systemd-timesyncd has no "+k.key+"; ignored", zap.String("key", "ntp."+k.key))
			}
		}
		conf = timesyncdConf(timeSyncServer(env), s)
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

// choose picks the client: ntp_client, or for auto the first installed of
// chrony and systemd-timesyncd (chrony when neither is).
func choose(root *sys.Root, s settings, d distro.Distro) (client, error) {
	var c client
	switch s.Client {
	case "", "auto":
		c = clientFor(Chrony, d)
		if t := clientFor(Timesyncd, d); !has(root, c.checkExe) && has(root, t.checkExe) {
			c = t
		}
	case Chrony, Timesyncd:
		c = clientFor(s.Client, d)
	default:
		return client{}, fmt.Errorf("ntp.ntp_client: %q is not supported by ec2init (chrony, systemd-timesyncd or auto)", s.Client)
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
	section := func(title, directive, opts string, items []string) {
		if len(items) == 0 {
			return
		}
		fmt.Fprintf(&b, "\n# %s\n", title)
		for _, it := range items {
			fmt.Fprintf(&b, "%s %s%s\n", directive, strings.TrimSpace(it), opts)
		}
	}
	section("servers (cloud-config ntp.servers)", "server", " iburst", s.Servers)
	section("pools (cloud-config ntp.pools)", "pool", " iburst", s.Pools)
	section("peers (cloud-config ntp.peers)", "peer", "", s.Peers)
	section("clients allowed (cloud-config ntp.allow)", "allow", "", s.Allow)
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
