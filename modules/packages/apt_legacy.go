package packages

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/config"
)

// legacyAptKeys maps cloud-init's pre-22.1 top-level keys to their place
// under apt, as its runtime (convert_v2_to_v3_apt_format) maps them. The
// https and ftp proxies are swapped there, and so they are here: the same
// user data must configure apt the same way.
var legacyAptKeys = []struct{ old, new string }{
	{"apt_sources", "sources"},
	{"apt_proxy", "proxy"},
	{"apt_http_proxy", "http_proxy"},
	{"apt_ftp_proxy", "https_proxy"},
	{"apt_https_proxy", "ftp_proxy"},
	{"apt_preserve_sources_list", "preserve_sources_list"},
	{"apt_custom_sources_list", "sources_list"},
	{"add_apt_repo_match", "add_apt_repo_match"},
	{"apt_mirror", ""},
	{"apt_mirror_search", ""},
	{"apt_mirror_search_dns", ""},
}

// legacySourcesFile is where cloud-init puts a legacy apt_sources entry
// without a filename.
const legacySourcesFile = "cloud_config_sources.list"

func legacyAptFields() []config.Field {
	doc := func(k string) string { return "Deprecated (cloud-init 22.1): read as apt." + k + "." }
	return []config.Field{
		{Name: "apt_sources", Type: config.OneOf(config.ListOf(config.Object(aptSourceFields()...)), config.MapOf(config.Object(aptSourceFields()...))),
			Doc: "Deprecated (cloud-init 22.1): a list of sources (source, key, keyid, keyserver, filename), read as apt.sources."},
		{Name: "apt_proxy", Type: config.String(), Doc: doc("proxy")},
		{Name: "apt_http_proxy", Type: config.String(), Doc: doc("http_proxy")},
		{Name: "apt_ftp_proxy", Type: config.String(), Doc: doc("https_proxy") + " (swapped with apt_https_proxy, as cloud-init's runtime does)"},
		{Name: "apt_https_proxy", Type: config.String(), Doc: doc("ftp_proxy") + " (swapped with apt_ftp_proxy, as cloud-init's runtime does)"},
		{Name: "apt_preserve_sources_list", Type: config.Bool(), Doc: doc("preserve_sources_list")},
		{Name: "apt_custom_sources_list", Type: config.String(), Doc: doc("sources_list")},
		{Name: "add_apt_repo_match", Type: config.String(), Doc: doc("add_apt_repo_match")},
		{Name: "apt_mirror", Type: config.String(), Doc: "Deprecated (cloud-init 22.1): read as apt.primary[{arches: [default], uri}]."},
		{Name: "apt_mirror_search", Type: config.ListOf(config.String()), Doc: "Deprecated (cloud-init 22.1): read as apt.primary[{arches: [default], search}]."},
		{Name: "apt_mirror_search_dns", Type: config.Bool(), Doc: "Deprecated (cloud-init 22.1): read as apt.primary[{arches: [default], search_dns}]."},
	}
}

// aptValue is the apt mapping to apply: apt itself, or the one built from
// the legacy keys when there is no apt (cloud-init ignores the legacy
// keys when apt is given). ok is false when there is neither. ignored
// names the legacy keys set beside apt.
func aptValue(cfg *config.CloudConfig) (v config.Value, ok bool, ignored []string) {
	var present []config.Value
	var names []string
	for _, k := range legacyAptKeys {
		lv, has := cfg.Get(k.old)
		if !has || lv.Node.Tag == "!!null" || (lv.Node.Kind == yaml.ScalarNode && lv.Node.Value == "" && lv.Node.Tag == "!!str") {
			continue
		}
		present = append(present, lv)
		names = append(names, k.old)
	}
	if av, has := cfg.Get("apt"); has {
		return av, true, names
	}
	if len(present) == 0 {
		return config.Value{}, false, nil
	}
	m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: present[0].KeyLine}
	var primary *yaml.Node
	for i, name := range names {
		lv := present[i]
		var newKey string
		for _, k := range legacyAptKeys {
			if k.old == name {
				newKey = k.new
			}
		}
		if newKey == "" {
			// apt_mirror*: one primary mirror for every architecture.
			if primary == nil {
				primary = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{
					scalar("arches", lv.KeyLine), {Kind: yaml.SequenceNode, Tag: "!!seq", Content: []*yaml.Node{scalar("default", lv.KeyLine)}},
				}}
				m.Content = append(m.Content, scalar("primary", lv.KeyLine), &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Content: []*yaml.Node{primary}})
			}
			sub := map[string]string{"apt_mirror": "uri", "apt_mirror_search": "search", "apt_mirror_search_dns": "search_dns"}[name]
			primary.Content = append(primary.Content, scalar(sub, lv.KeyLine), lv.Node)
			continue
		}
		n := lv.Node
		if name == "apt_sources" && n.Kind == yaml.SequenceNode {
			n = legacySourceList(n)
		}
		m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: newKey, Line: lv.KeyLine, Column: lv.KeyColumn}, n)
	}
	return config.Value{Node: m, Source: present[0].Source, KeyLine: present[0].KeyLine}, true, nil
}

// legacySourceList turns the v1 list of sources into the mapping apt.sources
// is: an entry with a filename is named by it; one without goes to
// cloud_config_sources.list under a name of its own.
func legacySourceList(list *yaml.Node) *yaml.Node {
	m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: list.Line}
	seen := map[string]int{}
	for _, ent := range list.Content {
		name, hasFile := legacySourcesFile, false
		if ent.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(ent.Content); i += 2 {
				if ent.Content[i].Value == "filename" && ent.Content[i+1].Kind == yaml.ScalarNode {
					name, hasFile = ent.Content[i+1].Value, true
				}
			}
		}
		seen[name]++
		key := name
		if seen[name] > 1 {
			// cloud-init names it at random; its key then overwrites the
			// first one's (both are cloud_config_sources.gpg): here each
			// keeps its own key file, cloud_config_sources_N.gpg.
			key = fmt.Sprintf("%s_%d%s", strings.TrimSuffix(name, ".list"), seen[name]-1, map[bool]string{true: ".list"}[strings.HasSuffix(name, ".list")])
		}
		if !hasFile && ent.Kind == yaml.MappingNode {
			c := *ent
			c.Content = append(append([]*yaml.Node{}, ent.Content...), scalar("filename", ent.Line), scalar(legacySourcesFile, ent.Line))
			ent = &c
		}
		m.Content = append(m.Content, scalar(key, ent.Line), ent)
	}
	return m
}

func scalar(v string, line int) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v, Line: line}
}
