// Package ssh implements cloud-init's ssh module (host keys renewed on a
// new instance, or installed from ssh_keys; the instance's key pair from
// IMDS and ssh_authorized_keys installed for the default user and, behind
// disable_root's message, for root) with set_passwords' ssh_pwauth, and the
// modules that only concern SSH: keys_to_console and
// ssh_authkey_fingerprints (console output), ssh_import_id.
package ssh

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"go.uber.org/zap"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/accounts"
)

// DefaultDisableRootOpts is cloud-init's disable_root_opts: root's keys
// only print where to log in instead. $USER is the default user,
// $DISABLE_USER root.
const DefaultDisableRootOpts = accounts.DisableUserOpts

// Previous-instance key policies.
const (
	// RemovePreviousKeys drops the keys ec2init installed from IMDS for an
	// earlier instance: an AMI made from instance A does not let A's key
	// pair into instance B. Keys added by other means stay.
	RemovePreviousKeys = "remove"
	// KeepPreviousKeys leaves them.
	KeepPreviousKeys = "keep"
)

// DefaultPreviousInstanceKeys is the policy until config.System carries
// ssh.keep_previous_instance_keys (the cloud-config is the wrong place: it
// belongs to whoever launches, not to who bakes the AMI).
const DefaultPreviousInstanceKeys = RemovePreviousKeys

// KeysStateFile records the keys ec2init installed from IMDS, per user, so
// the next instance can tell them from keys added by hand.
const KeysStateFile = state.StateDir + "/ssh-imds-keys.json"

var defaultKeyTypes = []string{"rsa", "ecdsa", "ed25519"}

// SSH is the ssh module: network stage, once per instance, and always
// wanted, since every new instance must get its key pair from IMDS.
type SSH struct {
	// PreviousInstanceKeys is RemovePreviousKeys or KeepPreviousKeys;
	// empty means DefaultPreviousInstanceKeys.
	PreviousInstanceKeys string
}

func (SSH) Name() string                 { return "ssh" }
func (SSH) Stage() modules.Stage         { return modules.StageNetwork }
func (SSH) Frequency() modules.Frequency { return state.PerInstance }

// Wanted: the IMDS key pair and new host keys are due on every new
// instance, whatever the cloud-config says.
func (SSH) Wanted(*config.CloudConfig) bool { return true }

func (SSH) Schema() modules.Schema {
	return modules.Schema{
		Doc: "Install the instance's key pair and ssh_authorized_keys for the default user, renew host keys on a new instance (or install those of ssh_keys), set sshd's password authentication.",
		Keys: []config.Field{
			{Name: "ssh_authorized_keys", Type: config.ListOf(config.String()),
				Doc: "Public keys for the default user (and root, see disable_root)."},
			{Name: "allow_public_ssh_keys", Type: config.Bool(), Default: "true",
				Doc: "Install the instance's key pair from IMDS."},
			{Name: "disable_root", Type: config.Bool(), Default: "true",
				Doc: "Root's keys only print a message naming the default user."},
			{Name: "disable_root_opts", Type: config.String(), Default: "cloud-init's",
				Doc: "authorized_keys options put before root's keys; $USER is the default user, $DISABLE_USER root."},
			{Name: "ssh_pwauth", Type: config.OneOf(config.Bool(), config.Enum("unchanged")), Default: "unchanged",
				Doc: "sshd PasswordAuthentication: true, false or unchanged (cloud-init's set_passwords reads it; ec2init sets it here, before sshd starts), in " + DropIn + " when sshd_config includes sshd_config.d, else in sshd_config."},
			{Name: "ssh_deletekeys", Type: config.Bool(), Default: "true",
				Doc: "On a new instance, delete the host keys the image came with."},
			{Name: "ssh_genkeytypes", Type: config.OneOf(config.ListOf(config.Enum("rsa", "ecdsa", "ed25519", "dsa")), config.Null()), Default: "[rsa, ecdsa, ed25519]",
				Doc: "Host key types generated on a new instance when missing (not used with ssh_keys)."},
			{Name: "ssh_keys", Type: sshKeysType(),
				Doc: "Host keys to install instead of generating them: {rsa,ecdsa,ed25519}_{private,public,certificate}. Private keys 0600, never logged; a private key without its public one gets it from ssh-keygen -y; a certificate adds a HostCertificate line."},
			{Name: "ssh_quiet_keygen", Type: config.Bool(), Default: "false",
				Doc: "Keep ssh-keygen's output (fingerprint and randomart of new host keys) off the console."},
			{Name: "ssh_publish_hostkeys", Type: config.Object(
				config.Field{Name: "enabled", Type: config.Bool(), Default: "true", Doc: "Publish the host keys to the datasource."},
				config.Field{Name: "blacklist", Type: config.ListOf(config.String()), Doc: "Key types (rsa, ...) not published."}),
				Doc: "Accepted for cloud-init's user data; EC2 has nowhere to publish host keys to (cloud-init's Ec2 datasource publishes none either): they reach the console through keys_to_console."},
		},
	}
}

// settings are the module's keys, decoded with cloud-init's defaults.
type settings struct {
	authorizedKeys   []string
	allowPublicKeys  bool
	disableRoot      bool
	disableRootOpts  string
	pwauth           string // "yes", "no" or "" (unchanged)
	deleteKeys       bool
	genKeyTypes      []string
	quietKeygen      bool
	publish          bool
	authorizedKeysAt string // source:line of ssh_authorized_keys
	// given are ssh_keys' entries in their order (nil without the key);
	// givenAt is where ssh_keys stands.
	given   []givenKey
	givenAt string
}

func decode(cfg *config.CloudConfig) (settings, error) {
	s := settings{allowPublicKeys: true, disableRoot: true, disableRootOpts: DefaultDisableRootOpts,
		deleteKeys: true, genKeyTypes: defaultKeyTypes, publish: true}
	var errs []error
	get := func(key string, v any) {
		if _, err := cfg.Decode(key, v); err != nil {
			errs = append(errs, err)
		}
	}
	get("ssh_authorized_keys", &s.authorizedKeys)
	get("allow_public_ssh_keys", &s.allowPublicKeys)
	get("disable_root", &s.disableRoot)
	get("disable_root_opts", &s.disableRootOpts)
	get("ssh_deletekeys", &s.deleteKeys)
	get("ssh_genkeytypes", &s.genKeyTypes)
	get("ssh_quiet_keygen", &s.quietKeygen)
	var publish struct {
		Enabled *bool `yaml:"enabled"`
	}
	get("ssh_publish_hostkeys", &publish)
	if publish.Enabled != nil {
		s.publish = *publish.Enabled
	}
	if v, ok := cfg.Get("ssh_keys"); ok {
		s.givenAt = fmt.Sprintf("%s:%d", v.Source, v.KeyLine)
		given, err := decodeGivenKeys(v.Node, s.givenAt)
		if err != nil {
			errs = append(errs, err)
		}
		s.given = given
		if s.given == nil {
			s.given = []givenKey{}
		}
	}
	if v, ok := cfg.Get("ssh_pwauth"); ok {
		if v.Node.Value != "unchanged" {
			b, err := config.ParseBool(v.Node.Value)
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("%s:%d: ssh_pwauth: expected true, false or unchanged", v.Source, v.KeyLine))
			case b:
				s.pwauth = "yes"
			default:
				s.pwauth = "no"
			}
		}
	}
	if v, ok := cfg.Get("ssh_authorized_keys"); ok {
		s.authorizedKeysAt = fmt.Sprintf("%s:%d", v.Source, v.KeyLine)
	}
	return s, errors.Join(errs...)
}

// run is one Run.
type run struct {
	env      *modules.Env
	log      *zap.Logger
	failures []string
	// certOptions are the HostCertificate lines of ssh_keys' certificates.
	certOptions []sshdOption
	// consoleMu keeps the parallel keygens' reports whole.
	consoleMu sync.Mutex
}

func (r *run) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.failures = append(r.failures, msg)
	r.log.Warn(msg)
}

func (m SSH) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	if !accounts.HasAccounts(env.Root) {
		// A bare --root (a test, the demo): no accounts, no sshd to key.
		env.Logger().Info("no /etc/passwd under the root: ssh keys skipped")
		return nil
	}
	r := &run{env: env, log: env.Logger()}
	s, err := decode(cfg)
	if err != nil {
		r.fail("%v", err)
	}
	// Host keys belong to an instance: renewed when the instance is new
	// (or when a renewal for this instance was interrupted), never on a
	// reboot or a re-run of the module, which only make the missing ones.
	if renew, why := r.renewHostKeys(); renew {
		r.log.Info("renewing host keys", zap.String("why", why))
		r.hostKeys(ctx, s, true)
	} else {
		r.log.Info("same instance: host keys kept")
		r.hostKeys(ctx, s, false)
	}
	if s.publish && cfg.Has("ssh_publish_hostkeys") {
		r.log.Info("ssh_publish_hostkeys: EC2 has no place to publish host keys to; they are on the console (keys_to_console)")
	}
	policy := m.PreviousInstanceKeys
	if policy == "" {
		policy = env.System.SSH.KeepPreviousInstanceKeys
	}
	if policy == "" {
		policy = DefaultPreviousInstanceKeys
	}
	r.authorizedKeys(cfg, s, policy)
	var opts []sshdOption
	if s.pwauth != "" {
		opts = append(opts, sshdOption{Keyword: "PasswordAuthentication", Value: s.pwauth})
	}
	opts = append(opts, r.certOptions...)
	if file, err := setSSHDOptions(env.Root, opts, r.log); err != nil {
		r.fail("sshd settings: %v", err)
	} else if file != "" {
		r.log.Info("sshd settings written", zap.String("file", file), zap.Int("settings", len(opts)))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(r.failures) > 0 {
		return errors.New(strings.Join(r.failures, "; "))
	}
	return nil
}

// cmdPath is host path p as a command run by the env's runner sees it.
func (r *run) cmdPath(p string) (string, error) {
	if r.env.Runner.Chroot && !r.env.Root.IsHost() {
		return p, nil
	}
	return r.env.Root.Path(p)
}

// haveTool reports whether the runner will find name in its PATH:
// on the host, or under the root when it chroots.
func (r *run) haveTool(name string) bool {
	path := sys.DefaultPath
	if p := r.env.Runner.Env["PATH"]; p != "" {
		path = p
	}
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, name)
		if r.env.Runner.Chroot && !r.env.Root.IsHost() {
			var err error
			if p, err = r.env.Root.Path(p); err != nil {
				continue
			}
		}
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return true
		}
	}
	return false
}

// HostKeysStateFile records, per instance, whether the host keys' renewal
// finished: a crash between deleting the image's keys and making the last
// new one must not leave the next boot thinking the keys are done.
const HostKeysStateFile = state.StateDir + "/ssh-host-keys.json"

type hostKeysState struct {
	InstanceID string `json:"instance_id"`
	Done       bool   `json:"done"`
}

func (r *run) instanceID() string {
	if r.env.Instance == nil {
		return ""
	}
	return r.env.Instance.InstanceID
}

// renewHostKeys says whether this run renews the host keys: on a new
// instance, and on a run that follows one cut short while renewing them
// for this same instance.
func (r *run) renewHostKeys() (bool, string) {
	if r.env.NewInstance {
		return true, "new instance"
	}
	b, err := r.env.Root.ReadFile(HostKeysStateFile)
	if err != nil {
		return false, ""
	}
	var st hostKeysState
	if err := json.Unmarshal(b, &st); err != nil {
		r.log.Warn("host keys record unreadable", zap.String("file", HostKeysStateFile), zap.Error(err))
		return false, ""
	}
	if id := r.instanceID(); id != "" && st.InstanceID == id && !st.Done {
		return true, "an earlier renewal for this instance did not finish"
	}
	return false, ""
}

func (r *run) saveHostKeysState(done bool) {
	id := r.instanceID()
	if id == "" {
		return
	}
	b, _ := json.Marshal(hostKeysState{InstanceID: id, Done: done})
	if err := r.env.Root.WriteFile(HostKeysStateFile, append(b, '\n'), 0o600, nil); err != nil {
		r.fail("host keys: record %s: %v", HostKeysStateFile, err)
	}
}

// errUnknownKeyType is ssh-keygen refusing a key type it does not know.
var errUnknownKeyType = errors.New("unknown key type")

// keygenTempPrefix names the directories ssh-keygen writes into before its
// files are renamed into /etc/ssh, so no host key is ever seen half made.
const keygenTempPrefix = ".ec2init-keygen-"

// hostKeys makes the host keys of the configured types that are missing.
// With renew it first deletes the image's host keys (ssh_deletekeys) and
// records the renewal as under way until every type is made. Each key is
// made in a temporary directory and renamed into place, the private key
// last; a type whose private or public file is missing or empty counts as
// missing, so a run after a crash at any point finishes the job.
func (r *run) hostKeys(ctx context.Context, s settings, renew bool) {
	root := r.env.Root
	if ok, _ := root.Exists("/etc/ssh"); !ok {
		r.log.Info("no /etc/ssh: OpenSSH is not installed; no host keys generated")
		return
	}
	dir, err := root.Path("/etc/ssh")
	if err != nil {
		r.fail("host keys: %v", err)
		return
	}
	stale, _ := filepath.Glob(filepath.Join(dir, keygenTempPrefix+"*"))
	for _, d := range stale {
		os.RemoveAll(d) // what a crashed run left; never a complete key
	}
	// Start's keys are taken below or never: none outlives this run.
	defer removeStaged(dir)
	if s.given != nil && !hasPrivate(s.given) {
		// cloud-init would install nothing and leave sshd without host
		// keys; ec2init makes them as without ssh_keys.
		r.log.Warn("ssh_keys holds no private key; host keys generated instead", zap.String("at", s.givenAt))
		s.given = nil
	}
	if s.given != nil {
		// ssh_keys replaces generation: the given keys are the instance's,
		// installed when it is new (or its renewal was cut short).
		if !renew {
			r.certOptions = certOptions(s.given)
			return
		}
		r.saveHostKeysState(false)
		if s.deleteKeys {
			r.deleteHostKeys(dir)
		}
		if r.installGivenKeys(ctx, s) && ctx.Err() == nil {
			r.saveHostKeysState(true)
		}
		return
	}
	if !renew && len(r.missingKeys(s.genKeyTypes)) == 0 {
		return
	}
	if len(s.genKeyTypes) > 0 && !r.haveTool("ssh-keygen") {
		if !renew {
			r.log.Warn("host keys missing and ssh-keygen is not installed", zap.Strings("types", r.missingKeys(s.genKeyTypes)))
			return
		}
		// Deleting the image's keys without making new ones would leave
		// sshd unable to start.
		r.fail("host keys: ssh-keygen is not installed; the image's host keys are kept")
		return
	}
	if renew {
		r.saveHostKeysState(false)
	}
	if renew && s.deleteKeys {
		r.deleteHostKeys(dir)
	}
	keysGroup, groupErr := root.LookupOwner(":ssh_keys")
	var gid *int
	if groupErr == nil {
		gid = &keysGroup.GID
	}
	// The types are generated at once: RSA alone takes most of a second,
	// and a first boot waits for all of them before sshd can start.
	type made struct {
		t   string
		err error
	}
	var todo []made
	for _, t := range r.missingKeys(s.genKeyTypes) {
		todo = append(todo, made{t: t})
	}
	var wg sync.WaitGroup
	for i := range todo {
		wg.Add(1)
		go func(m *made) {
			defer wg.Done()
			if tmp, report := r.staged(dir, m.t); tmp != "" {
				m.err = r.install(tmp, m.t, gid, report, s.quietKeygen)
				return
			}
			m.err = r.keygen(ctx, dir, m.t, gid, s.quietKeygen)
		}(&todo[i])
	}
	wg.Wait()
	failed := false
	for _, m := range todo {
		if errors.Is(m.err, exec.ErrNotFound) {
			r.fail("host keys: ssh-keygen is not installed")
			return
		}
		if errors.Is(m.err, errUnknownKeyType) {
			// As cloud-init: a type this OpenSSH no longer makes (dsa) is
			// skipped, not a failure.
			r.log.Info("ssh-keygen does not know the key type; skipped", zap.String("type", m.t))
			continue
		}
		if m.err != nil {
			r.fail("host keys: %v", m.err)
			failed = true
			continue
		}
		r.log.Info("host key generated", zap.String("type", m.t))
	}
	if renew && !failed && ctx.Err() == nil {
		r.saveHostKeysState(true)
	}
}

// deleteHostKeys removes the image's host keys (ssh_deletekeys), with
// their certificates, from dir (/etc/ssh as a real path).
func (r *run) deleteHostKeys(dir string) {
	old, _ := filepath.Glob(filepath.Join(dir, "ssh_host_*key*"))
	for _, f := range old {
		if err := r.env.Root.Remove("/etc/ssh/" + filepath.Base(f)); err != nil {
			r.fail("host keys: %v", err)
		}
	}
	r.log.Info("image host keys deleted", zap.Int("files", len(old)))
}

// missingKeys lists the types among types whose private or public key file
// is missing or empty.
func (r *run) missingKeys(types []string) []string {
	var out []string
	for _, t := range types {
		key := "/etc/ssh/ssh_host_" + t + "_key"
		for _, p := range []string{key, key + ".pub"} {
			if fi, err := r.env.Root.Stat(p); err != nil || !fi.Mode().IsRegular() || fi.Size() == 0 {
				out = append(out, t)
				break
			}
		}
	}
	return out
}

// keygen makes the host key of type t: ssh-keygen writes into a temporary
// directory in dir (/etc/ssh under the root, as a real path), and the files
// are written into /etc/ssh from there. Where the image has the ssh_keys
// group (gid; Amazon Linux, RHEL), the private key is root:ssh_keys 0640,
// as sshd's own keygen makes it. Unless quiet, ssh-keygen's report (the
// new key's fingerprint and randomart) goes to the console, as cloud-init
// prints it.
func (r *run) keygen(ctx context.Context, dir, t string, gid *int, quiet bool) error {
	tmp, err := os.MkdirTemp(dir, keygenTempPrefix+t+"-")
	if err != nil {
		return fmt.Errorf("%s: %w", t, err)
	}
	defer os.RemoveAll(tmp)
	report, err := r.generate(ctx, tmp, t, quiet)
	if err != nil {
		return err
	}
	return r.install(tmp, t, gid, report, quiet)
}

// generate runs ssh-keygen for type t into tmp (a new directory in
// /etc/ssh, as a real path) and returns its report.
func (r *run) generate(ctx context.Context, tmp, t string, quiet bool) (string, error) {
	name := "ssh_host_" + t + "_key"
	p, err := r.cmdPath("/etc/ssh/" + filepath.Base(tmp) + "/" + name)
	if err != nil {
		return "", err
	}
	var out bytes.Buffer
	argv := []string{"ssh-keygen", "-t", t, "-N", "", "-f", p}
	if quiet {
		argv = slices.Insert(argv, 1, "-q")
	}
	res, err := r.env.Runner.Run(ctx, sys.Cmd{Name: "ssh: ssh-keygen " + t,
		Argv: argv, Env: map[string]string{"LANG": "C"}, Output: &out})
	switch {
	case errors.Is(err, exec.ErrNotFound):
		return "", err
	case err != nil:
		return "", fmt.Errorf("%s: %w", t, err)
	case res.ExitCode != 0 && strings.HasPrefix(strings.ToLower(strings.TrimSpace(out.String())), "unknown key"):
		return "", errUnknownKeyType
	case res.ExitCode != 0:
		return "", fmt.Errorf("ssh-keygen -t %s exited %d: %s", t, res.ExitCode, firstLine(out.String()))
	}
	// The report names the temporary directory; the console is told
	// where the key is.
	return strings.ReplaceAll(out.String(), filepath.Dir(p), "/etc/ssh"), nil
}

// install writes the key generate made in tmp into /etc/ssh, and prints
// its report unless quiet.
func (r *run) install(tmp, t string, gid *int, report string, quiet bool) error {
	name := "ssh_host_" + t + "_key"
	if !quiet {
		r.consoleMu.Lock()
		io.WriteString(r.env.ConsoleWriter(), report)
		r.consoleMu.Unlock()
	}
	// Into place through the root's atomic writes (temporary file, fsync,
	// rename; no symlink followed): an old private key of the type goes
	// first, then the public key, then the private one, so a crash between
	// any two steps leaves the type without a private key (made again next
	// run), never a private key that does not match its public one.
	pub, err := os.ReadFile(filepath.Join(tmp, name+".pub"))
	if err != nil {
		return fmt.Errorf("%s: %w", t, err)
	}
	priv, err := os.ReadFile(filepath.Join(tmp, name))
	if err != nil {
		return fmt.Errorf("%s: %w", t, err)
	}
	if err := r.env.Root.Remove("/etc/ssh/" + name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w", t, err)
	}
	if err := r.env.Root.WriteFile("/etc/ssh/"+name+".pub", pub, 0o644, nil); err != nil {
		return fmt.Errorf("%s: %w", t, err)
	}
	if gid != nil {
		err := r.env.Root.WriteFile("/etc/ssh/"+name, priv, 0o640, &sys.Owner{UID: 0, GID: *gid})
		if err == nil {
			return nil
		}
		r.log.Warn("host key: root:ssh_keys 0640 refused; 0600", zap.String("type", t), zap.Error(err))
	}
	if err := r.env.Root.WriteFile("/etc/ssh/"+name, priv, 0o600, nil); err != nil {
		return fmt.Errorf("%s: %w", t, err)
	}
	return nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// defaultUser is the default user's name (the top-level user key's, when
// it renames it), or "" when the cloud-config asks for none (users without
// "default"), as users_groups decides.
func defaultUser(root *sys.Root, override config.DefaultUser, cfg *config.CloudConfig) string {
	return accounts.DefaultUserName(cfg, root, override)
}
