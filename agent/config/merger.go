package config

import (
	"regexp"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// mergers are a part's cloud-init mergers (cloudinit/mergers: m_dict,
// m_list, m_str) with their options. A kind without a merger keeps the
// earlier value, as cloud-init's lookup does.
type mergers struct {
	hasDict, hasList, hasStr bool
	dict                     struct{ noReplace, recurseStr, recurseArray, allowDelete bool }
	list                     struct {
		method                                string // replace, append, prepend, no_replace
		recurseStr, recurseDict, recurseArray bool
	}
	strAppend bool
}

// DefaultMergeType is how cloud-init merges a part that names no mergers.
const DefaultMergeType = "dict(replace)+list()+str()"

var mergerSpec = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^([a-z_][a-z0-9_]*)\((.*?)\)$`) })

// ParseMergeType reads a merger string ("list(append)+dict(recurse_array)")
// as cloud-init does: lower case, hyphens as underscores. ok is false for a
// malformed one (cloud-init then refuses the part's merge).
func ParseMergeType(spec string) (names []string, opts [][]string, ok bool) {
	for _, m := range strings.Split(spec, "+") {
		m = strings.ReplaceAll(strings.ToLower(strings.TrimSpace(m)), "-", "_")
		if m == "" {
			continue
		}
		sub := mergerSpec().FindStringSubmatch(m)
		if sub == nil {
			return nil, nil, false
		}
		var o []string
		for _, x := range strings.Split(sub[2], ",") {
			if x = strings.TrimSpace(x); x != "" {
				o = append(o, x)
			}
		}
		names, opts = append(names, sub[1]), append(opts, o)
	}
	return names, opts, true
}

// docMergers are d's mergers: merge_how/merge_type in the document, then
// the Merge-Type header, else the default.
func docMergers(d Doc) mergers {
	var names []string
	var opts [][]string
	for i := 0; i+1 < len(d.Root.Content); i += 2 {
		k := d.Root.Content[i].Value
		if k != "merge_how" && k != "merge_type" {
			continue
		}
		v := deref(d.Root.Content[i+1])
		switch v.Kind {
		case yaml.ScalarNode:
			n, o, _ := ParseMergeType(v.Value)
			names, opts = append(names, n...), append(opts, o...)
		case yaml.SequenceNode:
			for _, item := range v.Content {
				var m struct {
					Name     string   `yaml:"name"`
					Settings []string `yaml:"settings"`
				}
				if deref(item).Decode(&m) == nil && m.Name != "" {
					names, opts = append(names, Underscored(m.Name)), append(opts, m.Settings)
				}
			}
		}
		break // cloud-init reads merge_how, else merge_type
	}
	if n, o, ok := ParseMergeType(d.MergeType); ok {
		names, opts = append(names, n...), append(opts, o...)
	}
	if len(names) == 0 {
		names, opts, _ = ParseMergeType(DefaultMergeType)
	}
	var m mergers
	for i, name := range names {
		has := func(o ...string) bool {
			for _, x := range o {
				for _, y := range opts[i] {
					if x == y {
						return true
					}
				}
			}
			return false
		}
		// The first merger of a kind is the one cloud-init uses.
		switch {
		case name == "dict" && !m.hasDict:
			m.hasDict = true
			m.dict.noReplace = !has("replace")
			m.dict.recurseStr, m.dict.recurseArray, m.dict.allowDelete = has("recurse_str"), has("recurse_array", "recurse_list"), has("allow_delete")
		case name == "list" && !m.hasList:
			m.hasList, m.list.method = true, "replace"
			for _, meth := range []string{"append", "prepend", "replace", "no_replace"} {
				if has(meth) {
					m.list.method = meth
					break
				}
			}
			m.list.recurseStr, m.list.recurseDict, m.list.recurseArray = has("recurse_str"), has("recurse_dict"), has("recurse_array", "recurse_list")
		case name == "str" && !m.hasStr:
			m.hasStr, m.strAppend = true, has("append")
		}
	}
	return m
}

// dictValue merges next into prev, the values of one key of two mappings,
// as m_dict does: replace takes next; no_replace keeps prev unless it
// recurses (into mappings always, lists with recurse_array, strings with
// recurse_str).
func (m mergers) dictValue(prev, next *yaml.Node) *yaml.Node {
	next = deref(next)
	switch {
	case !m.dict.noReplace:
		return next
	case next.Kind == yaml.MappingNode,
		next.Kind == yaml.SequenceNode && m.dict.recurseArray,
		isStr(next) && m.dict.recurseStr:
		return m.merge(prev, next)
	}
	return prev
}

// merge merges next into prev by prev's kind, as cloud-init's
// LookupMerger dispatches; a kind without a merger keeps prev.
func (m mergers) merge(prev, next *yaml.Node) *yaml.Node {
	prev, next = deref(prev), deref(next)
	switch {
	case prev.Kind == yaml.MappingNode:
		if !m.hasDict || next.Kind != yaml.MappingNode {
			return prev
		}
		out := *prev
		out.Content = append([]*yaml.Node{}, prev.Content...)
		for i := 0; i+1 < len(next.Content); i += 2 {
			k, v := next.Content[i], deref(next.Content[i+1])
			j := keyIndex(out.Content, k.Value)
			switch {
			case j < 0:
				out.Content = append(out.Content, k, v)
			case v.Kind == yaml.ScalarNode && v.Tag == "!!null" && m.dict.allowDelete:
				out.Content = append(out.Content[:j:j], out.Content[j+2:]...)
			default:
				out.Content[j+1] = m.dictValue(out.Content[j+1], v)
			}
		}
		return &out
	case prev.Kind == yaml.SequenceNode:
		if !m.hasList {
			return prev
		}
		if next.Kind != yaml.SequenceNode {
			if m.list.method == "replace" {
				return next
			}
			return prev
		}
		out := *prev
		switch m.list.method {
		case "append":
			out.Content = append(append([]*yaml.Node{}, prev.Content...), next.Content...)
		case "prepend":
			out.Content = append(append([]*yaml.Node{}, next.Content...), prev.Content...)
		case "no_replace":
			return prev
		default:
			// replace merges index by index; items beyond prev's length
			// are dropped, as m_list does.
			out.Content = append([]*yaml.Node{}, prev.Content...)
			for i := 0; i < len(out.Content) && i < len(next.Content); i++ {
				nv := deref(next.Content[i])
				switch {
				case nv.Kind == yaml.SequenceNode && m.list.recurseArray,
					isStr(nv) && m.list.recurseStr,
					nv.Kind == yaml.MappingNode && m.list.recurseDict:
					out.Content[i] = m.merge(out.Content[i], nv)
				default:
					out.Content[i] = nv
				}
			}
		}
		return &out
	case isStr(prev):
		if !m.hasStr {
			return prev
		}
		if !m.strAppend || !isStr(next) {
			return next
		}
		out := *prev
		out.Value, out.Style = prev.Value+next.Value, 0
		return &out
	}
	return prev
}

func isStr(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && (n.Tag == "!!str" || (n.Tag == "" && n.Style != 0))
}

func keyIndex(content []*yaml.Node, key string) int {
	for j := 0; j+1 < len(content); j += 2 {
		if content[j].Value == key {
			return j
		}
	}
	return -1
}

// MergesNothing reports whether d names mergers without a dict merger
// ("list(append)"): cloud-init then keeps the earlier parts' config and
// merges none of d, and so does Merge.
func MergesNothing(d Doc) bool { return d.Root != nil && !docMergers(d).hasDict }
