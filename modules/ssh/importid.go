package ssh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/accounts"
)

// ErrNoSSHImportID is the failure when ssh_import_id is asked for and the
// image has no ssh-import-id: the boot is degraded, saying what is missing.
var ErrNoSSHImportID = errors.New("ssh-import-id not installed (needs network to Launchpad/GitHub)")

// importRetryDelay is cloud-init's pause before its one retry.
const importRetryDelay = 500 * time.Millisecond

// SSHImportID is cloud-init's ssh_import_id: public keys from Launchpad or
// GitHub (lp:name, gh:name) added to a user's authorized_keys by the
// image's ssh-import-id, run as that user. The top-level key is the
// default user's; a users entry's ssh_import_id is that user's.
type SSHImportID struct{}

func (SSHImportID) Name() string                 { return "ssh_import_id" }
func (SSHImportID) Stage() modules.Stage         { return modules.StageConfig }
func (SSHImportID) Frequency() modules.Frequency { return state.PerInstance }

func (SSHImportID) Schema() modules.Schema {
	return modules.Schema{
		Doc: "Import public keys from Launchpad or GitHub (lp:id, gh:id) with ssh-import-id, run as the user; the top-level key is the default user's, users[].ssh_import_id each user's.",
		Keys: []config.Field{
			{Name: "ssh_import_id", Type: config.OneOf(config.ListOf(config.String()), config.String()),
				Doc: "Ids for the default user (lp:name, gh:name)."},
		},
	}
}

// Wanted: a users entry may ask for ssh_import_id without the top-level key.
func (SSHImportID) Wanted(cfg *config.CloudConfig) bool {
	if cfg.Has("ssh_import_id") {
		return true
	}
	val, ok := cfg.Get("users")
	if !ok || val.Node.Kind != yaml.SequenceNode {
		return false
	}
	for _, item := range val.Node.Content {
		if _, ok := (accounts.ListedUser{Entry: item}).Field("ssh_import_id"); ok {
			return true
		}
	}
	return false
}

// importIDs reads a list of ids, or "a, b" as cloud-init's uniq_merge
// splits a string; duplicates dropped.
func importIDs(n *yaml.Node) ([]string, error) {
	var raw []string
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return nil, nil
		}
		raw = accounts.SplitNames(n.Value)
	case yaml.SequenceNode:
		for _, item := range n.Content {
			if item.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("line %d: expected an id", item.Line)
			}
			raw = append(raw, accounts.SplitNames(item.Value)...)
		}
	default:
		return nil, fmt.Errorf("line %d: expected a list of ids", n.Line)
	}
	var out []string
	for _, id := range raw {
		if !contains(out, id) {
			out = append(out, id)
		}
	}
	return out, nil
}

func (SSHImportID) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	r := &run{env: env, log: env.Logger()}
	type job struct {
		user string
		ids  []string
	}
	var jobs []job
	var errs []error
	for _, u := range accounts.ListUsers(cfg, env.Root, env.System.DefaultUser) {
		var n *yaml.Node
		where := "users: " + u.Name + ": ssh_import_id"
		if u.Default {
			if v, ok := cfg.Get("ssh_import_id"); ok {
				n, where = v.Node, fmt.Sprintf("%s:%d: ssh_import_id", v.Source, v.KeyLine)
			}
		} else if v, ok := u.Field("ssh_import_id"); ok {
			n = v
		}
		if n == nil {
			continue
		}
		ids, err := importIDs(n)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		if len(ids) > 0 {
			jobs = append(jobs, job{u.Name, ids})
		}
	}
	if v, ok := cfg.Get("ssh_import_id"); ok && !accounts.DefaultUserEnabled(cfg) {
		r.log.Warn("ssh_import_id: no default user to import for", zap.String("at", fmt.Sprintf("%s:%d", v.Source, v.KeyLine)))
	}
	if len(jobs) == 0 {
		return errors.Join(errs...)
	}
	if !r.haveTool("ssh-import-id") {
		return errors.Join(append(errs, ErrNoSSHImportID)...)
	}
	for _, j := range jobs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := r.importFor(ctx, j.user, j.ids); err != nil {
			errs = append(errs, fmt.Errorf("user %s: %w", j.user, err))
			continue
		}
		r.log.Info("ssh-import-id done", zap.String("user", j.user), zap.Strings("ids", j.ids))
	}
	return errors.Join(errs...)
}

// importFor runs ssh-import-id for user. On the host (or chrooted into the
// root) it runs as the user through sudo (else doas), as cloud-init does,
// and writes the user's own ~/.ssh/authorized_keys. Under a --root prefix
// the user is the image's, unknown to the host's sudo: ssh-import-id then
// writes a file of the agent's, whose keys are merged into the user's
// authorized_keys as every other key is (owner, modes, no symlinks).
func (r *run) importFor(ctx context.Context, user string, ids []string) error {
	acct, found, err := accounts.LookupAccount(r.env.Root, user)
	if err != nil {
		return err
	}
	if !found {
		return errors.New("no such user")
	}
	if r.env.Root.IsHost() || r.env.Runner.Chroot {
		argv, err := r.asUser(user, ids)
		if err != nil {
			return err
		}
		return r.runImport(ctx, argv)
	}
	tmp, err := os.MkdirTemp("", "ec2init-import-id-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "keys")
	if err := r.runImport(ctx, append([]string{"ssh-import-id", "-o", out}, ids...)); err != nil {
		return err
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return fmt.Errorf("ssh-import-id wrote no keys: %w", err)
	}
	var keys []string
	for _, line := range strings.Split(string(b), "\n") {
		if _, ok := accounts.KeyID(line); ok {
			keys = append(keys, line)
		}
	}
	return accounts.UpdateAuthorizedKeys(r.env.Root, acct, keys, nil)
}

// asUser is cloud-init's command line for running ssh-import-id as user:
// sudo keeping https_proxy, else doas.
func (r *run) asUser(user string, ids []string) ([]string, error) {
	switch {
	case r.haveTool("sudo"):
		return append([]string{"sudo", "--preserve-env=https_proxy", "-Hu", user, "ssh-import-id"}, ids...), nil
	case r.haveTool("doas"):
		return append([]string{"doas", "-u", user, "ssh-import-id"}, ids...), nil
	}
	return nil, errors.New("neither sudo nor doas is installed to run ssh-import-id as the user")
}

// runImport runs argv, once more after a pause if it fails, as cloud-init
// does (Launchpad and GitHub have their moments).
func (r *run) runImport(ctx context.Context, argv []string) error {
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(importRetryDelay):
			}
		}
		var out bytes.Buffer
		res, rerr := r.env.Runner.Run(ctx, sys.Cmd{Name: "ssh_import_id: ssh-import-id", Argv: argv, Output: &out,
			Timeout: 5 * time.Minute})
		switch {
		case rerr != nil:
			err = rerr
		case res.ExitCode != 0:
			err = fmt.Errorf("ssh-import-id exited %d: %s", res.ExitCode, firstLine(out.String()))
		default:
			return nil
		}
	}
	return err
}
