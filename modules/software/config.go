package software

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/fetch"
	"github.com/ec2init/ec2init/agent/state"
)

// Policies: when an item is fetched and installed.
const (
	// PolicyBake: by `ec2init bake` on the instance that becomes the AMI;
	// at boot the item is only verified against the bake manifest.
	PolicyBake = "bake"
	// PolicyBoot: at boot, on every new instance (or every boot with
	// frequency: always).
	PolicyBoot = "boot"
)

// Install types.
const (
	TypeFile           = "file"
	TypeTarball        = "tarball"
	TypeRPM            = "rpm"
	TypeDeb            = "deb"
	TypePackage        = "package"
	TypePackageUpgrade = "package-upgrade"
)

// Verification depths of a baked item at boot.
const (
	VerifyQuick = "quick" // size and mtime of what was installed, and the baked checksum
	VerifyFull  = "full"  // the content hashed again
)

// Defaults.
const (
	DefaultCacheDir = "/var/cache/ec2init/software"
	DefaultParallel = 4
	// DefaultRetryFor outlasts a short origin outage at boot (a fleet
	// scaling out during an incident), not a long one.
	DefaultRetryFor = 2 * time.Minute
	maxParallel     = 64
)

var (
	itemType = sync.OnceValue(func() *config.Type {
		return config.Object(
			config.Field{Name: "name", Type: config.String(), Required: true, Doc: "Unique name of the item, in logs, status and the bake manifest."},
			config.Field{Name: "policy", Type: config.Enum(PolicyBake, PolicyBoot), Default: PolicyBoot,
				Doc: "bake: installed by `ec2init bake`, only verified at boot (fetched then if it was never baked); boot: fetched and installed at boot."},
			config.Field{Name: "frequency", Type: config.Enum(string(state.PerInstance), string(state.Always)), Default: string(state.PerInstance),
				Doc: "For boot items: once per instance, or at every boot (the newest each time). Ignored for bake items."},
			config.Field{Name: "source", Type: config.String(),
				Doc: "https:// (http:// only with allow_insecure), s3://bucket/key (instance-profile credentials) or file:// URL of the artifact; not for package and package-upgrade."},
			config.Field{Name: "sha256", Type: config.String(), Doc: "Expected SHA-256 of the artifact (hex). A remote source needs one checksum."},
			config.Field{Name: "sha512", Type: config.String(), Doc: "Expected SHA-512 of the artifact (hex)."},
			config.Field{Name: "sha256_url", Type: config.String(), Doc: "URL of a file holding the artifact's SHA-256 (sha256sum format or bare hex)."},
			config.Field{Name: "sha512_url", Type: config.String(), Doc: "URL of a file holding the artifact's SHA-512."},
			config.Field{Name: "sources", Type: config.ListOf(config.String()),
				Doc: "Instead of source: the primary URL then mirrors, tried in order (each after its retries) when one is unreachable, lacks the file or serves bytes that fail verification; every one is held to the item's checksum and signature."},
			config.Field{Name: "signature_url", Type: config.String(), Doc: "URL of a detached signature of the artifact (minisign .minisig, or OpenPGP .sig/.asc), verified in the same pass as the checksum; with a signature the checksum is optional."},
			config.Field{Name: "signature", Type: config.String(), Doc: "The detached signature inline (a minisign signature file's text, or an armored OpenPGP signature)."},
			config.Field{Name: "public_key", Type: config.String(), Doc: "minisign: the trusted public key (the base64 line of minisign.pub, starting RW)."},
			config.Field{Name: "public_key_file", Type: config.String(), Doc: "minisign: absolute path of the trusted minisign.pub file (in the image)."},
			config.Field{Name: "gpg_key", Type: config.String(), Doc: "OpenPGP: the trusted public key(s), armored (gpg --armor --export)."},
			config.Field{Name: "gpg_keyring", Type: config.String(), Doc: "OpenPGP: absolute path of a file of trusted public keys, armored or binary (gpg --export; not a .kbx keybox)."},
			config.Field{Name: "version_from", Type: config.String(),
				Doc: "Resolve the newest version at fetch time: a manifest URL (JSON {version, url, sha256 or sha512 or signature_url}, or a text file holding the version), or an S3 prefix ending in / whose object with the highest semantic version is the source. {version} in source, sources, the checksum and signature URLs is replaced by it; the resolved version, URL and digest are recorded."},
			config.Field{Name: "allow_insecure", Type: config.Bool(), Default: "false", Doc: "Permit http:// sources and checksum URLs."},
			config.Field{Name: "verify", Type: config.Enum(VerifyQuick, VerifyFull), Default: VerifyQuick,
				Doc: "How a baked item is checked at boot: quick (size, mtime, baked checksum) or full (content hashed again)."},
			config.Field{Name: "install", Type: installType(), Required: true, Doc: "How the artifact is installed."},
			config.Field{Name: "service", Type: serviceType(), Doc: "systemd unit to act on after the install (over D-Bus)."},
		)
	})
	installType = sync.OnceValue(func() *config.Type {
		return config.Object(
			config.Field{Name: "type", Type: config.Enum(TypeFile, TypeTarball, TypeRPM, TypeDeb, TypePackage, TypePackageUpgrade), Required: true,
				Doc: "file, tarball (tar.gz or tar.zst), rpm, deb, package (by name from the distribution's repositories) or package-upgrade."},
			config.Field{Name: "dest", Type: config.String(), Doc: "file: the file's absolute path (a symlink there is replaced by the file, its target untouched); tarball: the directory extracted into (replaced atomically), reached through real directories only (no symlink on the way or at dest). Never the root or a system directory such as /etc, /usr, /opt or /usr/local."},
			config.Field{Name: "mode", Type: config.OneOf(config.String(), config.Int()), Default: "'0644' (file), '0755' (tarball's dest)", Doc: "Octal mode of the file, or of the tarball's dest directory."},
			config.Field{Name: "owner", Type: config.String(), Default: "root:root", Doc: "user:group owning what is installed (names from the root's /etc/passwd and /etc/group)."},
			config.Field{Name: "strip_components", Type: config.Int(), Default: "0", Doc: "tarball: leading path components removed from each entry."},
			config.Field{Name: "max_unpacked_size", Type: config.OneOf(config.String(), config.Int()), Default: "8GiB without a checksum, no cap with one",
				Doc: "tarball: the most the archive may unpack to (tar stream and members together), in bytes or with a unit (512MiB, 2GiB); beyond it the install fails and dest is left as it was. Also caps a checksum-pinned artifact when set."},
			config.Field{Name: "security_only", Type: config.Bool(), Default: "false", Doc: "package-upgrade: security updates only (dnf upgrade --security; unattended-upgrade on Debian-likes)."},
			config.Field{Name: "name", Type: config.String(), Doc: "package: the package name."},
			config.Field{Name: "version", Type: config.String(), Doc: "package: the version to install (default: the newest)."},
		)
	})
	serviceType = sync.OnceValue(func() *config.Type {
		return config.Object(
			config.Field{Name: "unit", Type: config.String(), Required: true, Doc: "Unit name with its suffix, e.g. node-exporter.service."},
			config.Field{Name: "enable", Type: config.Bool(), Default: "false", Doc: "Enable the unit (start it at every boot)."},
			config.Field{Name: "start", Type: config.Bool(), Default: "false", Doc: "Start the unit after the install (and at boot for a baked item)."},
			config.Field{Name: "restart", Type: config.Bool(), Default: "false", Doc: "Restart the unit after the install (to pick up a new version)."},
		)
	})
	softwareType = sync.OnceValue(func() *config.Type {
		return config.Object(
			config.Field{Name: "cache_dir", Type: config.String(), Default: DefaultCacheDir, Doc: "Content-addressed cache of verified artifacts."},
			config.Field{Name: "parallel", Type: config.Int(), Default: strconv.Itoa(DefaultParallel), Doc: "Artifacts fetched at once."},
			config.Field{Name: "retry_for", Type: config.String(), Default: DefaultRetryFor.String(),
				Doc: "How long an item whose sources cannot be reached (refused, reset, 5xx, timeouts) is tried again, every source each time, before it fails: an origin outage shorter than this costs time, not the item. \"0s\" gives up after each source's own retries."},
			config.Field{Name: "ca_file", Type: config.String(), Doc: "PEM file of CA certificates trusted for https sources, besides the system's."},
			config.Field{Name: "s3", Type: config.Object(
				config.Field{Name: "endpoint", Type: config.String(), Doc: "S3-compatible or VPC endpoint URL (AWS_ENDPOINT_URL_S3 is honoured too). A bucket in another region than the instance's is followed there (S3's x-amz-bucket-region answer), at this endpoint when set."},
				config.Field{Name: "path_style", Type: config.Bool(), Default: "false", Doc: "Address buckets as endpoint/bucket/key."},
			), Doc: "S3 client settings."},
			config.Field{Name: "items", Type: config.ListOf(itemType()), Doc: "The artifacts, installed in this order."},
		)
	})
)

// Config is the decoded software key.
type Config struct {
	Source   string `yaml:"-"` // the document it came from, for messages
	Line     int    `yaml:"-"`
	CacheDir string `yaml:"cache_dir"`
	Parallel int    `yaml:"parallel"`
	CAFile   string `yaml:"ca_file"`
	// RetryFor is retry_for: how long unreachable items are fetched again.
	RetryFor config.Duration `yaml:"retry_for"`
	S3       struct {
		Endpoint  string `yaml:"endpoint"`
		PathStyle bool   `yaml:"path_style"`
	} `yaml:"s3"`
	Items []*Item `yaml:"-"`
}

// Item is one entry of software.items. Err is set when the entry cannot be
// used; the other items still are.
type Item struct {
	Index  int   `yaml:"-" json:"-"`
	Line   int   `yaml:"-" json:"-"`
	Column int   `yaml:"-" json:"-"`
	Err    error `yaml:"-" json:"-"`

	Name          string   `yaml:"name" json:"name"`
	Policy        string   `yaml:"policy" json:"policy"`
	Frequency     string   `yaml:"frequency" json:"frequency"`
	Source        string   `yaml:"source" json:"source,omitempty"`
	Sources       []string `yaml:"sources" json:"sources,omitempty"`
	SignatureURL  string   `yaml:"signature_url" json:"signature_url,omitempty"`
	Signature     string   `yaml:"signature" json:"signature,omitempty"`
	PublicKey     string   `yaml:"public_key" json:"public_key,omitempty"`
	PublicKeyFile string   `yaml:"public_key_file" json:"public_key_file,omitempty"`
	GPGKey        string   `yaml:"gpg_key" json:"gpg_key,omitempty"`
	GPGKeyring    string   `yaml:"gpg_keyring" json:"gpg_keyring,omitempty"`
	VersionFrom   string   `yaml:"version_from" json:"version_from,omitempty"`
	SHA256        string   `yaml:"sha256" json:"sha256,omitempty"`
	SHA512        string   `yaml:"sha512" json:"sha512,omitempty"`
	SHA256URL     string   `yaml:"sha256_url" json:"sha256_url,omitempty"`
	SHA512URL     string   `yaml:"sha512_url" json:"sha512_url,omitempty"`
	AllowInsecure bool     `yaml:"allow_insecure" json:"allow_insecure,omitempty"`
	Verify        string   `yaml:"verify" json:"verify"`
	Install       Install  `yaml:"install" json:"install"`
	Service       *Service `yaml:"service" json:"service,omitempty"`
}

// Install says how an item is installed.
type Install struct {
	Type            string   `yaml:"type" json:"type"`
	Dest            string   `yaml:"dest" json:"dest,omitempty"`
	Mode            fileMode `yaml:"mode" json:"mode,omitempty"`
	Owner           string   `yaml:"owner" json:"owner,omitempty"`
	StripComponents int      `yaml:"strip_components" json:"strip_components,omitempty"`
	MaxUnpackedSize byteSize `yaml:"max_unpacked_size" json:"max_unpacked_size,omitempty"`
	SecurityOnly    bool     `yaml:"security_only" json:"security_only,omitempty"`
	Name            string   `yaml:"name" json:"name,omitempty"`
	Version         string   `yaml:"version" json:"version,omitempty"`
}

// Service is the systemd work after an install.
type Service struct {
	Unit    string `yaml:"unit" json:"unit"`
	Enable  bool   `yaml:"enable" json:"enable,omitempty"`
	Start   bool   `yaml:"start" json:"start,omitempty"`
	Restart bool   `yaml:"restart" json:"restart,omitempty"`
}

// fileMode is a mode written as an octal string ('0640') or a YAML integer
// (0640 is octal, as PyYAML reads it). Zero means "the default".
type fileMode os.FileMode

func (m *fileMode) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return errors.New("mode: expected an octal string such as '0644'")
	}
	s := strings.TrimSpace(n.Value)
	var v uint64
	var err error
	if n.Tag == "!!int" {
		v, err = strconv.ParseUint(strings.ReplaceAll(s, "_", ""), 0, 32)
	} else {
		v, err = strconv.ParseUint(strings.TrimPrefix(strings.TrimPrefix(s, "0o"), "0O"), 8, 32)
	}
	if err != nil || v > 0o7777 {
		return fmt.Errorf("mode %q: expected an octal mode up to 07777", n.Value)
	}
	*m = fileMode(v)
	return nil
}

// byteSize is a size in bytes, written as a YAML integer or a string with
// a binary unit ("512MiB", "2 GiB", "4096"). Zero means "the default".
type byteSize int64

// byteUnits are the accepted suffixes; K, M, G and T are binary too, as
// the caps are documented.
var byteUnits = []struct {
	suffix string
	shift  uint
}{
	{"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"TiB", 40},
	{"K", 10}, {"M", 20}, {"G", 30}, {"T", 40}, {"B", 0},
}

func (b *byteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return errors.New("max_unpacked_size: expected a size such as 512MiB")
	}
	v, err := parseByteSize(n.Value)
	if err != nil {
		return fmt.Errorf("max_unpacked_size %q: %w", n.Value, err)
	}
	*b = byteSize(v)
	return nil
}

func parseByteSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	shift := uint(0)
	for _, u := range byteUnits {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, shift = strings.TrimSpace(rest), u.shift
			break
		}
	}
	v, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 10, 64)
	if err != nil || v <= 0 || v > (1<<62)>>shift {
		return 0, errors.New("expected a positive size in bytes or with a unit (KiB, MiB, GiB, TiB)")
	}
	return v << shift, nil
}

// urls are the item's sources in order: source, or sources.
func (it *Item) urls() []string {
	if it.Source != "" {
		return []string{it.Source}
	}
	return it.Sources
}

// Remote reports whether the item's artifact is fetched over the network.
func (it *Item) Remote() bool {
	if it.VersionFrom != "" {
		return true
	}
	for _, u := range it.urls() {
		if !strings.HasPrefix(strings.ToLower(u), "file://") {
			return true
		}
	}
	return false
}

// hasChecksum reports whether the artifact is verified against a checksum.
func (it *Item) hasChecksum() bool {
	return it.SHA256 != "" || it.SHA512 != "" || it.SHA256URL != "" || it.SHA512URL != ""
}

// hasSignature reports whether the artifact is verified against a
// detached signature.
func (it *Item) hasSignature() bool { return it.SignatureURL != "" || it.Signature != "" }

// verified reports whether anything verifies the artifact: a checksum, a
// signature, or (resolved at fetch time) the version manifest's.
func (it *Item) verified() bool { return it.hasChecksum() || it.hasSignature() || it.VersionFrom != "" }

// sigKind is the kind of the item's signature by its key's key.
func (it *Item) sigKind() string {
	if it.GPGKey != "" || it.GPGKeyring != "" {
		return fetch.SigOpenPGP
	}
	return fetch.SigMinisign
}

// NeedsFetch reports whether the item has an artifact to fetch.
func (it *Item) NeedsFetch() bool { return len(it.urls()) > 0 || it.VersionFrom != "" }

// checksumOf returns the configured inline checksum as algo and hex sum
// ("", "" for none or a checksum URL).
func (it *Item) checksumOf() (algo, sum string) {
	switch {
	case it.SHA256 != "":
		return "sha256", strings.ToLower(it.SHA256)
	case it.SHA512 != "":
		return "sha512", strings.ToLower(it.SHA512)
	}
	return "", ""
}

// spec identifies what the item asks for: a per-instance item already
// installed for the same spec is not installed again on a reboot.
func (it *Item) spec() string {
	b, _ := json.Marshal(it)
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:8])
}

// problem is one configuration mistake, located at a line and column.
type problem struct {
	line, col int
	path      string
	msg       string
}

// Parse reads the software key of cfg. ok is false when the key is absent.
// The error is for a key that cannot be used at all; an item's own
// problems are in its Err.
func Parse(cfg *config.CloudConfig) (c *Config, ok bool, err error) {
	v, ok := cfg.Get(Key)
	if !ok {
		return nil, false, nil
	}
	c, probs := decode(v.Source, v.KeyLine, v.Node, true)
	if len(probs) > 0 {
		msgs := make([]string, len(probs))
		for i, p := range probs {
			msgs[i] = fmt.Sprintf("%s:%d: %s: %s", v.Source, p.line, p.path, p.msg)
		}
		return nil, true, fmt.Errorf("%s", strings.Join(msgs, "; "))
	}
	return c, true, nil
}

// decode reads the software mapping: top-level problems are returned;
// items carry theirs. With typeRules, what the schema's types already
// check (required keys, enumerations) is checked too.
func decode(source string, keyLine int, n *yaml.Node, typeRules bool) (*Config, []problem) {
	c := &Config{Source: source, Line: keyLine}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		n = &yaml.Node{Kind: yaml.MappingNode, Line: keyLine}
	}
	if n.Kind != yaml.MappingNode {
		return nil, []problem{{keyLine, 1, Key, "expected a mapping with items"}}
	}
	var probs []problem
	at := func(key string) (int, int) {
		if v := mapValue(n, key); v != nil {
			return v.Line, v.Column
		}
		return n.Line, n.Column
	}
	bad := func(key, format string, args ...any) {
		line, col := at(key)
		probs = append(probs, problem{line, col, Key + "." + key, fmt.Sprintf(format, args...)})
	}
	if err := n.Decode(c); err != nil {
		probs = append(probs, problem{n.Line, n.Column, Key, yamlMsg(err)})
	}
	c.Source, c.Line = source, keyLine
	if c.CacheDir == "" {
		c.CacheDir = DefaultCacheDir
	}
	if !path.IsAbs(c.CacheDir) {
		bad("cache_dir", "%q is not an absolute path", c.CacheDir)
	}
	if c.CAFile != "" && !path.IsAbs(c.CAFile) {
		bad("ca_file", "%q is not an absolute path", c.CAFile)
	}
	if mapValue(n, "parallel") == nil {
		c.Parallel = DefaultParallel
	}
	if mapValue(n, "retry_for") == nil {
		c.RetryFor = config.Duration(DefaultRetryFor)
	}
	if c.RetryFor < 0 {
		bad("retry_for", "a negative duration")
	}
	if c.Parallel < 1 || c.Parallel > maxParallel {
		bad("parallel", "%d: expected 1 to %d", c.Parallel, maxParallel)
	}
	if e := c.S3.Endpoint; e != "" {
		if u, err := url.Parse(e); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad("s3", "endpoint %q is not an http(s) URL", e)
		}
	}
	items := mapValue(n, "items")
	if items == nil || (items.Kind == yaml.ScalarNode && items.Tag == "!!null") {
		return c, probs
	}
	if items.Kind != yaml.SequenceNode {
		return c, append(probs, problem{items.Line, items.Column, Key + ".items", "expected a list of items"})
	}
	seen := map[string]int{}
	for i, in := range items.Content {
		it := decodeItem(i, in, typeRules)
		if it.Err == nil && it.Name != "" {
			if j, dup := seen[it.Name]; dup {
				it.Err = fmt.Errorf("software.items[%d] (line %d): name %q is also the name of items[%d]", i, it.Line, it.Name, j)
			}
			seen[it.Name] = i
		}
		c.Items = append(c.Items, it)
	}
	return c, probs
}

func mapValue(n *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			v := n.Content[i+1]
			if v.Kind == yaml.AliasNode {
				v = v.Alias
			}
			return v
		}
	}
	return nil
}

func yamlMsg(err error) string {
	return strings.TrimPrefix(strings.TrimPrefix(err.Error(), "yaml: "), "unmarshal errors:\n  ")
}

// decodeItem reads one item and checks the rules that span its keys.
func decodeItem(i int, n *yaml.Node, typeRules bool) *Item {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	it := &Item{Index: i, Line: n.Line, Column: n.Column}
	where := func() string {
		if it.Name != "" {
			return fmt.Sprintf("software.items[%d] %s (line %d)", i, it.Name, n.Line)
		}
		return fmt.Sprintf("software.items[%d] (line %d)", i, n.Line)
	}
	if n.Kind != yaml.MappingNode {
		it.Err = fmt.Errorf("%s: expected a mapping with name, source and install", where())
		return it
	}
	if err := n.Decode(it); err != nil {
		it.Err = fmt.Errorf("%s: %s", where(), yamlMsg(err))
		return it
	}
	it.Index, it.Line, it.Column = i, n.Line, n.Column
	if it.Policy == "" {
		it.Policy = PolicyBoot
	}
	if it.Frequency == "" {
		it.Frequency = string(state.PerInstance)
	}
	if it.Verify == "" {
		it.Verify = VerifyQuick
	}
	it.SHA256, it.SHA512 = strings.ToLower(strings.TrimSpace(it.SHA256)), strings.ToLower(strings.TrimSpace(it.SHA512))
	if msgs := checkItem(it, typeRules); len(msgs) > 0 {
		it.Err = fmt.Errorf("%s: %s", where(), strings.Join(msgs, "; "))
	}
	return it
}

// checkItem returns what is wrong with an item whose keys each have the
// right type: the rules between keys, and with typeRules those the
// schema's types say too (required keys, enumerations).
func checkItem(it *Item, typeRules bool) []string {
	var out []string
	bad := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	typeBad := func(format string, args ...any) {
		if typeRules {
			bad(format, args...)
		}
	}
	if strings.TrimSpace(it.Name) == "" {
		typeBad("name is required")
	} else if strings.ContainsFunc(it.Name, func(r rune) bool { return r < ' ' || r == 0x7f || r == '/' }) {
		bad("name %q: no '/' or control characters", it.Name)
	}
	switch it.Policy {
	case PolicyBake, PolicyBoot:
	default:
		typeBad("policy %q: expected bake or boot", it.Policy)
	}
	switch it.Frequency {
	case string(state.PerInstance), string(state.Always):
	default:
		typeBad("frequency %q: expected per-instance or always", it.Frequency)
	}
	switch it.Verify {
	case VerifyQuick, VerifyFull:
	default:
		typeBad("verify %q: expected quick or full", it.Verify)
	}
	in := &it.Install
	needsSource := false
	switch in.Type {
	case TypeFile, TypeTarball:
		needsSource = true
		switch {
		case in.Dest == "":
			bad("install.dest is required for type %s", in.Type)
		case !path.IsAbs(in.Dest):
			bad("install.dest %q is not an absolute path", in.Dest)
		default:
			if msg := systemDirError(path.Clean(in.Dest)); msg != "" {
				bad("%s", msg)
			}
		}
	case TypeRPM, TypeDeb:
		needsSource = true
	case TypePackage:
		if in.Name == "" {
			bad("install.name is required for type package")
		} else if msg := checkWord("install.name", in.Name); msg != "" {
			bad("%s", msg)
		}
		if in.Version != "" {
			if msg := checkWord("install.version", in.Version); msg != "" {
				bad("%s", msg)
			}
		}
	case TypePackageUpgrade:
	case "":
		typeBad("install.type is required")
	default:
		typeBad("install.type %q: expected file, tarball, rpm, deb, package or package-upgrade", in.Type)
	}
	if in.Type != TypePackage && (in.Name != "" || in.Version != "") {
		bad("install.name and install.version are for type package")
	}
	if in.Type != TypeTarball && in.StripComponents != 0 {
		bad("install.strip_components is for type tarball")
	}
	if in.Type != TypeTarball && in.MaxUnpackedSize != 0 {
		bad("install.max_unpacked_size is for type tarball")
	}
	if in.StripComponents < 0 {
		bad("install.strip_components %d is negative", in.StripComponents)
	}
	if in.Type != TypePackageUpgrade && in.SecurityOnly {
		bad("install.security_only is for type package-upgrade")
	}
	if in.Type != TypeFile && in.Type != TypeTarball && (in.Mode != 0 || in.Owner != "") {
		bad("install.mode and install.owner are for types file and tarball")
	}
	if in.Owner != "" && strings.ContainsFunc(in.Owner, func(r rune) bool { return r <= ' ' }) {
		bad("install.owner %q: expected user:group", in.Owner)
	}

	sums := 0
	for _, s := range []string{it.SHA256, it.SHA512, it.SHA256URL, it.SHA512URL} {
		if s != "" {
			sums++
		}
	}
	if it.Source != "" && len(it.Sources) > 0 {
		bad("give source or sources, not both")
	}
	switch {
	case !needsSource && in.Type != "":
		if it.NeedsFetch() || sums > 0 || it.hasSignature() {
			bad("source, sources, version_from, checksums and signatures are not used by type %s", in.Type)
		}
	case needsSource && !it.NeedsFetch():
		bad("source is required for type %s", in.Type)
	case it.NeedsFetch():
		for i, u := range it.urls() {
			key := "source"
			if it.Source == "" {
				key = fmt.Sprintf("sources[%d]", i)
			}
			if msg := checkURL(key, withVersion(u), it.AllowInsecure); msg != "" {
				bad("%s", msg)
			}
		}
		if it.Remote() && !it.verified() {
			bad("a remote source needs a checksum (sha256, sha512, sha256_url or sha512_url) or a signature (signature_url or signature with its key)")
		}
		if sums > 1 {
			bad("give one checksum: sha256, sha512, sha256_url or sha512_url")
		}
	}
	if it.SHA256 != "" && !isHex(it.SHA256, sha256.Size*2) {
		bad("sha256: expected 64 hexadecimal digits")
	}
	if it.SHA512 != "" && !isHex(it.SHA512, 128) {
		bad("sha512: expected 128 hexadecimal digits")
	}
	for _, u := range []struct{ key, val string }{{"sha256_url", it.SHA256URL}, {"sha512_url", it.SHA512URL}, {"signature_url", it.SignatureURL}} {
		if u.val != "" {
			if msg := checkURL(u.key, withVersion(u.val), it.AllowInsecure); msg != "" {
				bad("%s", msg)
			}
		}
	}
	out = append(out, checkSignature(it)...)
	if v := it.VersionFrom; v != "" {
		if msg := checkURL("version_from", v, it.AllowInsecure); msg != "" {
			bad("%s", msg)
		}
	} else {
		for _, u := range append(it.urls(), it.SHA256URL, it.SHA512URL, it.SignatureURL) {
			if strings.Contains(u, versionVar) {
				bad("%s in a URL needs version_from", versionVar)
				break
			}
		}
	}
	if s := it.Service; s != nil {
		switch {
		case s.Unit == "":
			bad("service.unit is required")
		case !strings.Contains(s.Unit, ".") || strings.ContainsAny(s.Unit, "/ \t\n"):
			bad("service.unit %q: expected a unit name with its suffix, such as app.service", s.Unit)
		}
	}
	return out
}

// checkSignature checks the signature keys: one signature with one key,
// and what is inline (a key, a signature) parses.
func checkSignature(it *Item) []string {
	var out []string
	keys := 0
	for _, k := range []string{it.PublicKey, it.PublicKeyFile, it.GPGKey, it.GPGKeyring} {
		if k != "" {
			keys++
		}
	}
	switch {
	case it.SignatureURL != "" && it.Signature != "":
		out = append(out, "give signature_url or signature, not both")
	case it.hasSignature() && keys == 0:
		out = append(out, "a signature needs its trusted key: public_key or public_key_file (minisign), gpg_key or gpg_keyring (OpenPGP)")
	case !it.hasSignature() && keys > 0:
		out = append(out, "public_key, public_key_file, gpg_key and gpg_keyring need signature_url or signature")
	}
	if keys > 1 {
		out = append(out, "give one key: public_key, public_key_file, gpg_key or gpg_keyring")
	}
	for _, f := range []struct{ key, val string }{{"public_key_file", it.PublicKeyFile}, {"gpg_keyring", it.GPGKeyring}} {
		if f.val != "" && !path.IsAbs(f.val) {
			out = append(out, fmt.Sprintf("%s %q is not an absolute path", f.key, f.val))
		}
	}
	if it.PublicKey != "" {
		if err := fetch.CheckSignatureKey(fetch.SigMinisign, []byte(it.PublicKey)); err != nil {
			out = append(out, "public_key: "+err.Error())
		}
	}
	if it.GPGKey != "" {
		if err := fetch.CheckSignatureKey(fetch.SigOpenPGP, []byte(it.GPGKey)); err != nil {
			out = append(out, "gpg_key: "+err.Error())
		}
	}
	if it.Signature != "" && keys == 1 {
		if err := fetch.CheckSignatureData(it.sigKind(), []byte(it.Signature)); err != nil {
			out = append(out, "signature: "+err.Error())
		}
	}
	return out
}

// withVersion fills {version} with a placeholder, to check a URL template.
func withVersion(raw string) string { return strings.ReplaceAll(raw, versionVar, "0.0.0") }

// versionVar is replaced by the version version_from resolved.
const versionVar = "{version}"

// checkURL accepts the sources the fetcher serves: https, s3, file, and
// http only when allowed.
func checkURL(key, raw string, insecure bool) string {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Sprintf("%s: not a URL", key)
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		if u.Host == "" {
			return fmt.Sprintf("%s: https URL without a host", key)
		}
	case "http":
		if !insecure {
			return fmt.Sprintf("%s: http:// needs allow_insecure: true (use https)", key)
		}
	case "s3":
		if u.Host == "" || strings.Trim(u.Path, "/") == "" {
			return fmt.Sprintf("%s: expected s3://bucket/key", key)
		}
	case "file":
		if u.Host != "" && u.Host != "localhost" || !path.IsAbs(u.Path) {
			return fmt.Sprintf("%s: expected file:///absolute/path", key)
		}
	default:
		return fmt.Sprintf("%s: scheme %q: expected https, s3 or file", key, u.Scheme)
	}
	return ""
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// checkWord refuses what would not be one argument naming a package.
func checkWord(what, s string) string {
	switch {
	case strings.HasPrefix(s, "-"):
		return fmt.Sprintf("%s %q starts with '-'", what, s)
	case strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return fmt.Sprintf("%s %q contains whitespace or control characters", what, s)
	}
	return ""
}

// Check implements modules.Checker: the rules between an item's keys
// (a remote source without a checksum, a tarball without dest, ...) as
// schema errors at the item's line.
func (Software) Check(source, key string, v *yaml.Node) []config.Diagnostic {
	if key != Key {
		return nil
	}
	if v.Kind == yaml.AliasNode {
		v = v.Alias
	}
	if v.Kind != yaml.MappingNode {
		return nil // the type check reports it
	}
	c, probs := decode(source, v.Line, v, false)
	var out []config.Diagnostic
	for _, p := range probs {
		// Type mistakes are the type check's to report.
		if strings.Contains(p.msg, "cannot unmarshal") {
			continue
		}
		out = append(out, config.Diagnostic{Source: source, Line: p.line, Column: p.col, Path: p.path, Severity: config.SeverityError, Message: p.msg})
	}
	if c == nil {
		return out
	}
	for _, it := range c.Items {
		if it.Err == nil {
			continue
		}
		msg := it.Err.Error()
		if strings.Contains(msg, "cannot unmarshal") {
			continue
		}
		// The message leads with the item's place; the diagnostic has it.
		if _, rest, ok := strings.Cut(msg, "): "); ok {
			msg = rest
		}
		out = append(out, config.Diagnostic{Source: source, Line: it.Line, Column: it.Column,
			Path: fmt.Sprintf("%s.items[%d]", Key, it.Index), Severity: config.SeverityError, Message: msg})
	}
	return out
}
