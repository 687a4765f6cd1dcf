package packages

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/distro"
)

// Files the sources_list template goes to: the one-line format, or deb822.
const (
	AptSourcesList = "/etc/apt/sources.list"
	// ubuntuSourcesListStub is what Ubuntu leaves in sources.list once its
	// sources are deb822 (cloud-init writes the same words).
	ubuntuSourcesListStub = "# Ubuntu sources have moved to the /etc/apt/sources.list.d/ubuntu.sources\n" +
		"# file, which uses the deb822 format. Use deb822-formatted .sources files\n" +
		"# to manage package sources in the /etc/apt/sources.list.d/ directory.\n" +
		"# See the sources.list(5) manual page for details.\n"
)

var (
	oneLineRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?m)^(deb|deb-src) `) })
	deb822RE  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?m)^(Types|Suites|Components|URIs): `) })
)

// mirrorNode is one element of apt.primary or apt.security.
type mirrorNode struct {
	Arches    []string `yaml:"arches"`
	URI       string   `yaml:"uri"`
	Search    []string `yaml:"search"`
	SearchDNS bool     `yaml:"search_dns"`
	Key       string   `yaml:"key"`
	Keyid     string   `yaml:"keyid"`
}

// dpkgArch is dpkg's name for the running architecture.
func dpkgArch() string {
	switch runtime.GOARCH {
	case "arm":
		return "armhf"
	case "ppc64le":
		return "ppc64el"
	}
	return runtime.GOARCH
}

// mirror is the uri of the mirror list's entry for this architecture (or
// its "default" entry), as cloud-init chooses it; "" when none applies.
func mirror(list []mirrorNode) (string, error) {
	var def *mirrorNode
	for i := range list {
		m := &list[i]
		for _, a := range m.Arches {
			if a == dpkgArch() {
				return m.pick()
			}
			if a == "default" && def == nil {
				def = m
			}
		}
	}
	if def == nil {
		return "", nil
	}
	return def.pick()
}

func (m *mirrorNode) pick() (string, error) {
	switch {
	case m.URI != "":
		return strings.TrimSpace(m.URI), nil
	case len(m.Search) > 0 || m.SearchDNS:
		return "", errors.New("mirror search and search_dns are not supported: give the mirror's uri")
	case m.Key != "" || m.Keyid != "":
		return "", errors.New("a mirror's key or keyid is not supported: add the key under apt.sources")
	}
	return "", nil
}

// applyMirrors sets $PRIMARY, $SECURITY and $MIRROR from apt.primary and
// apt.security; security defaults to primary, as in cloud-init.
func applyMirrors(vars map[string]string, ac aptConfig) error {
	p, err := mirror(ac.Primary)
	if err != nil {
		return fmt.Errorf("primary: %w", err)
	}
	s, err := mirror(ac.Security)
	if err != nil {
		return fmt.Errorf("security: %w", err)
	}
	if p == "" {
		if s != "" {
			vars["SECURITY"] = s
		}
		return nil
	}
	if s == "" {
		s = p
	}
	vars["PRIMARY"], vars["MIRROR"], vars["SECURITY"] = p, p, s
	return nil
}

// writeSourcesList renders apt.sources_list with the mirrors and release
// and writes it where its format goes, commenting out disable_suites.
// Without a template nothing is written: ec2init ships no built-in one.
func writeSourcesList(root *sys.Root, d distro.Distro, ac aptConfig, vars map[string]string) error {
	if ac.SourcesList == nil || strings.TrimSpace(*ac.SourcesList) == "" {
		if len(ac.DisableSuites) > 0 {
			return rewriteDisabled(root, ac.DisableSuites, vars["RELEASE"])
		}
		return nil
	}
	params := map[string]string{"codename": vars["RELEASE"]}
	for k, v := range vars {
		params[k] = v
		params[strings.ToLower(k)] = v
	}
	out, err := expand(*ac.SourcesList, params)
	if err != nil {
		return err
	}
	out = disableSuites(out, ac.DisableSuites, vars["RELEASE"])
	if !strings.HasSuffix(out, "\n") {
		out += "\n"
	}
	if oneLineRE().MatchString(out) || !deb822RE().MatchString(out) {
		return root.WriteFile(AptSourcesList, []byte(out), 0o644, nil)
	}
	file := AptSourcesDir + "/" + d.ID + ".sources"
	if err := root.WriteFile(file, []byte(out), 0o644, nil); err != nil {
		return err
	}
	// apt would read both: cloud-init leaves Ubuntu's stub, or nothing.
	if ok, _ := root.Exists(AptSourcesList); ok {
		if d.Is("ubuntu") {
			return root.WriteFile(AptSourcesList, []byte(ubuntuSourcesListStub), 0o644, nil)
		}
		return root.Remove(AptSourcesList)
	}
	return nil
}

// rewriteDisabled applies disable_suites to the image's own sources.list
// when no template is given.
func rewriteDisabled(root *sys.Root, suites []string, release string) error {
	b, err := root.ReadFile(AptSourcesList)
	if err != nil {
		return nil // no one-line sources.list: nothing to disable
	}
	out := disableSuites(string(b), suites, release)
	if out == string(b) {
		return nil
	}
	return root.WriteFile(AptSourcesList, []byte(out), 0o644, nil)
}

// suiteAliases are cloud-init's short names in disable_suites.
var suiteAliases = map[string]string{
	"updates": "$RELEASE-updates", "backports": "$RELEASE-backports", "security": "$RELEASE-security",
	"proposed": "$RELEASE-proposed", "release": "$RELEASE",
}

// disableSuites comments out the one-line entries whose suite is listed,
// with cloud-init's marker. deb822 entries are left (see compatibility).
func disableSuites(src string, suites []string, release string) string {
	if len(suites) == 0 {
		return src
	}
	off := map[string]bool{}
	for _, s := range suites {
		if a, ok := suiteAliases[s]; ok {
			s = a
		}
		off[strings.ReplaceAll(strings.ReplaceAll(s, "${RELEASE}", release), "$RELEASE", release)] = true
	}
	lines := strings.SplitAfter(src, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "#") {
			continue
		}
		cols := strings.Fields(l)
		if len(cols) < 3 {
			continue
		}
		p := 2
		if strings.HasPrefix(cols[1], "[") {
			for _, c := range cols[1:] {
				p++
				if strings.HasSuffix(c, "]") {
					break
				}
			}
		}
		if p < len(cols) && off[cols[p]] {
			lines[i] = "# suite disabled by cloud-init: " + l
		}
	}
	return strings.Join(lines, "")
}

// applyDebconf feeds apt.debconf_selections (sorted by set name, as
// cloud-init joins them) to debconf-set-selections. It writes the debconf
// database of the system it runs on, so a root other than "/" needs
// --chroot.
func applyDebconf(ctx context.Context, env *modules.Env, v config.Value) error {
	var sel *yaml.Node
	for i := 0; i+1 < len(v.Node.Content); i += 2 {
		if v.Node.Content[i].Value == "debconf_selections" {
			sel = v.Node.Content[i+1]
		}
	}
	if sel == nil || sel.Tag == "!!null" {
		return nil
	}
	sets := map[string]string{}
	if err := sel.Decode(&sets); err != nil {
		return fmt.Errorf("expected a mapping of names to selections (line %d)", sel.Line)
	}
	if len(sets) == 0 {
		return nil
	}
	if env.Runner == nil || (!env.Root.IsHost() && !env.Runner.Chroot) {
		return fmt.Errorf("debconf-set-selections writes the running system's debconf database: needs --chroot for root %s", env.Root.Prefix())
	}
	names := make([]string, 0, len(sets))
	for k := range sets {
		names = append(names, k)
	}
	sort.Strings(names)
	var in []string
	for _, k := range names {
		in = append(in, sets[k])
	}
	data := strings.Join(in, "\n")
	if !strings.HasSuffix(data, "\n") {
		data += "\n"
	}
	var out bytes.Buffer
	res, err := env.Runner.Run(ctx, sys.Cmd{Name: "debconf-set-selections", Argv: []string{"debconf-set-selections"}, Stdin: strings.NewReader(data), Output: &out})
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("debconf-set-selections exited %d: %s", res.ExitCode, firstLine(out.String()))
	}
	return nil
}
