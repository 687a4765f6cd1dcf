package accounts

import (
	"slices"

	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/sys"
)

// ListedUser is one user of the cloud-config's users, as cloud-init
// normalizes it for the modules that act per user (ssh_import_id,
// ssh_authkey_fingerprints).
type ListedUser struct {
	Name string
	// Default is the distribution's default user ("default" in the list).
	Default bool
	// Entry is the user's settings, a mapping (name first).
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

// ListUsers lists the users of cfg as users_groups creates them (see
// NormalizeUsers), each name once, Entry holding the merged settings, but
// in the order the configuration mentions them: the default user where
// "default" stands (users_groups creates it last). Entries left out there
// are left out here: users_groups reports them.
func ListUsers(cfg *config.CloudConfig, root *sys.Root, override config.DefaultUser) []ListedUser {
	users := NormalizeUsers(cfg, root, override).Users
	slices.SortStableFunc(users, func(a, b NormalUser) int { return a.mention - b.mention })
	var out []ListedUser
	for _, u := range users {
		out = append(out, ListedUser{Name: u.Name, Default: u.Default, Entry: u.Fields})
	}
	return out
}
