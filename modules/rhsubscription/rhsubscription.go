// Package rhsubscription implements cloud-init's rh_subscription module:
// a RHEL instance registered with Red Hat Subscription Management by
// subscription-manager, with an activation key and org or a username
// and password, then subscriptions attached, pools added, repositories
// enabled or disabled and the release set, as cloud-init does it.
//
// The password and the activation key are secrets: they are passed to
// subscription-manager in argv as cloud-init passes them (it has no other
// non-interactive way to take them), and are never logged, never in an
// error or the status; the tool's output is scrubbed of them before any
// of it is quoted.
package rhsubscription

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/command"
)

// Tool is the command that does the work.
const Tool = "subscription-manager"

const cmdTimeout = 10 * time.Minute

// packageCaches are deleted after release_version is set, as cloud-init
// does: their metadata is of the old release.
var packageCaches = []string{"/var/cache/dnf", "/var/cache/yum"}

// RHSubscription registers the instance once per instance.
type RHSubscription struct{}

func (RHSubscription) Name() string                 { return "rh_subscription" }
func (RHSubscription) Stage() modules.Stage         { return modules.StageConfig }
func (RHSubscription) Frequency() modules.Frequency { return state.PerInstance }

// keys are the settings, each under its name and its deprecated
// hyphenated one.
var keys = []struct{ name, old, doc string }{
	{"activation_key", "activation-key", "The activation key; with org. Not with username and password."},
	{"auto_attach", "auto-attach", "true attaches subscriptions automatically (subscription-manager attach --auto)."},
	{"service_level", "service-level", "The service level auto_attach asks for; needs auto_attach: true."},
	{"add_pool", "add-pool", "Pool ids attached, those available and not already consumed."},
	{"enable_repo", "enable-repo", "Repository ids enabled (those disabled now)."},
	{"disable_repo", "disable-repo", "Repository ids disabled (those enabled now)."},
	{"rhsm_baseurl", "rhsm-baseurl", "The content base URL (--baseurl)."},
	{"server_hostname", "server-hostname", "The subscription server (--serverurl)."},
}

func typeOf(name string) *config.Type {
	switch name {
	case "auto_attach":
		return config.Bool()
	case "add_pool", "enable_repo", "disable_repo":
		return config.ListOf(config.String())
	}
	return config.String()
}

func (RHSubscription) Schema() modules.Schema {
	fields := []config.Field{
		{Name: "username", Type: config.String(), Doc: "The Red Hat account; with password."},
		{Name: "password", Type: config.String(), Doc: "The account's password (never logged)."},
		{Name: "org", Type: config.OneOf(config.String(), config.Int()), Doc: "The organization; with activation_key."},
		{Name: "release_version", Type: config.String(), Doc: "subscription-manager release --set, then the dnf/yum caches are deleted."},
	}
	for _, k := range keys {
		fields = append(fields,
			config.Field{Name: k.name, Type: typeOf(k.name), Doc: k.doc},
			config.Field{Name: k.old, Type: typeOf(k.name), Doc: "Deprecated: " + k.name + "."})
	}
	return modules.Schema{
		Doc:  "Register RHEL with Red Hat Subscription Management (subscription-manager): attach, pools, repositories, release.",
		Keys: []config.Field{{Name: "rh_subscription", Type: config.Object(fields...), Doc: "How to register."}},
	}
}

// settings are the values, the hyphenated spellings folded in.
type settings struct {
	Username, Password, ActivationKey, Org   string
	ServiceLevel, BaseURL, ServerHostname    string
	ReleaseVersion                           string
	AutoAttach                               bool
	Pools, EnableRepos, DisableRepos         []string
	hasServiceLevel, hasPools, hasActivation bool
}

func load(cfg *config.CloudConfig) (settings, bool, error) {
	var s settings
	var raw map[string]yaml.Node
	if ok, err := cfg.Decode("rh_subscription", &raw); err != nil || !ok {
		return s, ok, err
	}
	get := func(name, old string, dst any) (bool, error) {
		n, ok := raw[name]
		if !ok && old != "" {
			n, ok = raw[old]
			name = old
		}
		if !ok || n.Tag == "!!null" {
			return false, nil
		}
		if err := n.Decode(dst); err != nil {
			return true, fmt.Errorf("rh_subscription.%s: line %d: %w", name, n.Line, err)
		}
		return true, nil
	}
	var errs []error
	str := func(name, old string, dst *string) bool {
		ok, err := get(name, old, dst)
		errs = append(errs, err)
		return ok
	}
	str("username", "", &s.Username)
	str("password", "", &s.Password)
	str("org", "", &s.Org)
	str("release_version", "", &s.ReleaseVersion)
	s.hasActivation = str("activation_key", "activation-key", &s.ActivationKey)
	s.hasServiceLevel = str("service_level", "service-level", &s.ServiceLevel)
	str("rhsm_baseurl", "rhsm-baseurl", &s.BaseURL)
	str("server_hostname", "server-hostname", &s.ServerHostname)
	_, err := get("auto_attach", "auto-attach", &s.AutoAttach)
	errs = append(errs, err)
	s.hasPools, err = get("add_pool", "add-pool", &s.Pools)
	errs = append(errs, err)
	_, err = get("enable_repo", "enable-repo", &s.EnableRepos)
	errs = append(errs, err)
	_, err = get("disable_repo", "disable-repo", &s.DisableRepos)
	errs = append(errs, err)
	return s, true, errors.Join(errs...)
}

// configured is cloud-init's test: credentials of one kind or the other.
func (s settings) configured() bool {
	return (s.Username != "" && s.Password != "") || s.ActivationKey != ""
}

// scrub removes the secrets from text the tool printed.
func (s settings) scrub(text string) string {
	for _, secret := range []string{s.Password, s.ActivationKey} {
		if secret != "" {
			text = strings.ReplaceAll(text, secret, "<redacted>")
		}
	}
	return text
}

func (RHSubscription) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	s, ok, err := load(cfg)
	if err != nil || !ok {
		return err
	}
	log := env.Logger()
	if !s.configured() {
		log.Warn("rh_subscription: neither username and password nor activation_key; not registered")
		return nil
	}
	sm := manager{env: env, s: s}
	if _, err := sm.run(ctx, "identity"); err == nil {
		log.Info("rh_subscription: already registered")
		return nil
	}
	if s.hasServiceLevel && !s.AutoAttach {
		return errors.New("rh_subscription.service_level needs auto_attach: true")
	}
	if err := sm.register(ctx); err != nil {
		return err
	}
	if s.AutoAttach {
		args := []string{"attach", "--auto"}
		if s.hasServiceLevel {
			args = append(args, "--servicelevel="+s.ServiceLevel)
		}
		if _, err := sm.run(ctx, args...); err != nil {
			return err
		}
	}
	if s.hasPools {
		if err := sm.addPools(ctx); err != nil {
			return err
		}
	}
	if err := sm.updateRepos(ctx); err != nil {
		return err
	}
	if s.ReleaseVersion != "" {
		if _, err := sm.run(ctx, "release", "--set="+s.ReleaseVersion); err != nil {
			return err
		}
		for _, dir := range packageCaches {
			if err := removeTree(env.Root, dir); err != nil {
				return fmt.Errorf("delete the package cache: %w", err)
			}
		}
	}
	log.Info("rh_subscription: registered")
	return nil
}

// manager runs subscription-manager.
type manager struct {
	env *modules.Env
	s   settings
}

// run runs subscription-manager with args and returns its output; a
// failure is an error naming the subcommand only (never its other
// arguments: they hold the secrets), with the output's first line,
// scrubbed.
func (m manager) run(ctx context.Context, args ...string) (string, error) {
	out, res, err := command.Output(ctx, m.env.Runner, sys.Cmd{Name: Tool + " " + args[0], Argv: append([]string{Tool}, args...), Timeout: cmdTimeout})
	text := m.s.scrub(out)
	if err != nil {
		if msg := m.s.scrub(err.Error()); msg != err.Error() {
			return text, errors.New(msg)
		}
		return text, err
	}
	if res.ExitCode != 0 {
		return text, fmt.Errorf("%s %s: %w", Tool, args[0], command.ExitError(res.ExitCode, text))
	}
	return text, nil
}

// register registers by activation key and org, else by username and
// password, with cloud-init's arguments.
func (m manager) register(ctx context.Context) error {
	s := m.s
	var args []string
	switch {
	case s.ActivationKey != "" && s.Org != "":
		args = []string{"register", "--activationkey=" + s.ActivationKey, "--org=" + s.Org}
	case s.Username != "" && s.Password != "":
		args = []string{"register", "--username=" + s.Username, "--password=" + s.Password}
	default:
		return errors.New("rh_subscription: activation_key needs org (or give username and password)")
	}
	if s.BaseURL != "" {
		args = append(args, "--baseurl="+s.BaseURL)
	}
	if s.ServerHostname != "" {
		args = append(args, "--serverurl="+s.ServerHostname)
	}
	out, err := m.run(ctx, args...)
	if err != nil {
		return err
	}
	if _, id, ok := strings.Cut(out, "ID: "); ok {
		id, _, _ = strings.Cut(id, "\n")
		m.env.Logger().Info("rh_subscription: registered", zap.String("id", strings.TrimSpace(id)))
	}
	return nil
}

// addPools attaches the pools that are available and not consumed yet.
// None of them attachable is a failure, as in cloud-init.
func (m manager) addPools(ctx context.Context) error {
	if len(m.s.Pools) == 0 {
		return nil
	}
	available, err := m.list(ctx, "list", "--available", "--pool-only")
	if err != nil {
		return err
	}
	consumed, err := m.list(ctx, "list", "--consumed", "--pool-only")
	if err != nil {
		return err
	}
	args := []string{"attach"}
	for _, p := range m.s.Pools {
		if slices.Contains(available, p) && !slices.Contains(consumed, p) {
			args = append(args, "--pool="+p)
		} else {
			m.env.Logger().Warn("rh_subscription: pool not available", zap.String("pool", p))
		}
	}
	if len(args) == 1 {
		return fmt.Errorf("rh_subscription.add_pool: none of %s is available", strings.Join(m.s.Pools, ", "))
	}
	_, err = m.run(ctx, args...)
	return err
}

func (m manager) list(ctx context.Context, args ...string) ([]string, error) {
	out, err := m.run(ctx, args...)
	if err != nil {
		return nil, err
	}
	return strings.Fields(out), nil
}

// updateRepos enables the listed repositories that are disabled and
// disables those that are enabled, in one call.
func (m manager) updateRepos(ctx context.Context) error {
	s := m.s
	if len(s.EnableRepos) == 0 && len(s.DisableRepos) == 0 {
		return nil
	}
	enabled, err := m.repos(ctx, "--list-enabled")
	if err != nil {
		return err
	}
	disabled, err := m.repos(ctx, "--list-disabled")
	if err != nil {
		return err
	}
	log := m.env.Logger()
	args := []string{"repos"}
	for _, r := range s.DisableRepos {
		if slices.Contains(enabled, r) {
			args = append(args, "--disable="+r)
		} else {
			log.Debug("rh_subscription: repository not enabled; not disabled", zap.String("repo", r))
		}
	}
	for _, r := range s.EnableRepos {
		switch {
		case slices.Contains(disabled, r):
			args = append(args, "--enable="+r)
		case slices.Contains(enabled, r):
			log.Debug("rh_subscription: repository already enabled", zap.String("repo", r))
		default:
			log.Warn("rh_subscription: repository does not appear to exist", zap.String("repo", r))
		}
	}
	if len(args) == 1 {
		// cloud-init runs a bare "repos" here, which changes nothing.
		return nil
	}
	_, err = m.run(ctx, args...)
	return err
}

// repos lists the ids of `subscription-manager repos <flag>`.
func (m manager) repos(ctx context.Context, flag string) ([]string, error) {
	out, err := m.run(ctx, "repos", flag)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, line := range strings.Split(out, "\n") {
		if _, id, ok := strings.Cut(line, "Repo ID:"); ok {
			ids = append(ids, strings.TrimSpace(id))
		}
	}
	return ids, nil
}

// removeTree deletes dir and what it holds through the root; a missing
// dir is nothing to do. A symlink is removed, never followed.
func removeTree(root *sys.Root, dir string) error {
	entries, err := root.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := path.Join(dir, e.Name())
		if e.IsDir() {
			if err := removeTree(root, p); err != nil {
				return err
			}
			continue
		}
		if err := root.Remove(p); err != nil {
			return err
		}
	}
	return root.Remove(dir)
}

// Check is for the schema: a key given under both spellings, an integer
// org (deprecated), settings that cannot register or that cloud-init
// refuses (service_level without auto_attach).
func (RHSubscription) Check(source, key string, v *yaml.Node) []config.Diagnostic {
	if v.Kind != yaml.MappingNode {
		return nil
	}
	var out []config.Diagnostic
	add := func(n *yaml.Node, p string, sev config.Severity, msg string) {
		out = append(out, config.Diagnostic{Source: source, Line: n.Line, Column: n.Column, Path: p, Severity: sev, Message: msg})
	}
	at := map[string]*yaml.Node{}
	for i := 0; i+1 < len(v.Content); i += 2 {
		at[v.Content[i].Value] = v.Content[i+1]
	}
	set := func(name string) *yaml.Node {
		if n := at[name]; n != nil && n.Tag != "!!null" {
			return n
		}
		return nil
	}
	either := func(name, old string) *yaml.Node {
		if n := set(name); n != nil {
			return n
		}
		return set(old)
	}
	for _, k := range keys {
		if a, b := at[k.name], at[k.old]; a != nil && b != nil {
			add(b, key+"."+k.old, config.SeverityError, "given with "+k.name+": keep one")
		} else if b != nil {
			add(b, key+"."+k.old, config.SeverityWarning, "deprecated: use "+k.name)
		}
	}
	if org := set("org"); org != nil && org.Tag == "!!int" {
		add(org, key+".org", config.SeverityWarning, "an integer org is deprecated: quote it")
	}
	user, pass, act, org := set("username"), set("password"), either("activation_key", "activation-key"), set("org")
	switch {
	case act != nil && org == nil && (user == nil || pass == nil):
		add(act, key, config.SeverityError, "activation_key needs org")
	case act == nil && (user == nil) != (pass == nil):
		add(v, key, config.SeverityError, "username and password go together")
	case act == nil && user == nil:
		add(v, key, config.SeverityWarning, "neither username and password nor activation_key: nothing is registered")
	}
	if sl := either("service_level", "service-level"); sl != nil {
		aa := either("auto_attach", "auto-attach")
		if b, err := parseBool(aa); aa == nil || err != nil || !b {
			add(sl, key+".service_level", config.SeverityError, "needs auto_attach: true")
		}
	}
	return out
}

func parseBool(n *yaml.Node) (bool, error) {
	if n == nil {
		return false, errors.New("unset")
	}
	return config.ParseBool(n.Value)
}
