package hostname

import (
	"context"
	"fmt"

	"go.uber.org/zap"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/distro"
)

// SetHostname sets the hostname once per instance (cloud-init's
// set_hostname): from hostname/fqdn, by default from IMDS local-hostname.
// It owns the hostname keys; update_hostname and update_etc_hosts read
// them too.
type SetHostname struct{}

func (SetHostname) Name() string                 { return "set_hostname" }
func (SetHostname) Stage() modules.Stage         { return modules.StageNetwork }
func (SetHostname) Frequency() modules.Frequency { return state.PerInstance }
func (SetHostname) Schema() modules.Schema {
	return modules.Schema{
		Doc: "Set the hostname once per instance, by default from IMDS local-hostname.",
		Keys: []config.Field{
			{Name: "hostname", Type: config.OneOf(config.String(), config.Null()),
				Doc: "The hostname; one with dots is taken as the FQDN. Default: IMDS local-hostname's first label."},
			{Name: "fqdn", Type: config.OneOf(config.String(), config.Null()),
				Doc: "The fully qualified name; wins over a dotted hostname. Default: IMDS local-hostname."},
			{Name: "prefer_fqdn_over_hostname", Type: config.Bool(), Default: "true on Amazon Linux and Red Hat-likes, else false",
				Doc: "Set the FQDN, not the short name, as the hostname."},
			{Name: "preserve_hostname", Type: config.Bool(), Default: "false",
				Doc: "Leave the hostname alone (set_hostname and update_hostname do nothing)."},
			{Name: "create_hostname_file", Type: config.Bool(), Default: "true",
				Doc: "Create /etc/hostname when it does not exist; when false the name is set for this boot only."},
		},
	}
}

// Wanted: the IMDS name is set without any key, unless preserve_hostname.
func (SetHostname) Wanted(cfg *config.CloudConfig) bool { return !preserved(cfg) }

func (SetHostname) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	p, err := prepare(env, cfg)
	if err != nil || p == nil {
		return err
	}
	prev, ok, err := loadRecord(env.Root)
	if err != nil {
		return err
	}
	// As cloud-init: the same names as last set are not set again, so a
	// name changed by hand since survives a re-run.
	if ok && prev.Hostname == p.n.Hostname && prev.FQDN == p.n.FQDN && prev.Applied == p.n.Applied {
		p.log.Info("hostname unchanged since ec2init last set it", zap.String("hostname", p.n.Applied))
		return nil
	}
	if err := apply(ctx, env, p.n.Applied, p.s); err != nil {
		return fmt.Errorf("set_hostname %q: %w", p.n.Applied, err)
	}
	if err := saveRecord(env.Root, p.n); err != nil {
		return err
	}
	p.log.Info("hostname set", zap.String("hostname", p.n.Applied), zap.String("fqdn", p.n.FQDN), zap.String("from", p.n.hostKey))
	return nil
}

// UpdateHostname keeps the hostname current at every boot (cloud-init's
// update_hostname): it changes /etc/hostname only while it still holds the
// name ec2init set last, so a name changed by hand stays.
type UpdateHostname struct{}

func (UpdateHostname) Name() string                 { return "update_hostname" }
func (UpdateHostname) Stage() modules.Stage         { return modules.StageNetwork }
func (UpdateHostname) Frequency() modules.Frequency { return state.Always }
func (UpdateHostname) Schema() modules.Schema {
	return modules.Schema{Doc: "Keep the hostname current at every boot unless it was changed by hand (reads set_hostname's keys)."}
}

// Wanted: it has work at every boot unless preserve_hostname.
func (UpdateHostname) Wanted(cfg *config.CloudConfig) bool { return !preserved(cfg) }

func (UpdateHostname) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	p, err := prepare(env, cfg)
	if err != nil || p == nil {
		return err
	}
	prev, hasPrev, err := loadRecord(env.Root)
	if err != nil {
		return err
	}
	current, _, err := systemHostname(env.Root)
	if err != nil {
		return err
	}
	switch {
	case current == p.n.Applied:
		if !hasPrev || prev.Applied != p.n.Applied {
			return saveRecord(env.Root, p.n)
		}
		return nil
	case current != "" && !hasPrev:
		p.log.Info("hostname was not set by ec2init; left as it is", zap.String("hostname", current))
		return nil
	case current != "" && current != prev.Applied:
		p.log.Info("hostname changed since ec2init set it; assuming it is maintained by hand",
			zap.String("hostname", current), zap.String("set_by_ec2init", prev.Applied))
		return nil
	}
	if err := apply(ctx, env, p.n.Applied, p.s); err != nil {
		return fmt.Errorf("update_hostname %q: %w", p.n.Applied, err)
	}
	if err := saveRecord(env.Root, p.n); err != nil {
		return err
	}
	p.log.Info("hostname updated", zap.String("hostname", p.n.Applied), zap.String("was", current))
	return nil
}

// prepared is what both hostname modules start from; nil when there is
// nothing to do.
type prepared struct {
	s   settings
	n   names
	log *zap.Logger
}

func prepare(env *modules.Env, cfg *config.CloudConfig) (*prepared, error) {
	log := env.Logger()
	d, err := distro.Detect(env.Root)
	if err != nil {
		return nil, err
	}
	s, err := readSettings(cfg, d)
	if err != nil {
		return nil, err
	}
	if s.Preserve {
		log.Info("preserve_hostname is set; hostname left as it is")
		return nil, nil
	}
	n, ok := resolve(instanceOf(env), s)
	if !ok {
		log.Warn("no hostname: IMDS gave no local-hostname and cloud-config sets neither hostname nor fqdn")
		return nil, nil
	}
	if err := n.check(); err != nil {
		return nil, err
	}
	return &prepared{s: s, n: n, log: log}, nil
}

// preserved reads preserve_hostname; a malformed value counts as false
// here, and Run reports it.
func preserved(cfg *config.CloudConfig) bool {
	b, _ := boolean(cfg, "preserve_hostname", false)
	return b
}
