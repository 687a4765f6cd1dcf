package accounts

import (
	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/sys"
)

// ListedUser is one user of the cloud-config's users list, as cloud-init
// normalizes it for the modules that act per user (ssh_import_id,
// ssh_authkey_fingerprints): in list order, each name once.
type ListedUser struct {
	Name string
	// Default is the distribution's default user ("default" in the list).
	Default bool
	// Entry is the user's mapping in the list; nil for a bare name or the
	// default user.
	Entry *yaml.Node
}

// Field returns the value of key in the user's entry.
func (u ListedUser) Field(key string) (*yaml.Node, bool) {
	if u.Entry == nil || u.Entry.Kind != yaml.MappingNode {
		return nil, false
	}
	for i := 0; i+1 < len(u.Entry.Content); i += 2 {
		if u.Entry.Content[i].Value == key {
			return u.Entry.Content[i+1], true
		}
	}
	return nil, false
}

// True reports whether key is set to a true value in the user's entry.
func (u ListedUser) True(key string) bool {
	v, ok := u.Field(key)
	if !ok || v.Kind != yaml.ScalarNode {
		return false
	}
	b, err := config.ParseBool(v.Value)
	return err == nil && b
}

// ListUsers lists the users of cfg's users key (the default user alone
// without one). Entries that are no user (no name, not a mapping) are
// left out: users_groups reports them.
func ListUsers(cfg *config.CloudConfig, root *sys.Root, override config.DefaultUser) []ListedUser {
	val, ok := cfg.Get("users")
	if !ok {
		return []ListedUser{{Name: DefaultUser(root, override).Name, Default: true}}
	}
	var out []ListedUser
	seen := map[string]bool{}
	add := func(u ListedUser) {
		if u.Name == "" || seen[u.Name] {
			return
		}
		seen[u.Name] = true
		out = append(out, u)
	}
	names := func(s string) {
		for _, name := range SplitNames(s) {
			if name == "default" {
				add(ListedUser{Name: DefaultUser(root, override).Name, Default: true})
			} else {
				add(ListedUser{Name: name})
			}
		}
	}
	switch n := val.Node; n.Kind {
	case yaml.ScalarNode:
		names(n.Value)
	case yaml.SequenceNode:
		for _, item := range n.Content {
			switch item.Kind {
			case yaml.ScalarNode:
				names(item.Value)
			case yaml.MappingNode:
				u := ListedUser{Entry: item}
				if v, ok := u.Field("name"); ok && v.Kind == yaml.ScalarNode {
					u.Name = v.Value
				}
				add(u)
			}
		}
	}
	return out
}
