package differential

import (
	"fmt"
	"os"
	"regexp"
	"strings"
)

// allowList is allowlist.txt: the differences between the agents that are
// deliberate (or known and open), each with its reason. A line is
// "DOC KEY REASON": DOC a document's file name or *, KEY a difference key
// in which * matches any run of characters, REASON the rest of the line.
type allowList struct {
	entries []*allowEntry
}

type allowEntry struct {
	doc, key, reason string
	re               *regexp.Regexp
	used             bool
	line             int
}

func loadAllowList(path string) (*allowList, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	l := &allowList{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 3 {
			return nil, fmt.Errorf("%s:%d: want DOC KEY REASON", path, i+1)
		}
		reason := strings.Join(f[2:], " ")
		parts := strings.Split(f[1], "*")
		for j := range parts {
			parts[j] = regexp.QuoteMeta(parts[j])
		}
		l.entries = append(l.entries, &allowEntry{doc: f[0], key: f[1], reason: reason, line: i + 1,
			re: regexp.MustCompile("^" + strings.Join(parts, ".*") + "$")})
	}
	return l, nil
}

// match gives the reason doc's difference key is allowed, if it is.
func (l *allowList) match(doc, key string) (string, bool) {
	for _, e := range l.entries {
		if (e.doc == "*" || e.doc == doc) && e.re.MatchString(key) {
			e.used = true
			return e.reason, true
		}
	}
	return "", false
}

// unused lists the entries no difference matched.
func (l *allowList) unused() []*allowEntry {
	var out []*allowEntry
	for _, e := range l.entries {
		if !e.used {
			out = append(out, e)
		}
	}
	return out
}
