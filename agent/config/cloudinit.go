package config

// cloud-init's own system configuration, /etc/cloud/cloud.cfg and
// /etc/cloud/cloud.cfg.d/*.cfg, read as cloud-init's runtime reads it
// (util.read_conf_with_confd, then stages.fetch_base_config): an image
// made for cloud-init keeps its settings when ec2init replaces it. It is
// the lowest layer: ec2init's own files and the user data are above it.

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// cloud-init's system configuration, relative to the root prefix.
const (
	CloudInitFile = "/etc/cloud/cloud.cfg"
	CloudInitDir  = "/etc/cloud/cloud.cfg.d"
)

// SystemMergeType is how cloud-init merges its system configuration files
// (mergers.DEF_MERGE_TYPE) when one names no mergers: a mapping set in
// two files is merged key by key, anything else keeps the value of the
// file read later (the files are merged highest priority first, with
// no_replace).
const SystemMergeType = "list()+dict()+str()"

// CloudInitSource is one file of cloud-init's system configuration.
type CloudInitSource struct {
	Name string // the path under the root, e.g. /etc/cloud/cloud.cfg.d/05_logging.cfg
	Body []byte
}

// ReadCloudInitFiles returns cloud-init's system configuration files under
// root in its order, lowest priority first: cloud.cfg, then the regular
// files of cloud.cfg.d whose names end in ".cfg", by name (cloud-init reads
// no other name, and a hidden "x.cfg" too). cloud.cfg's conf_d key names
// another directory instead, as in cloud-init; an empty conf_d none. A
// missing file or directory is no configuration; an unreadable one is an
// error naming it, after the files read before it.
func ReadCloudInitFiles(root string) ([]CloudInitSource, error) {
	var out []CloudInitSource
	body, err := os.ReadFile(filepath.Join(root, CloudInitFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("%s: %w", CloudInitFile, err)
	default:
		out = append(out, CloudInitSource{Name: CloudInitFile, Body: body})
	}
	dir := CloudInitDir
	if d, set := confD(body); set {
		dir = d
	}
	if dir == "" {
		return out, nil
	}
	host := filepath.Join(root, dir)
	entries, err := os.ReadDir(host)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrInvalid) {
		return out, nil
	}
	if err != nil {
		return out, fmt.Errorf("%s: %w", dir, err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".cfg") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, n := range names {
		p := path.Join(dir, n)
		fi, err := os.Stat(filepath.Join(host, n))
		if err != nil || !fi.Mode().IsRegular() {
			continue // cloud-init: os.path.isfile
		}
		b, err := os.ReadFile(filepath.Join(host, n))
		if err != nil {
			return out, fmt.Errorf("%s: %w", p, err)
		}
		out = append(out, CloudInitSource{Name: p, Body: b})
	}
	return out, nil
}

// confD reads cloud.cfg's conf_d: set is false without the key (or when
// cloud.cfg does not parse: the boot reports that, by line).
func confD(body []byte) (dir string, set bool) {
	var top map[string]any
	if yaml.Unmarshal(body, &top) != nil {
		return "", false
	}
	v, ok := top["conf_d"]
	if !ok {
		return "", false
	}
	s, _ := v.(string)
	return strings.TrimSpace(s), true
}

// MergeSystem merges cloud-init system configuration documents, given
// lowest priority first (cloud.cfg, then cloud.cfg.d by name), as
// cloud-init's mergemanydict does: from the highest priority down, each
// document merged in with its own mergers (merge_how), else
// SystemMergeType. So a later file's value wins, and a mapping both set
// (system_info, datasource, apt) merges key by key, recursively; lists
// are never concatenated. A key's Source is the highest-priority file
// that set it.
func MergeSystem(docs ...Doc) *CloudConfig {
	c := &CloudConfig{values: map[string]Value{}}
	for i := len(docs) - 1; i >= 0; i-- {
		d := docs[i]
		if d.Root == nil {
			continue
		}
		m := systemMergers(d)
		if !m.hasDict {
			continue
		}
		c.mergeDoc(d, m, true)
	}
	return c
}

// systemMergers are d's own mergers (merge_how, merge_type), else
// SystemMergeType: cloud-init's default for configuration it merges
// itself, unlike user-data parts' dict(replace).
func systemMergers(d Doc) mergers {
	for i := 0; i+1 < len(d.Root.Content); i += 2 {
		if k := d.Root.Content[i].Value; k == "merge_how" || k == "merge_type" {
			return docMergers(Doc{Root: d.Root})
		}
	}
	return docMergers(Doc{Root: &yaml.Node{Kind: yaml.MappingNode}, MergeType: SystemMergeType})
}

// Over is c merged over base as cloud-init merges the instance's
// cloud-config (the user data's parts, merged) over its system
// configuration: c's values win, and a mapping both set merges key by
// key, recursively, c's keys winning. Neither is changed.
func (c *CloudConfig) Over(base *CloudConfig) *CloudConfig {
	out := c.Without()
	if base == nil {
		return out
	}
	m := docMergers(Doc{Root: &yaml.Node{Kind: yaml.MappingNode}, MergeType: SystemMergeType})
	for k, bv := range base.values {
		cv, ok := out.values[k]
		if !ok {
			out.values[k] = bv
			continue
		}
		cv.Node = m.dictValue(cv.Node, bv.Node)
		out.values[k] = cv
	}
	return out
}

// Without is c without keys.
func (c *CloudConfig) Without(keys ...string) *CloudConfig {
	out := &CloudConfig{values: make(map[string]Value, len(c.values))}
	for k, v := range c.values {
		out.values[k] = v
	}
	for _, k := range keys {
		delete(out.values, k)
	}
	return out
}

// CloudInitSystem is what ec2init takes from cloud-init's system
// configuration for its own settings (System): the Ec2 datasource's
// metadata endpoint and timeouts, and system_info.default_user.
// Findings are what could not be taken, by file, line and key.
type CloudInitSystem struct {
	IMDS        IMDS
	DefaultUser DefaultUser
	// Findings are values of the keys above that ec2init could not use
	// (wrong type, a second metadata URL): each "file:line: key: why".
	Findings []string
}

// ReadCloudInitSystem reads cloud-init's system configuration under root
// for ec2init's own settings. Files that do not parse are skipped (the
// boot reports them by line): it never fails on cloud-init's files.
func ReadCloudInitSystem(root string) CloudInitSystem {
	srcs, _ := ReadCloudInitFiles(root)
	var docs []Doc
	for _, s := range srcs {
		if d, err := ParseDoc(s.Name, s.Body); err == nil {
			docs = append(docs, d)
		}
	}
	return CloudInitSettings(MergeSystem(docs...))
}

// CloudInitSettings takes ec2init's settings from a merged cloud-init
// system configuration (see CloudInitSystem).
func CloudInitSettings(c *CloudConfig) CloudInitSystem {
	var out CloudInitSystem
	finding := func(v Value, n *yaml.Node, key, msg string) {
		out.Findings = append(out.Findings, fmt.Sprintf("%s:%d: %s: %s", v.Source, n.Line, key, msg))
	}
	if v, ok := c.Get("datasource"); ok {
		if ec2 := mapGet(deref(v.Node), "Ec2"); ec2 != nil {
			if urls := mapGet(ec2, "metadata_urls"); urls != nil {
				switch {
				case urls.Kind == yaml.SequenceNode && len(urls.Content) > 0 && isScalar(deref(urls.Content[0])):
					out.IMDS.Endpoint = strings.TrimRight(deref(urls.Content[0]).Value, "/")
					if len(urls.Content) > 1 {
						finding(v, urls, "datasource.Ec2.metadata_urls", fmt.Sprintf("ec2init asks the first URL only; %d others ignored", len(urls.Content)-1))
					}
				case urls.Kind == yaml.ScalarNode && urls.Tag == "!!null":
				default:
					finding(v, urls, "datasource.Ec2.metadata_urls", "expected a list of URLs; ignored")
				}
			}
			seconds := func(key string, set func(time.Duration)) {
				n := mapGet(ec2, key)
				if n == nil {
					return
				}
				// cloud-init: int(value), a default when that fails.
				f, err := strconv.ParseFloat(n.Value, 64)
				if n.Kind != yaml.ScalarNode || err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
					finding(v, n, "datasource.Ec2."+key, "expected a number of seconds; the default applies")
					return
				}
				if s := math.Trunc(f); s > 0 {
					set(time.Duration(s) * time.Second)
				}
			}
			seconds("timeout", func(d time.Duration) { out.IMDS.RequestTimeout = Duration(d) })
			seconds("max_wait", func(d time.Duration) { out.IMDS.Deadline = Duration(d) })
			if n := mapGet(ec2, "retries"); n != nil {
				r, err := strconv.Atoi(n.Value)
				if n.Kind != yaml.ScalarNode || err != nil || r < 0 {
					finding(v, n, "datasource.Ec2.retries", "expected a whole number; the default applies")
				} else {
					out.IMDS.MaxAttempts = r + 1
				}
			}
		}
	}
	if v, ok := c.Get("system_info"); ok {
		if du := mapGet(deref(v.Node), "default_user"); du != nil && du.Kind == yaml.MappingNode {
			out.DefaultUser = defaultUserFrom(du, func(n *yaml.Node, key, msg string) {
				finding(v, n, "system_info.default_user."+key, msg)
			})
		}
	}
	return out
}

// defaultUserFrom reads cloud-init's default_user: groups as a list or a
// "a, b" string, sudo as a rule, a list of rules, or false (none).
func defaultUserFrom(m *yaml.Node, bad func(n *yaml.Node, key, msg string)) DefaultUser {
	var du DefaultUser
	str := func(key string, dst *string) {
		if n := mapGet(m, key); n != nil {
			if !isScalar(n) || n.Tag == "!!null" {
				bad(n, key, "expected a string; ignored")
				return
			}
			*dst = n.Value
		}
	}
	str("name", &du.Name)
	str("gecos", &du.Gecos)
	str("shell", &du.Shell)
	names := func(key string) ([]string, bool) {
		n := mapGet(m, key)
		if n == nil {
			return nil, false
		}
		switch {
		case n.Kind == yaml.SequenceNode:
			list := []string{}
			for _, it := range n.Content {
				if it = deref(it); !isScalar(it) {
					bad(n, key, "expected a list of strings; ignored")
					return nil, false
				}
				list = append(list, strings.TrimSpace(it.Value))
			}
			return list, true
		case n.Kind == yaml.ScalarNode && n.Tag == "!!bool" && key == "sudo":
			if b, _ := strconv.ParseBool(n.Value); !b {
				return []string{}, true // sudo: false: no rule
			}
		case n.Kind == yaml.ScalarNode && n.Tag == "!!null" && key == "sudo":
			return []string{}, true
		case isScalar(n) && n.Tag != "!!null":
			if key == "sudo" {
				return []string{n.Value}, true
			}
			list := []string{}
			for _, p := range strings.Split(n.Value, ",") {
				if p = strings.TrimSpace(p); p != "" {
					list = append(list, p)
				}
			}
			return list, true
		}
		bad(n, key, "expected a string or a list; ignored")
		return nil, false
	}
	if g, ok := names("groups"); ok {
		du.Groups = g
	}
	if s, ok := names("sudo"); ok {
		du.Sudo = s
	}
	if n := mapGet(m, "lock_passwd"); n != nil {
		var b bool
		if n.Decode(&b) != nil {
			bad(n, "lock_passwd", "expected true or false; ignored")
		} else {
			du.LockPasswd = &b
		}
	}
	return du
}

// DefaultUserHonoured are the keys of system_info.default_user ec2init's
// default user takes; the others are reported as not honoured.
var DefaultUserHonoured = []string{"name", "gecos", "groups", "sudo", "shell", "lock_passwd"}

// Ec2DatasourceHonoured are the keys of datasource.Ec2 ec2init takes
// (apply_full_imds_network_config is accepted: ec2init leaves the network
// to the image).
var Ec2DatasourceHonoured = []string{"metadata_urls", "timeout", "max_wait", "retries", "apply_full_imds_network_config"}

func mapGet(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := len(m.Content) - 2; i >= 0; i -= 2 { // the last of a repeated key, as YAML loaders keep
		if m.Content[i].Value == key {
			return deref(m.Content[i+1])
		}
	}
	return nil
}

func isScalar(n *yaml.Node) bool { return n != nil && n.Kind == yaml.ScalarNode }
