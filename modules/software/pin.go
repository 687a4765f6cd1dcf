package software

import (
	"errors"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/config"
)

// Pin returns cfg's software key as a cloud-config document ("#cloud-config"
// then "software: ...") in which each item whose version_from was resolved
// (results from Bake or Run) is frozen to what it resolved: version_from is
// removed, {version} filled in every URL, the resolved URL becomes the
// source when the item had none, and the artifact's digest becomes its
// checksum when it had no inline one (replacing a checksum URL). Its
// signature keys stay, still checked. Other items and keys are unchanged.
// For `ec2init bake --pin`: the image then installs what was baked.
func Pin(cfg *config.CloudConfig, results []ItemResult) ([]byte, error) {
	v, ok := cfg.Get(Key)
	if !ok {
		return nil, ErrNothingToBake
	}
	// A copy: the configuration stays as it was read.
	raw, err := yaml.Marshal(v.Node)
	if err != nil {
		return nil, fmt.Errorf("pin: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("pin: %w", err)
	}
	root := doc.Content[0]
	byName := map[string]ItemResult{}
	for _, r := range results {
		if r.err == nil && r.Version != "" && r.resolvedRaw != "" {
			byName[r.Name] = r
		}
	}
	items := mapValue(root, "items")
	if items == nil || items.Kind != yaml.SequenceNode {
		return nil, errors.New("pin: the software key has no items")
	}
	for _, it := range items.Content {
		if it.Kind != yaml.MappingNode {
			continue
		}
		name := mapValue(it, "name")
		if name == nil || mapValue(it, "version_from") == nil {
			continue
		}
		r, ok := byName[name.Value]
		if !ok {
			continue
		}
		pinItem(it, r)
	}
	out, err := yaml.Marshal(map[string]*yaml.Node{Key: root})
	if err != nil {
		return nil, fmt.Errorf("pin: %w", err)
	}
	return append([]byte("#cloud-config\n"), out...), nil
}

func pinItem(it *yaml.Node, r ItemResult) {
	deleteKey(it, "version_from")
	fill := func(n *yaml.Node) {
		if n != nil && n.Kind == yaml.ScalarNode {
			n.Value = strings.ReplaceAll(n.Value, versionVar, r.Version)
		}
	}
	for _, k := range []string{"source", "sha256_url", "sha512_url", "signature_url"} {
		fill(mapValue(it, k))
	}
	if s := mapValue(it, "sources"); s != nil && s.Kind == yaml.SequenceNode {
		for _, n := range s.Content {
			fill(n)
		}
	}
	if mapValue(it, "source") == nil && mapValue(it, "sources") == nil {
		setKey(it, "source", r.resolvedRaw)
	}
	if mapValue(it, "sha256") == nil && mapValue(it, "sha512") == nil && r.algo != "" && r.sum != "" {
		deleteKey(it, "sha256_url")
		deleteKey(it, "sha512_url")
		setKey(it, r.algo, r.sum)
	}
}

func deleteKey(m *yaml.Node, key string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return
		}
	}
}

func setKey(m *yaml.Node, key, value string) {
	m.Content = append(m.Content,
		&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key},
		&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: value})
}
