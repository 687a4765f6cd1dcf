package puppet

import (
	"bytes"
	"fmt"
	"strings"
)

// ini is puppet.conf read as cloud-init reads it (Python's configparser):
// sections in order, option names lower-cased, comments dropped; leading
// blanks are stripped from every line first, so nothing continues a line.
type ini struct {
	sections []*section
}

type section struct {
	name string
	keys []string
	vals map[string]string
}

func parseINI(b []byte) (*ini, error) {
	f := &ini{}
	var cur *section
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && strings.HasSuffix(line, "]"):
			cur = f.section(line[1 : len(line)-1])
		default:
			at := strings.IndexAny(line, "=:")
			if at < 0 {
				return nil, fmt.Errorf("line %d: not [section] or name = value", i+1)
			}
			if cur == nil {
				return nil, fmt.Errorf("line %d: a setting before any [section]", i+1)
			}
			cur.set(strings.TrimSpace(line[:at]), strings.TrimSpace(line[at+1:]))
		}
	}
	return f, nil
}

// section returns the named section, appended when new.
func (f *ini) section(name string) *section {
	for _, s := range f.sections {
		if s.name == name {
			return s
		}
	}
	s := &section{name: name, vals: map[string]string{}}
	f.sections = append(f.sections, s)
	return s
}

func (f *ini) set(sec, key, val string) { f.section(sec).set(key, val) }

func (s *section) set(key, val string) {
	key = strings.ToLower(key)
	if _, ok := s.vals[key]; !ok {
		s.keys = append(s.keys, key)
	}
	s.vals[key] = val
}

// bytes writes the file as configparser does: "[section]", "name =
// value" lines, a blank line after each section.
func (f *ini) bytes() []byte {
	var b bytes.Buffer
	for _, s := range f.sections {
		fmt.Fprintf(&b, "[%s]\n", s.name)
		for _, k := range s.keys {
			fmt.Fprintf(&b, "%s = %s\n", k, s.vals[k])
		}
		b.WriteString("\n")
	}
	return b.Bytes()
}
