package config

import (
	"strings"

	"gopkg.in/yaml.v3"
)

// ModuleListKeys are cloud-init's module lists, one per stage of its own.
var ModuleListKeys = []string{"cloud_init_modules", "cloud_config_modules", "cloud_final_modules"}

// Underscored is a key as cloud-init canonicalises it where it does:
// hyphens are underscores, surrounding space dropped.
func Underscored(k string) string { return strings.TrimSpace(strings.ReplaceAll(k, "-", "_")) }

// ModuleName is a name of a module list as cloud-init looks it up
// (form_module_name): "scripts-user", "cc_scripts_user" and
// "scripts_user.py" are all "scripts_user".
func ModuleName(s string) string {
	s = Underscored(s)
	if strings.HasSuffix(strings.ToLower(s), ".py") {
		s = strings.TrimSpace(s[:len(s)-3])
	}
	return strings.TrimPrefix(s, "cc_")
}

// normalize rewrites, in place, the keys and names of root that cloud-init
// reads with hyphens and underscores alike, so validation and every module
// see one spelling and only a key still unknown after it is warned about:
// the keys of user entries (ug_util), yum_repos' repository keys
// (cc_yum_add_repo also lower-cases them), the module names of the module
// lists, and merger names in merge_how. Top-level keys are not
// normalised: cloud-init does not either.
func normalize(root *yaml.Node) {
	if root == nil || root.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], deref(root.Content[i+1])
		switch k.Value {
		case "users":
			normalizeUsers(v)
		case "yum_repos":
			if v.Kind == yaml.MappingNode {
				for j := 1; j < len(v.Content); j += 2 {
					renameKeys(deref(v.Content[j]), func(s string) string { return strings.ToLower(Underscored(s)) })
				}
			}
		case "cloud_init_modules", "cloud_config_modules", "cloud_final_modules":
			normalizeModuleList(v)
		case "merge_how", "merge_type":
			normalizeMergers(v)
		}
	}
}

func deref(n *yaml.Node) *yaml.Node {
	if n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

// renameKeys renames the keys of mapping m by f. Two spellings of one key
// ("lock-passwd" and "lock_passwd") are one key: the later wins, as in
// cloud-init's dict.
func renameKeys(m *yaml.Node, f func(string) string) {
	if m == nil || m.Kind != yaml.MappingNode {
		return
	}
	last := map[string]int{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := m.Content[i]; k.Kind == yaml.ScalarNode {
			k.Value = f(k.Value)
			last[k.Value] = i
		}
	}
	out := m.Content[:0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := m.Content[i]; k.Kind == yaml.ScalarNode && last[k.Value] != i {
			continue
		}
		out = append(out, m.Content[i], m.Content[i+1])
	}
	m.Content = out
}

// normalizeUsers renames the keys of each user entry: a list of entries,
// or the mapping form {name: {entry}}.
func normalizeUsers(v *yaml.Node) {
	switch v.Kind {
	case yaml.SequenceNode:
		for _, item := range v.Content {
			renameKeys(deref(item), Underscored)
		}
	case yaml.MappingNode:
		for j := 1; j < len(v.Content); j += 2 {
			renameKeys(deref(v.Content[j]), Underscored)
		}
	}
}

// normalizeModuleList canonicalises the names of a module list: a bare
// name, [name, frequency, args...] or {name: ..., frequency: ...}.
func normalizeModuleList(v *yaml.Node) {
	if v.Kind != yaml.SequenceNode {
		return
	}
	for _, item := range v.Content {
		item = deref(item)
		switch item.Kind {
		case yaml.ScalarNode:
			if item.Tag == "!!str" || item.Tag == "" {
				item.Value = ModuleName(item.Value)
			}
		case yaml.SequenceNode:
			if len(item.Content) > 0 && item.Content[0].Kind == yaml.ScalarNode {
				item.Content[0].Value = ModuleName(item.Content[0].Value)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(item.Content); i += 2 {
				if item.Content[i].Value == "name" && item.Content[i+1].Kind == yaml.ScalarNode {
					item.Content[i+1].Value = ModuleName(item.Content[i+1].Value)
				}
			}
		}
	}
}

// normalizeMergers canonicalises merger names: "list(append)+dict(recurse-array)"
// as cloud-init reads it (lower case, hyphens as underscores), and the
// name of each {name, settings} entry of the list form.
func normalizeMergers(v *yaml.Node) {
	switch v.Kind {
	case yaml.ScalarNode:
		v.Value = strings.ToLower(strings.ReplaceAll(v.Value, "-", "_"))
	case yaml.SequenceNode:
		for _, item := range v.Content {
			item = deref(item)
			if item.Kind != yaml.MappingNode {
				continue
			}
			for i := 0; i+1 < len(item.Content); i += 2 {
				if item.Content[i].Value == "name" && item.Content[i+1].Kind == yaml.ScalarNode {
					item.Content[i+1].Value = strings.ToLower(Underscored(item.Content[i+1].Value))
				}
			}
		}
	}
}
