package userdata

import (
	"fmt"
	"strings"
)

// maxNameLen bounds a part's Name, leaving room in a state record name
// ("scripts_user:" + Name + ".per-instance") under its 200-byte limit.
const maxNameLen = 100

// nameParts gives every part its Name, in order. A part keeps its filename
// made file-safe (FileSafe) unless an earlier part that runs the same way
// (runGroup) took that name: then it is "part-NNN-<name>", NNN its
// cloud-init part number, so "setup a.sh", "setup_a.sh", "setup?a.sh" and a
// second "setup_a.sh" no longer collapse into one script that runs once.
//
// Compatibility: earlier versions named every part FileSafe(filename), so
// colliding parts shared one semaphore and only the first ran. The first
// part of a collision keeps exactly that name here, so no script that ran
// under an earlier version changes name (and runs again) after an upgrade;
// only the parts that never ran get new names. That is why the agent needs
// no fallback to old-style semaphores.
func nameParts(parts []Part) {
	used := map[string]bool{}
	for i := range parts {
		p := &parts[i]
		group := p.Kind.runGroup()
		base := FileSafe(p.Filename)
		name := base
		for n := 0; used[group+"/"+name]; n++ {
			// seq is unique among attached parts; n only guards against a
			// part literally named like a generated one.
			name = fmt.Sprintf("part-%03d-", p.seq)
			if n > 0 {
				name = fmt.Sprintf("part-%03d-%d-", p.seq, n)
			}
			name = truncName(name + base)
		}
		used[group+"/"+name] = true
		p.Name = name
	}
}

// runGroup is the namespace a part's Name must be unique in: parts whose
// state records share a prefix and frequency (the agent's schedule).
func (k Kind) runGroup() string {
	switch k {
	case KindScript, KindScriptPerInstance:
		return "script-per-instance"
	case KindScriptPerBoot, KindScriptPerOnce, KindBoothook:
		return k.String()
	}
	return "other"
}

// FileSafe makes s usable as a file name and state record name: letters,
// digits and "-_.+@" kept, anything else "_", no leading dot, at most 100
// bytes, "unnamed" if nothing is left.
func FileSafe(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune("-_.+@", r):
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	name := strings.TrimLeft(b.String(), ".")
	if name == "" {
		name = "unnamed"
	}
	return truncName(name)
}

func truncName(s string) string {
	if len(s) > maxNameLen {
		return s[:maxNameLen]
	}
	return s
}
