package packages

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"strings"
	"sync"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/distro"
)

// Files apt_configure writes (host paths under the root).
const (
	AptSourcesDir = "/etc/apt/sources.list.d"
	// AptSignedByDir holds the keys of sources that name theirs with
	// signed-by=$KEY_FILE: trusted for that source only. It is cloud-init's
	// directory, so a source file written by either names the same key.
	AptSignedByDir = "/etc/apt/cloud-init.gpg.d"
	// AptTrustedDir holds keys of sources that do not use $KEY_FILE:
	// trusted for every source, as cloud-init's apt-key add did.
	AptTrustedDir = "/etc/apt/trusted.gpg.d"
	// cloud-init's own file names: an image moving from cloud-init keeps
	// one file of each, not two that disagree.
	AptConfFile  = "/etc/apt/apt.conf.d/94cloud-init-config"
	AptProxyFile = "/etc/apt/apt.conf.d/90cloud-init-aptproxy"
)

// sourceNameRE is what a source's name (and filename) may be: it names
// files.
var sourceNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.:-]*$`) })

// templateVarRE finds $NAME and ${NAME} in a source line.
var templateVarRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\$(?:\{([A-Za-z_]+)\}|([A-Za-z_]+))`) })

// AptConfigure adds apt sources and keys and writes apt configuration once
// per instance, as cloud-init's apt_configure: sources and their keys,
// sources.list from a template with the mirrors, disabled suites, conf,
// proxies and debconf selections (see docs/compatibility.md for the rest).
type AptConfigure struct{}

var aptSourceFields = sync.OnceValue(func() []config.Field {
	return []config.Field{
		{Name: "source", Type: config.String(),
			Doc: "A sources.list line; $KEY_FILE, $RELEASE, $MIRROR, $PRIMARY and $SECURITY are replaced."},
		{Name: "key", Type: config.String(),
			Doc: "The repository's ASCII-armored public key, de-armored with gpg into " + AptSignedByDir + "/NAME.gpg when the source uses $KEY_FILE, else " + AptTrustedDir + "/NAME.gpg."},
		{Name: "keyid", Type: config.String(),
			Doc: "The key's id or fingerprint, fetched from keyserver over HTTPS when key is not given; the key fetched must have this id."},
		{Name: "keyserver", Type: config.String(), Default: DefaultKeyserver,
			Doc: "Where keyid is fetched: a host or an hkp://, hkps:// or https:// URL (always fetched over HTTPS)."},
		{Name: "filename", Type: config.String(),
			Doc: "The file in /etc/apt/sources.list.d (default: the source's name; .list is added); its stem names the key file."},
		{Name: "append", Type: config.Bool(), Default: "true",
			Doc: "Add the line to the file rather than replace the file."},
	}
})

// aptMirrors is apt's primary and security lists: the same fields for
// both.
func aptMirrors() *config.Type {
	return config.ListOf(config.Object(
		config.Field{Name: "arches", Type: config.ListOf(config.String()), Doc: "dpkg architectures this mirror is for; default for any other."},
		config.Field{Name: "uri", Type: config.String(), Doc: "The mirror's URL."},
		config.Field{Name: "search", Type: config.ListOf(config.String()), Doc: "Not supported by ec2init (the entry fails): give uri."},
		config.Field{Name: "search_dns", Type: config.Bool(), Doc: "Not supported by ec2init (the entry fails): give uri."},
		config.Field{Name: "key", Type: config.String(), Doc: "Not supported by ec2init: add the key under apt.sources."},
		config.Field{Name: "keyid", Type: config.String(), Doc: "Not supported by ec2init: add the key under apt.sources."},
		config.Field{Name: "keyserver", Type: config.String(), Doc: "Not supported by ec2init: add the key under apt.sources."},
	))
}

var aptType = sync.OnceValue(func() *config.Type {
	return config.Object(
		config.Field{Name: "preserve_sources_list", Type: config.Bool(), Default: "false",
			Doc: "Keep " + AptSourcesList + " as the image has it; when false, sources_list (if given) replaces it and disable_suites applies."},
		config.Field{Name: "sources_list", Type: config.String(),
			Doc: "A template for " + AptSourcesList + " ($MIRROR, $PRIMARY, $SECURITY, $RELEASE replaced); deb822 content goes to sources.list.d/<distro>.sources."},
		config.Field{Name: "disable_suites", Type: config.ListOf(config.String()),
			Doc: "Suites to comment out in sources.list (updates, backports, security, proposed, release, or a name with $RELEASE)."},
		config.Field{Name: "primary", Type: aptMirrors(), Doc: "The primary mirror per architecture ($PRIMARY, $MIRROR)."},
		config.Field{Name: "security", Type: aptMirrors(), Doc: "The security mirror per architecture ($SECURITY; default: primary)."},
		config.Field{Name: "add_apt_repo_match", Type: config.String(), Default: `^[\w-]+:\w`,
			Doc: "Sources matching this are add-apt-repository ones (ppa:): refused by ec2init."},
		config.Field{Name: "debconf_selections", Type: config.MapOf(config.String()),
			Doc: "debconf-set-selections input by name, applied in name order."},
		config.Field{Name: "sources", Type: config.MapOf(config.Object(aptSourceFields()...)),
			Doc: "Repositories by name: a sources.list line and its key."},
		config.Field{Name: "conf", Type: config.String(),
			Doc: "apt configuration, written to " + AptConfFile + "."},
		config.Field{Name: "proxy", Type: config.String(), Doc: "HTTP proxy for apt (Acquire::http::Proxy)."},
		config.Field{Name: "http_proxy", Type: config.String(), Doc: "HTTP proxy for apt (Acquire::http::Proxy)."},
		config.Field{Name: "https_proxy", Type: config.String(), Doc: "HTTPS proxy for apt (Acquire::https::Proxy)."},
		config.Field{Name: "ftp_proxy", Type: config.String(), Doc: "FTP proxy for apt (Acquire::ftp::Proxy)."},
	)
})

func (AptConfigure) Name() string                 { return "apt_configure" }
func (AptConfigure) Stage() modules.Stage         { return modules.StageConfig }
func (AptConfigure) Frequency() modules.Frequency { return state.PerInstance }
func (AptConfigure) Schema() modules.Schema {
	return modules.Schema{
		Doc:  "Add apt sources and their keys, apt configuration and proxies (Debian and Ubuntu).",
		Keys: append([]config.Field{{Name: "apt", Type: aptType(), Doc: "apt sources, keys, conf and proxies."}}, legacyAptFields()...),
	}
}

// aptSource is one entry of apt.sources.
type aptSource struct {
	Source    *string `yaml:"source"`
	Key       *string `yaml:"key"`
	Keyid     *string `yaml:"keyid"`
	Keyserver *string `yaml:"keyserver"`
	Filename  *string `yaml:"filename"`
	Append    *bool   `yaml:"append"`
}

type aptConfig struct {
	PreserveSourcesList *bool        `yaml:"preserve_sources_list"`
	SourcesList         *string      `yaml:"sources_list"`
	DisableSuites       []string     `yaml:"disable_suites"`
	Primary             []mirrorNode `yaml:"primary"`
	Security            []mirrorNode `yaml:"security"`
	AddAptRepoMatch     *string      `yaml:"add_apt_repo_match"`
	Conf                *string      `yaml:"conf"`
	Proxy               *string      `yaml:"proxy"`
	HTTPProxy           *string      `yaml:"http_proxy"`
	HTTPSProxy          *string      `yaml:"https_proxy"`
	FTPProxy            *string      `yaml:"ftp_proxy"`
}

func (AptConfigure) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	log := env.Logger()
	v, ok, ignored := aptValue(cfg)
	if len(ignored) > 0 {
		// As cloud-init: apt wins over the pre-22.1 keys.
		log.Warn("apt: the deprecated top-level keys are ignored because apt is set", zap.Strings("keys", ignored))
	}
	if !ok || v.Node.Tag == "!!null" {
		return nil
	}
	if v.Node.Kind != yaml.MappingNode {
		return fmt.Errorf("%s:%d: apt: expected a mapping", v.Source, v.KeyLine)
	}
	var ac aptConfig
	if err := v.Node.Decode(&ac); err != nil {
		return fmt.Errorf("%s:%d: apt: %s", v.Source, v.KeyLine, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	d, err := distro.Detect(env.Root)
	if err != nil {
		return fmt.Errorf("apt: %w", err)
	}
	if d.IsRedHatLike() {
		// As cloud-init, which runs this module on Debian and Ubuntu only;
		// a config shared by a mixed fleet must not fail here.
		log.Warn("apt: the image is Red Hat-like; apt configuration not written", zap.String("distro", d.String()))
		fmt.Fprintf(env.ConsoleWriter(), "ec2init: apt ignored: the image is %s, which has no apt\n", d)
		return nil
	}
	var errs []error
	if err := applyDebconf(ctx, env, v); err != nil {
		errs = append(errs, fmt.Errorf("%s: apt.debconf_selections: %w", v.Source, err))
	}
	vars, err := templateVars(env, d)
	if err != nil {
		return fmt.Errorf("apt: %w", err)
	}
	if err := applyMirrors(vars, ac); err != nil {
		errs = append(errs, fmt.Errorf("%s: apt.%w", v.Source, err))
	}
	// cloud-init's default is false: the template replaces sources.list.
	if ac.PreserveSourcesList == nil || !*ac.PreserveSourcesList {
		if err := writeSourcesList(env.Root, d, ac, vars); err != nil {
			errs = append(errs, fmt.Errorf("%s: apt.sources_list: %w", v.Source, err))
		}
	}
	if err := writeProxy(env.Root, ac); err != nil {
		errs = append(errs, fmt.Errorf("%s: apt: %w", v.Source, err))
	}
	if err := writeOrRemove(env.Root, AptConfFile, ac.Conf); err != nil {
		errs = append(errs, fmt.Errorf("%s: apt.conf: %w", v.Source, err))
	}
	if err := writeSources(ctx, env, v, vars, ac.AddAptRepoMatch); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// writeProxy writes apt's proxy settings, or removes ec2init's file when
// none is set (as cloud-init does with its own).
func writeProxy(root *sys.Root, ac aptConfig) error {
	var b strings.Builder
	for _, p := range []struct {
		key, scheme string
		val         *string
	}{{"proxy", "http", ac.Proxy}, {"http_proxy", "http", ac.HTTPProxy}, {"ftp_proxy", "ftp", ac.FTPProxy}, {"https_proxy", "https", ac.HTTPSProxy}} {
		if p.val == nil || *p.val == "" {
			continue
		}
		// The value is quoted in apt's syntax; it may hold credentials, so
		// the error names the key only.
		if strings.ContainsAny(*p.val, "\"\r\n") {
			return fmt.Errorf("%s: a proxy URL cannot hold quotes or line breaks", p.key)
		}
		fmt.Fprintf(&b, "Acquire::%s::Proxy \"%s\";\n", p.scheme, *p.val)
	}
	if b.Len() == 0 {
		return writeOrRemove(root, AptProxyFile, nil)
	}
	s := b.String()
	return writeOrRemove(root, AptProxyFile, &s)
}

// writeOrRemove writes content to file, or removes file when content is
// unset: the file is ec2init's own.
func writeOrRemove(root *sys.Root, file string, content *string) error {
	if content == nil || *content == "" {
		return root.Remove(file)
	}
	s := *content
	if !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	return root.WriteFile(file, []byte(s), 0o644, nil)
}

// sourceFile collects the lines bound for one sources.list.d file.
type sourceFile struct {
	path  string
	lines []string
	// replace is set when an entry with append: false reset the file.
	replace bool
}

// writeSources writes the keys and the source files, in the order given.
// A failing entry is reported and the others still written.
func writeSources(ctx context.Context, env *modules.Env, v config.Value, vars map[string]string, match *string) error {
	var sources *yaml.Node
	for i := 0; i+1 < len(v.Node.Content); i += 2 {
		if v.Node.Content[i].Value == "sources" {
			sources = v.Node.Content[i+1]
		}
	}
	if sources == nil || sources.Tag == "!!null" {
		return nil
	}
	if sources.Kind != yaml.MappingNode {
		return fmt.Errorf("%s:%d: apt.sources: expected a mapping of sources", v.Source, sources.Line)
	}
	repoMatch, err := aptRepoMatcher(match)
	if err != nil {
		return fmt.Errorf("%s: apt.add_apt_repo_match: %w", v.Source, err)
	}
	var (
		errs  []error
		files []*sourceFile
		keys  *gpg
	)
	defer func() {
		if keys != nil {
			keys.close()
		}
	}()
	byPath := map[string]*sourceFile{}
	for i := 0; i+1 < len(sources.Content); i += 2 {
		k, n := sources.Content[i], sources.Content[i+1]
		where := fmt.Sprintf("%s:%d: apt.sources.%s", v.Source, k.Line, k.Value)
		var ent aptSource
		if err := n.Decode(&ent); err != nil {
			errs = append(errs, fmt.Errorf("%s: %s", where, strings.TrimPrefix(err.Error(), "yaml: ")))
			continue
		}
		if keys == nil && (nonEmpty(ent.Key) || nonEmpty(ent.Keyid)) {
			if keys, err = newGPG(env); err != nil {
				return fmt.Errorf("apt.sources: %w", err)
			}
		}
		line, file, err := prepareSource(ctx, env, keys, k.Value, ent, vars, repoMatch)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		if line == "" {
			continue // a key alone
		}
		f := byPath[file]
		if f == nil {
			f = &sourceFile{path: file}
			byPath[file] = f
			files = append(files, f)
		}
		if ent.Append != nil && !*ent.Append {
			f.lines, f.replace = nil, true
		}
		f.lines = append(f.lines, line)
	}
	for _, f := range files {
		if err := writeSourceFile(env.Root, f); err != nil {
			errs = append(errs, fmt.Errorf("apt.sources: %w", err))
		}
	}
	return errors.Join(errs...)
}

// prepareSource writes the entry's key and returns its source line (""
// when it has none) and the file the line goes to. An entry whose key
// cannot be had (keyserver down, wrong id, bad armor) adds no line.
func prepareSource(ctx context.Context, env *modules.Env, keys *gpg, name string, ent aptSource, vars map[string]string, repoMatch *regexp.Regexp) (line, file string, err error) {
	if !sourceNameRE().MatchString(name) {
		return "", "", fmt.Errorf("%q cannot name a file (letters, digits, _ . : -)", name)
	}
	fname := name
	if nonEmpty(ent.Filename) {
		fname = *ent.Filename
	}
	// cloud-init takes an absolute filename as it is; ec2init keeps it in
	// sources.list.d.
	base := strings.TrimPrefix(fname, AptSourcesDir+"/")
	if !sourceNameRE().MatchString(base) {
		return "", "", fmt.Errorf("filename %q is not a file name in %s", fname, AptSourcesDir)
	}
	// The key is named by the filename's stem, as cloud-init names it.
	stem := strings.TrimSuffix(base, path.Ext(base))
	if base == legacySourcesFile && name != legacySourcesFile {
		stem = strings.TrimSuffix(name, path.Ext(name))
	}
	if stem == "" {
		stem = base
	}
	if !strings.HasSuffix(base, ".list") {
		base += ".list"
	}
	src := ""
	if ent.Source != nil {
		src = strings.TrimSpace(*ent.Source)
	}
	usesKeyFile := strings.Contains(src, "$KEY_FILE") || strings.Contains(src, "${KEY_FILE}")
	keyFile, err := installKey(ctx, env, keys, stem, ent, usesKeyFile)
	if err != nil {
		return "", "", err
	}
	if src == "" {
		return "", "", nil
	}
	if usesKeyFile && keyFile == "" {
		return "", "", errors.New("source uses $KEY_FILE but no key or keyid is given")
	}
	vars["KEY_FILE"] = keyFile
	line, err = expand(src, vars)
	if err != nil {
		return "", "", err
	}
	if repoMatch != nil && repoMatch.MatchString(line) {
		// cloud-init hands these (ppa:, cloud-archive:) to add-apt-repository.
		return "", "", fmt.Errorf("%q matches add_apt_repo_match: add-apt-repository sources (ppa:, cloud-archive:) are not supported; give a deb line and its key instead", line)
	}
	return line, AptSourcesDir + "/" + base, nil
}

// installKey writes the entry's key (given, or fetched by keyid) de-armored
// as cloud-init does, and returns the key file ("" when there is none).
func installKey(ctx context.Context, env *modules.Env, keys *gpg, stem string, ent aptSource, signedBy bool) (string, error) {
	var armored string
	switch {
	case nonEmpty(ent.Key):
		armored = *ent.Key
		if err := checkKey(armored); err != nil {
			return "", err
		}
	case nonEmpty(ent.Keyid):
		keyid, err := normKeyid(*ent.Keyid)
		if err != nil {
			return "", err
		}
		ks := ""
		if ent.Keyserver != nil {
			ks = *ent.Keyserver
		}
		if armored, err = fetchKey(ctx, env, keyid, ks); err != nil {
			return "", err
		}
		if err := keys.checkKeyid(ctx, armored, keyid); err != nil {
			return "", err
		}
	default:
		return "", nil
	}
	bin, err := keys.dearmor(ctx, strings.TrimSpace(armored)+"\n")
	if err != nil {
		return "", err
	}
	dir := AptTrustedDir
	if signedBy {
		dir = AptSignedByDir
	}
	if err := env.Root.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	keyFile := dir + "/" + stem + ".gpg"
	if err := env.Root.WriteFile(keyFile, bin, 0o644, nil); err != nil {
		return "", err
	}
	return keyFile, nil
}

func nonEmpty(s *string) bool { return s != nil && strings.TrimSpace(*s) != "" }

// aptRepoMatcher compiles add_apt_repo_match (cloud-init's default when
// unset; none when empty).
func aptRepoMatcher(match *string) (*regexp.Regexp, error) {
	expr := `^[\w-]+:\w`
	if match != nil {
		expr = *match
	}
	if expr == "" {
		return nil, nil
	}
	return regexp.Compile(expr)
}

// checkKey accepts an ASCII-armored public key; a private key is refused
// (and never echoed).
func checkKey(key string) error {
	switch {
	case strings.Contains(key, "PRIVATE KEY"):
		return errors.New("key is a private key; give the repository's public key")
	case !strings.Contains(key, "-----BEGIN PGP PUBLIC KEY BLOCK-----"):
		return errors.New("key is not an ASCII-armored PGP public key (-----BEGIN PGP PUBLIC KEY BLOCK-----)")
	}
	return nil
}

// expand replaces the template variables cloud-init knows; other $words
// (apt has none, but a URL may) are left as they are.
func expand(src string, vars map[string]string) (string, error) {
	var missing []string
	out := templateVarRE().ReplaceAllStringFunc(src, func(m string) string {
		sub := templateVarRE().FindStringSubmatch(m)
		name := sub[1] + sub[2]
		val, known := vars[name]
		if !known {
			return m
		}
		if val == "" {
			missing = append(missing, "$"+name)
		}
		return val
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("cannot replace %s: unknown for this image", strings.Join(missing, ", "))
	}
	return out, nil
}

// templateVars are the values of $RELEASE, $MIRROR, $PRIMARY and $SECURITY
// for this image ("" when unknown).
func templateVars(env *modules.Env, d distro.Distro) (map[string]string, error) {
	release, err := codename(env.Root)
	if err != nil {
		return nil, err
	}
	primary, security := "http://deb.debian.org/debian", "http://deb.debian.org/debian-security"
	if d.Is("ubuntu") {
		// cloud-init's EC2 default: the region's mirror inside AWS.
		primary, security = "http://archive.ubuntu.com/ubuntu", "http://security.ubuntu.com/ubuntu"
		if env.Instance != nil && env.Instance.Region != "" {
			primary = "http://" + env.Instance.Region + ".ec2.archive.ubuntu.com/ubuntu"
		}
	}
	return map[string]string{"RELEASE": release, "MIRROR": primary, "PRIMARY": primary, "SECURITY": security}, nil
}

// codename is the image's VERSION_CODENAME ("bookworm", "jammy") from its
// os-release, "" when it has none.
func codename(root *sys.Root) (string, error) {
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		b, err := root.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		vals := map[string]string{}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
			if ok {
				vals[k] = strings.Trim(strings.TrimSpace(v), `"'`)
			}
		}
		if c := vals["VERSION_CODENAME"]; c != "" {
			return c, nil
		}
		return vals["UBUNTU_CODENAME"], nil
	}
	return "", nil
}

// writeSourceFile writes one sources.list.d file. Appending keeps the
// file's lines and adds the new ones not already there, so a second run
// does not duplicate them.
func writeSourceFile(root *sys.Root, f *sourceFile) error {
	var lines []string
	if !f.replace {
		old, err := root.ReadFile(f.path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if len(old) > 0 {
			lines = strings.Split(strings.TrimRight(string(old), "\n"), "\n")
		}
	}
	have := map[string]bool{}
	for _, l := range lines {
		have[strings.TrimSpace(l)] = true
	}
	for _, l := range f.lines {
		for _, one := range strings.Split(l, "\n") {
			if t := strings.TrimSpace(one); t != "" && !have[t] {
				have[t] = true
				lines = append(lines, one)
			}
		}
	}
	return root.WriteFile(f.path, []byte(strings.Join(lines, "\n")+"\n"), 0o644, nil)
}
