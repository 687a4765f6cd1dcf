package accounts

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/sys"
)

// NormalUser is one user as cloud-init's users_groups sees it after
// merging the users list, the top-level user key and the distribution's
// default user (ug_util.normalize_users_groups): one entry per name, its
// settings merged from every entry naming it.
type NormalUser struct {
	Name string
	// Default marks the distribution's default user ("default" in users,
	// or the top-level user key).
	Default bool
	// Fields is a mapping of the user's settings, name first. Keys of users
	// entries are canonical (lock-passwd is lock_passwd); values are the
	// configuration's own nodes, so their lines stay.
	Fields *yaml.Node
	// Where names the user's first entry in messages: "users[2]",
	// "users.bob", "users", "user", or "default user" when nothing names
	// it.
	Where string
	// Source and Line locate that entry (Line 0: none).
	Source string
	Line   int

	// mention is the place of the user's first entry among the others'.
	mention int
}

// Field returns the value of key in u's settings.
func (u NormalUser) Field(key string) (*yaml.Node, bool) {
	v := mapGet(u.Fields, key)
	return v, v != nil
}

// UserSet is the outcome of NormalizeUsers.
type UserSet struct {
	// Users in the order cloud-init creates them: by first mention, the
	// default user last.
	Users []NormalUser
	// Errors are entries left out (cloud-init would fail on them), each
	// "file:line: where: why"; Warnings are values ignored as cloud-init
	// ignores them.
	Errors   []string
	Warnings []string
}

// Default returns the default user, if the configuration has one.
func (s UserSet) Default() (NormalUser, bool) {
	for _, u := range s.Users {
		if u.Default {
			return u, true
		}
	}
	return NormalUser{}, false
}

// NormalizeUsers merges cfg's users and user keys with the default user
// of the image under root (override: ec2init's default_user) as cloud-init
// does:
//
//   - users is a list (of names, "a, b" strings, lists of names and
//     mappings), a "a, b" string (taken in sorted order, as cloud-init
//     sorts it) or a mapping {name: true | {settings}}; without a users
//     key there is the default user alone (cloud-init's cloud.cfg has
//     users: [default]).
//   - a mapping without a name is the default user's ("default").
//   - entries naming one user merge, the first entry's values winning.
//   - a non-empty user key (a name, or a mapping of settings) overrides
//     the distribution's default user field by field and makes "default"
//     part of users.
//   - the default user is made of, by precedence: an entry under its
//     real name, the entries named "default", then the user key over the
//     distribution's settings; its groups are the union of the real-name
//     entry's and the user key's (else the distribution's), sorted, and
//     groups given in a "default" entry are dropped, as cloud-init drops
//     them. It comes last, after the others.
func NormalizeUsers(cfg *config.CloudConfig, root *sys.Root, override config.DefaultUser) UserSet {
	c := collect(cfg)
	set := UserSet{Errors: c.errs, Warnings: c.warns}
	def, hasDefault := c.byName["default"]
	if hasDefault {
		spec := DefaultUser(root, override)
		base := mergeFirst(c.oldUser, specFields(spec))
		name := spec.Name
		if n := mapGet(base, "name"); n != nil && n.Kind == yaml.ScalarNode && n.Value != "" {
			name = n.Value
		}
		baseGroups := mapGet(base, "groups")
		base = mapWithout(base, "name", "groups")
		real := c.byName[name]
		var realFields *yaml.Node
		if real != nil {
			realFields = real.Fields
		}
		realGroups := groupNames(mapGet(realFields, "groups"))
		groups := slices.Concat(realGroups, groupNames(baseGroups))
		slices.Sort(groups)
		groups = slices.Compact(groups)
		where := def.Where
		if where != "default user" {
			where += " (default)"
		}
		u := NormalUser{
			Name: name, Default: true, Where: where,
			Source: def.Source, Line: def.Line, mention: def.mention,
			Fields: mergeFirst(
				mapWith(nil, "name", strNode(name)),
				mapWith(mapWithout(realFields, "groups"), "groups", seqNode(groups)),
				mapWithout(def.Fields, "groups"),
				base,
			),
		}
		c.order = slices.DeleteFunc(c.order, func(n string) bool { return n == "default" || n == name })
		for _, n := range c.order {
			set.Users = append(set.Users, *c.byName[n])
		}
		set.Users = append(set.Users, u)
		return set
	}
	for _, n := range c.order {
		set.Users = append(set.Users, *c.byName[n])
	}
	return set
}

// DefaultUserEnabled reports whether cfg asks for the default user: no
// users key, "default" in users (a name, or a mapping named "default" or
// without a name), or a top-level user key. A users list without any of
// these has no default user, as cloud-init has it.
func DefaultUserEnabled(cfg *config.CloudConfig) bool {
	_, ok := collect(cfg).byName["default"]
	return ok
}

// DefaultUserName is the default user's name as cfg and the image under
// root make it (the user key may rename it), or "" when cfg asks for no
// default user. Every module that acts on "the default user" (ssh's key
// pair, set_passwords, ssh_import_id) resolves it here, as cloud-init's
// do through ug_util.
func DefaultUserName(cfg *config.CloudConfig, root *sys.Root, override config.DefaultUser) string {
	if !DefaultUserEnabled(cfg) {
		return ""
	}
	u, _ := NormalizeUsers(cfg, root, override).Default()
	return u.Name
}

// collected is the users key read into entries by name, before the
// default user is resolved.
type collected struct {
	order  []string
	byName map[string]*NormalUser
	// oldUser is the user key's settings (nil: none).
	oldUser *yaml.Node
	// mappedDefault: users is a mapping with a "default" key, which the
	// user key leaves as it is (even false).
	mappedDefault bool
	errs, warns   []string
}

func (c *collected) add(name, where, source string, line int, fields *yaml.Node) {
	if prev, ok := c.byName[name]; ok {
		// The first entry's values win; later ones fill in.
		prev.Fields = mergeFirst(prev.Fields, fields)
		return
	}
	c.order = append(c.order, name)
	c.byName[name] = &NormalUser{Name: name, Where: where, Source: source, Line: line, Fields: mapWith(fields, "name", strNode(name)), mention: len(c.order)}
}

func collect(cfg *config.CloudConfig) *collected {
	c := &collected{byName: map[string]*NormalUser{}}
	if v, ok := cfg.Get("user"); ok {
		c.oldUser = oldUser(v, &c.warns)
	}
	v, ok := cfg.Get("users")
	if !ok {
		// ec2init's equivalent of cloud.cfg's users: [default].
		c.add("default", "default user", "", 0, nil)
	} else {
		n := deref(v.Node)
		where := func(line int, what string) string { return fmt.Sprintf("%s:%d: %s", v.Source, line, what) }
		switch {
		case n.Kind == yaml.SequenceNode:
			for i, item := range n.Content {
				c.listItem(v.Source, fmt.Sprintf("users[%d]", i), deref(item), where)
			}
		case n.Kind == yaml.ScalarNode && n.Tag == "!!str":
			// cloud-init sorts the pieces of "b, a" before trimming them.
			pieces := slices.DeleteFunc(strings.Split(strings.TrimSpace(n.Value), ","), func(s string) bool { return s == "" })
			slices.Sort(pieces)
			for _, p := range slices.Compact(pieces) {
				if name := strings.TrimSpace(p); name != "" {
					c.add(name, "users", v.Source, n.Line, nil)
				}
			}
		case n.Kind == yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, val := n.Content[i], deref(n.Content[i+1])
				at := "users." + k.Value
				if k.Value == "default" {
					c.mappedDefault = true
				}
				switch {
				case val.Kind == yaml.MappingNode:
					// The key is the name, whatever name the mapping holds.
					c.add(k.Value, at, v.Source, k.Line, canonicalKeys(mapWithout(val, "name")))
				case val.Kind == yaml.ScalarNode && val.Tag != "!!null":
					if isTrue(val) {
						c.add(k.Value, at, v.Source, k.Line, nil)
					}
				default:
					c.errs = append(c.errs, where(k.Line, at+": expected true, false or a mapping of settings; skipped"))
				}
			}
		default:
			c.warns = append(c.warns, where(n.Line, "users: expected a list, a mapping or \"a, b\"; no users"))
		}
	}
	if c.oldUser != nil && !c.mappedDefault {
		// cloud-init adds "default" to users when user is given.
		if _, ok := c.byName["default"]; !ok {
			uv, _ := cfg.Get("user")
			c.add("default", "user", uv.Source, uv.KeyLine, nil)
		}
	}
	return c
}

// listItem reads one item of a users list.
func (c *collected) listItem(source, at string, item *yaml.Node, where func(int, string) string) {
	switch {
	case item.Kind == yaml.ScalarNode && item.Tag == "!!str":
		for _, name := range SplitNames(item.Value) {
			c.add(name, at, source, item.Line, nil)
		}
	case item.Kind == yaml.SequenceNode:
		for _, e := range item.Content {
			if e = deref(e); e.Kind != yaml.ScalarNode || e.Tag == "!!null" {
				c.errs = append(c.errs, where(e.Line, at+": expected a list of names; skipped"))
				continue
			}
			if name := strings.TrimSpace(e.Value); name != "" {
				c.add(name, at, source, e.Line, nil)
			}
		}
	case item.Kind == yaml.MappingNode:
		name := "default"
		if n := mapGet(item, "name"); n != nil {
			if n.Kind != yaml.ScalarNode || n.Tag == "!!null" || strings.TrimSpace(n.Value) == "" {
				c.errs = append(c.errs, where(item.Line, at+": no name; skipped"))
				return
			}
			name = n.Value
		} else if mapGet(item, "snapuser") != nil {
			c.errs = append(c.errs, where(item.Line, at+": snapuser is not supported (snapd's create-user); skipped"))
			return
		}
		c.add(name, at, source, item.Line, canonicalKeys(mapWithout(item, "name")))
	default:
		c.errs = append(c.errs, where(item.Line, at+": expected a name or a mapping; skipped"))
	}
}

// oldUser reads the top-level user key: a name or a mapping of settings.
// An empty value (null, false, "", {}) is no user key, as in cloud-init;
// another type is ignored with a warning. Its keys are taken as written:
// cloud-init does not canonicalise this mapping's keys.
func oldUser(v config.Value, warns *[]string) *yaml.Node {
	n := deref(v.Node)
	switch {
	case n.Kind == yaml.MappingNode && len(n.Content) > 0:
		return n
	case n.Kind == yaml.ScalarNode && n.Tag == "!!str" && n.Value != "":
		return mapWith(nil, "name", strNode(n.Value))
	case isFalsy(n):
		return nil
	}
	*warns = append(*warns, fmt.Sprintf("%s:%d: user: expected a name or a mapping; ignored", v.Source, v.KeyLine))
	return nil
}

// specFields are the distribution's default user as settings.
func specFields(d DefaultUserSpec) *yaml.Node {
	m := mapWith(nil, "name", strNode(d.Name))
	if d.Gecos != "" {
		m = mapWith(m, "gecos", strNode(d.Gecos))
	}
	if d.Groups != nil {
		m = mapWith(m, "groups", seqNode(d.Groups))
	}
	if d.Sudo != nil {
		m = mapWith(m, "sudo", seqNode(d.Sudo))
	}
	if d.Shell != "" {
		m = mapWith(m, "shell", strNode(d.Shell))
	}
	return mapWith(m, "lock_passwd", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: fmt.Sprint(d.LockPasswd)})
}

// groupNames are the names of a groups value: "a, b", a list, or the
// deprecated mapping form {group: null}.
func groupNames(n *yaml.Node) []string {
	if n = deref(n); n == nil {
		return nil
	}
	var out []string
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag != "!!null" {
			out = SplitNames(n.Value)
		}
	case yaml.SequenceNode:
		for _, e := range n.Content {
			if e = deref(e); e.Kind == yaml.ScalarNode && strings.TrimSpace(e.Value) != "" {
				out = append(out, strings.TrimSpace(e.Value))
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			out = append(out, n.Content[i].Value)
		}
	}
	return out
}

// mergeFirst merges mappings, the first holding a key winning; where two
// hold mappings under one key, those merge likewise (cloud-init's
// mergemanydict). nil mappings are skipped. No node is modified.
func mergeFirst(maps ...*yaml.Node) *yaml.Node {
	out := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for _, m := range maps {
		if m = deref(m); m == nil || m.Kind != yaml.MappingNode {
			continue
		}
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, v := m.Content[i], m.Content[i+1]
			j := mapIndex(out, k.Value)
			if j < 0 {
				out.Content = append(out.Content, k, v)
				continue
			}
			if old := deref(out.Content[j+1]); old.Kind == yaml.MappingNode && deref(v).Kind == yaml.MappingNode {
				out.Content[j+1] = mergeFirst(old, v)
			}
		}
	}
	return out
}

// canonicalKeys is m with cloud-init's spelling of its keys: hyphens as
// underscores, spaces trimmed, empty keys dropped; of two spellings of one
// key the later wins, as in cloud-init's dict.
func canonicalKeys(m *yaml.Node) *yaml.Node {
	out := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := *m.Content[i]
		if k.Value = config.Underscored(k.Value); k.Value == "" {
			continue
		}
		if j := mapIndex(out, k.Value); j >= 0 {
			out.Content = slices.Delete(out.Content, j, j+2)
		}
		out.Content = append(out.Content, &k, m.Content[i+1])
	}
	return out
}

// mapWith is a copy of m (nil: empty) with key set to v, first.
func mapWith(m *yaml.Node, key string, v *yaml.Node) *yaml.Node {
	return mergeFirst(&yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{strNode(key), v}}, m)
}

// mapWithout is a copy of m without keys; nil for nil.
func mapWithout(m *yaml.Node, keys ...string) *yaml.Node {
	if m = deref(m); m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	out := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: m.Line, Column: m.Column}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if !slices.Contains(keys, m.Content[i].Value) {
			out.Content = append(out.Content, m.Content[i], m.Content[i+1])
		}
	}
	return out
}

func mapIndex(m *yaml.Node, key string) int {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return i
		}
	}
	return -1
}

func mapGet(m *yaml.Node, key string) *yaml.Node {
	if m = deref(m); m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	if i := mapIndex(m, key); i >= 0 {
		return deref(m.Content[i+1])
	}
	return nil
}

func strNode(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }

func seqNode(items []string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Content: []*yaml.Node{}}
	for _, s := range items {
		n.Content = append(n.Content, strNode(s))
	}
	return n
}

func deref(n *yaml.Node) *yaml.Node {
	if n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

// isTrue is cloud-init's util.is_true: true, or "true", "1", "on", "yes"
// in any case.
func isTrue(n *yaml.Node) bool {
	if n.Tag == "!!bool" {
		b, err := config.ParseBool(n.Value)
		return err == nil && b
	}
	return slices.Contains([]string{"true", "1", "on", "yes"}, strings.ToLower(strings.TrimSpace(n.Value)))
}

// isFalsy is Python's falsiness of a YAML value: null, false, 0, "", and
// empty collections.
func isFalsy(n *yaml.Node) bool {
	switch n.Kind {
	case yaml.MappingNode, yaml.SequenceNode:
		return len(n.Content) == 0
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return true
		case "!!bool":
			b, err := config.ParseBool(n.Value)
			return err == nil && !b
		case "!!int":
			i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
			return err == nil && i == 0
		case "!!float":
			f, err := strconv.ParseFloat(n.Value, 64)
			return err == nil && f == 0
		case "!!str":
			return n.Value == ""
		}
	}
	return false
}
