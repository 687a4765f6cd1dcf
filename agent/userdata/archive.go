package userdata

import (
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// archive expands a #cloud-config-archive: a YAML list whose entries are a
// string (the content) or a mapping with content, and optionally type,
// filename and launch-index. As in cloud-init, an entry without a type is
// classified by its first line and defaults to text/cloud-config
// (application/octet-stream for !!binary content), and an entry's type is
// taken as given, not re-checked against its content.
func (p *parser) archive(part Part) error {
	var doc yaml.Node
	if err := safeYAML(part.Body, &doc); err != nil {
		p.warn(WarnMalformed, "%s: #cloud-config-archive is not valid YAML%s; it is ignored",
			partLabel(len(p.parts), part.Filename, part.ContentType), yamlLine(err))
		return nil
	}
	list := deref(&doc)
	if list == nil || list.Kind == 0 || (list.Kind == yaml.ScalarNode && list.Tag == "!!null") {
		return nil // an empty archive
	}
	if list.Kind != yaml.SequenceNode {
		p.warn(WarnMalformed, "%s: #cloud-config-archive is not a YAML list; it is ignored",
			partLabel(len(p.parts), part.Filename, part.ContentType))
		return nil
	}
	for i, item := range list.Content {
		entry, why := archiveEntry(deref(item))
		if why != "" {
			p.warn(WarnIgnored, "%s: #cloud-config-archive entry %d (line %d) skipped: %s",
				partLabel(len(p.parts), part.Filename, part.ContentType), i+1, item.Line, why)
			continue
		}
		entry.Source = p.source
		if err := p.attach(entry, true); err != nil {
			return err
		}
	}
	return nil
}

// archiveEntry turns one list item into a part, or says why it cannot.
func archiveEntry(n *yaml.Node) (Part, string) {
	var part Part
	var content, typ, filename, index *yaml.Node
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag != "!!str" {
			return part, "not a string or a mapping" // cloud-init skips these silently
		}
		content = n
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 { // later keys win, as in a Python dict
			switch deref(n.Content[i]).Value {
			case "content":
				content = deref(n.Content[i+1])
			case "type":
				typ = deref(n.Content[i+1])
			case "filename":
				filename = deref(n.Content[i+1])
			case "launch-index":
				index = deref(n.Content[i+1])
			}
		}
	default:
		return part, "not a string or a mapping" // cloud-init skips these silently
	}
	binary := false
	if content != nil {
		if content.Kind != yaml.ScalarNode || (content.Tag != "!!str" && content.Tag != "!!binary") {
			return part, "content is not a string"
		}
		if content.Tag == "!!binary" {
			b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(content.Value), ""))
			if err != nil {
				return part, "content is not valid !!binary base64"
			}
			part.Body, binary = b, true
		} else {
			part.Body = []byte(content.Value)
		}
	}
	if part.Body == nil {
		part.Body = []byte{}
	}
	if typ != nil && typ.Kind == yaml.ScalarNode && typ.Value != "" {
		part.ContentType = mediaType(typ.Value) // an invalid type becomes text/plain, as in Python
	} else {
		part.ContentType = typeFromStartsWith(part.Body)
		if part.ContentType == "" {
			part.ContentType = TypeCloudConfig
			if binary {
				part.ContentType = TypeOctetStream
			}
		}
	}
	if filename != nil && filename.Kind == yaml.ScalarNode {
		part.Filename = strings.TrimSpace(filename.Value)
	}
	if index != nil && index.Kind == yaml.ScalarNode {
		part.LaunchIndex = launchIndex(index.Value)
	}
	return part, ""
}

// deref follows documents and aliases to the node that holds the value.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && i < 100; i++ {
		switch {
		case n.Kind == yaml.DocumentNode && len(n.Content) > 0:
			n = n.Content[0]
		case n.Kind == yaml.DocumentNode:
			return nil
		case n.Kind == yaml.AliasNode:
			n = n.Alias
		default:
			return n
		}
	}
	return nil
}

// safeYAML decodes YAML, turning a decoder panic on hostile input into an
// error: user data must never crash the agent.
func safeYAML(b []byte, v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: decoder failed")
		}
	}()
	return yaml.Unmarshal(b, v)
}

var yamlLineRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`line (\d+)`) })

// yamlLine keeps only the line number of a YAML error: its text can quote the
// document.
func yamlLine(err error) string {
	if m := yamlLineRE().FindStringSubmatch(err.Error()); m != nil {
		return " (line " + m[1] + ")"
	}
	return ""
}
