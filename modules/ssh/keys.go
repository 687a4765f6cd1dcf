package ssh

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules/internal/accounts"
)

// keysState is KeysStateFile: which keys (accounts.KeyID: type and blob, no
// options or comment) ec2init installed from IMDS into whose
// authorized_keys, and for which instance.
type keysState struct {
	InstanceID string              `json:"instance_id"`
	Keys       map[string][]string `json:"keys"`
}

func loadKeysState(root *sys.Root) (keysState, error) {
	st := keysState{Keys: map[string][]string{}}
	b, err := root.ReadFile(KeysStateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return keysState{Keys: map[string][]string{}}, fmt.Errorf("%s: %w", KeysStateFile, err)
	}
	if st.Keys == nil {
		st.Keys = map[string][]string{}
	}
	return st, nil
}

func saveKeysState(root *sys.Root, st keysState) error {
	for u, ids := range st.Keys {
		if len(ids) == 0 {
			delete(st.Keys, u)
			continue
		}
		sort.Strings(ids)
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return root.WriteFile(KeysStateFile, append(b, '\n'), 0o600, nil)
}

// imdsKeys returns the instance's key pair(s) from IMDS, one key a line.
func (r *run) imdsKeys() []string {
	if r.env.Instance == nil {
		return nil
	}
	var out []string
	for _, pk := range r.env.Instance.PublicKeys {
		for _, line := range strings.Split(pk.OpenSSHKey, "\n") {
			if _, ok := accounts.KeyID(line); ok {
				out = append(out, strings.TrimSpace(line))
			} else if strings.TrimSpace(line) != "" {
				r.log.Warn("IMDS public key is not an OpenSSH public key; skipped", zap.Int("index", pk.Index), zap.String("name", pk.Name))
			}
		}
	}
	return out
}

// authorizedKeys installs the IMDS keys and ssh_authorized_keys for the
// default user and root (behind disable_root's message), drops the keys
// installed from IMDS for an earlier instance unless policy keeps them, and
// records what came from IMDS.
func (r *run) authorizedKeys(cfg *config.CloudConfig, s settings, policy string) {
	root := r.env.Root
	var imds []string
	if s.allowPublicKeys {
		imds = r.imdsKeys()
	}
	var cfgKeys []string
	var bad []string
	for i, k := range s.authorizedKeys {
		if _, ok := accounts.KeyID(k); ok {
			cfgKeys = append(cfgKeys, strings.TrimSpace(k))
		} else {
			bad = append(bad, strconv.Itoa(i))
		}
	}
	if len(bad) > 0 {
		r.fail("%s: ssh_authorized_keys: items %s are not public keys; skipped", s.authorizedKeysAt, strings.Join(bad, ", "))
	}
	keys := append(append([]string{}, imds...), cfgKeys...)

	prev, err := loadKeysState(root)
	if err != nil {
		// Unreadable: nothing is removed, the file is rewritten below.
		r.fail("previous instance keys: %v", err)
	}
	imdsIDs := ids(imds)
	next := keysState{Keys: map[string][]string{}}
	if r.env.Instance != nil {
		next.InstanceID = r.env.Instance.InstanceID
	}

	// Whom keys go to: the default user, root, and whoever got IMDS keys
	// last time (so stale keys are dropped even if the default changed).
	defUser := defaultUser(root, r.env.System.DefaultUser, cfg)
	targets := map[string][]string{}
	if defUser != "" {
		targets[defUser] = keys
	}
	rootKeys := keys
	if s.disableRoot {
		name := defUser
		if name == "" {
			name = "NONE" // as cloud-init says when there is no default user
		}
		opts := strings.NewReplacer("$USER", name, "$DISABLE_USER", "root").Replace(s.disableRootOpts)
		rootKeys = make([]string, len(keys))
		for i, k := range keys {
			rootKeys[i] = opts + " " + k
		}
	}
	if defUser != "root" {
		targets["root"] = rootKeys
	}
	for u := range prev.Keys {
		if _, ok := targets[u]; !ok {
			targets[u] = nil
		}
	}
	names := make([]string, 0, len(targets))
	for u := range targets {
		names = append(names, u)
	}
	sort.Strings(names)

	for _, u := range names {
		add := targets[u]
		var remove map[string]bool
		if policy != KeepPreviousKeys {
			remove = map[string]bool{}
			for _, id := range prev.Keys[u] {
				if !imdsIDs[id] {
					remove[id] = true
				}
			}
		}
		if u == defUser || len(add) > 0 {
			// Only keys that went to this user come from IMDS here.
			next.Keys[u] = keysOf(imdsIDs)
		}
		if policy == KeepPreviousKeys {
			next.Keys[u] = union(next.Keys[u], prev.Keys[u])
		}
		// As cloud-init, the default user and root get an authorized_keys
		// file (made empty) even when no key is due: sshd and tools that
		// add keys later find ~/.ssh made with the right owner and modes.
		if len(add) == 0 && len(remove) == 0 && u != defUser && u != "root" {
			continue
		}
		acct, found, err := accounts.LookupAccount(root, u)
		switch {
		case err != nil:
			r.fail("authorized keys: user %s: %v", u, err)
		case !found && u == defUser:
			r.fail("authorized keys: default user %s does not exist (did users_groups fail?)", u)
		case !found:
			r.log.Info("user with keys from an earlier instance is gone", zap.String("user", u))
			continue
		default:
			err = accounts.UpdateAuthorizedKeys(root, acct, add, remove)
			if err != nil {
				r.fail("authorized keys: %v", err)
			}
		}
		if err != nil || !found {
			// Whatever was installed before may still be there.
			next.Keys[u] = union(next.Keys[u], prev.Keys[u])
			continue
		}
		r.log.Info("authorized keys installed", zap.String("user", u), zap.Int("keys", len(add)), zap.Int("removed_previous_instance_keys", len(remove)))
	}
	if r.env.Instance == nil && len(prev.Keys) == 0 {
		return
	}
	if err := saveKeysState(root, next); err != nil {
		r.fail("recording keys installed from IMDS: %v", err)
	}
}

func ids(keys []string) map[string]bool {
	out := map[string]bool{}
	for _, k := range keys {
		if id, ok := accounts.KeyID(k); ok {
			out[id] = true
		}
	}
	return out
}

func keysOf(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func union(a, b []string) []string {
	m := map[string]bool{}
	for _, x := range a {
		m[x] = true
	}
	for _, x := range b {
		m[x] = true
	}
	return keysOf(m)
}
