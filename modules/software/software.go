// Package software implements the software module, the Hybrid-AMI list:
// artifacts (files, tarballs, rpm and deb packages, packages by name,
// upgrades) each with a policy. A bake item is fetched, verified and
// installed by `ec2init bake` on the instance that becomes the AMI, which
// records it in /var/lib/ec2init/bake.json; at boot it is only verified
// against that manifest. A boot item is fetched and installed at boot, on
// every new instance (or every boot). Flipping one word moves an item
// between the two: a bake item the manifest does not know is fetched and
// installed at boot, with a warning.
//
// Every artifact is verified against its checksum and/or detached
// signature (minisign or OpenPGP), whichever source or mirror served it,
// before anything is installed; version_from resolves "latest" (a
// manifest, or the newest semantic version under an S3 prefix) and the
// resolved version is recorded; a file is replaced by a rename and a tarball's tree by a
// directory switch, so a failed item leaves the previous install whole.
// Items fail alone: the others still run, and the module's error names
// each failed item (the boot is then degraded). Per-item results are kept
// in the instance's state directory (software.json) for `status`.
//
// The module runs at every boot (frequency always) and gates items itself:
// a per-instance item installed for this instance is skipped on a reboot;
// one that failed is tried again, since installs are idempotent.
package software

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/fetch"
	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/redact"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/pkgmgr"
)

// Key is the cloud-config key the module reads.
const Key = "software"

// Software is the module. The zero value is the agent's; the fields let
// tests and `ec2init bake` supply their parts.
type Software struct {
	// NewFetcher builds the artifact fetcher; nil is agent/fetch's.
	NewFetcher func(fetch.ArtifactOptions) (Fetcher, error)
	// Services acts on systemd units; nil is systemd over D-Bus on the
	// running system's root and a recorder under any other root.
	Services sys.Services
	// IMDS gives S3 sources the instance role's credentials; nil is
	// env.IMDS (the agent's client).
	IMDS *imds.Client
	// Packages installs package items and full upgrades.
	Packages pkgmgr.Manager
	// Progress receives each artifact's download progress (a TTY bar).
	Progress func(name string, done, total int64)
	// Getenv reads the environment (AWS_ENDPOINT_URL_S3); nil is os.Getenv.
	Getenv func(string) string
	// LockBase is the first wait when the package database is locked
	// (default 2s).
	LockBase time.Duration
	Now      func() time.Time
}

func (Software) Name() string         { return "software" }
func (Software) Stage() modules.Stage { return modules.StageFinal }

// Frequency is always: the module verifies baked items at every boot and
// runs frequency: always items; it keeps per-instance items to one
// successful install per instance itself.
func (Software) Frequency() modules.Frequency { return state.Always }

// BeforeScripts: the user's scripts and runcmd may use what is installed.
func (Software) BeforeScripts() bool { return true }

func (Software) Schema() modules.Schema {
	return modules.Schema{
		Doc: "Install software artifacts (files, tarballs, rpm/deb, packages) verified by checksum or detached signature (minisign, OpenPGP), from a source or mirrors, pinned or resolved to the newest version, each baked into the AMI or fetched at boot.",
		Keys: []config.Field{{Name: Key, Type: softwareType(),
			Doc: "cache_dir, parallel, ca_file, s3 and the items, each with a policy (bake or boot)."}},
	}
}

func (m Software) now() time.Time {
	if m.Now == nil {
		return time.Now().UTC()
	}
	return m.Now().UTC()
}

func (m Software) getenv(k string) string {
	if m.Getenv == nil {
		return os.Getenv(k)
	}
	return m.Getenv(k)
}

// Actions recorded per item.
const (
	ActionInstalled = "installed"
	ActionVerified  = "verified"
	ActionSkipped   = "skipped"
	ActionFailed    = "failed"
	ActionPlanned   = "planned"
)

// ItemResult is what happened to one item, as software.json and the bake
// summary show it. Source never carries credentials or a query string.
type ItemResult struct {
	Name      string `json:"name"`
	Policy    string `json:"policy"`
	Type      string `json:"type"`
	Frequency string `json:"frequency,omitempty"`
	Source    string `json:"source,omitempty"`
	// Checksum is algo:hex of the artifact.
	Checksum  string `json:"checksum,omitempty"`
	Bytes     int64  `json:"bytes,omitempty"`
	Cached    bool   `json:"cached"`
	Installed bool   `json:"installed"`
	Action    string `json:"action"`
	Error     string `json:"error,omitempty"`
	// Version is the package's, or the one version_from resolved.
	Version string `json:"version,omitempty"`
	// ResolvedURL is the artifact URL version_from gave (redacted).
	ResolvedURL string `json:"resolved_url,omitempty"`
	// FetchedFrom is the source the bytes came from, when a mirror (not
	// the first source) served them.
	FetchedFrom string `json:"fetched_from,omitempty"`
	// Signer names the key whose signature verified the artifact.
	Signer string    `json:"signer,omitempty"`
	Spec   string    `json:"spec"`
	Time   time.Time `json:"time"`
	// FetchMS is the wall time of the fetch the item was part of (the
	// items of one run are fetched together, in parallel), 0 when it
	// fetched nothing; InstallMS its install's. For `ec2init analyze`.
	FetchMS   float64 `json:"fetch_ms,omitempty"`
	InstallMS float64 `json:"install_ms,omitempty"`

	err  error
	inst installed
	algo string
	sum  string
	// resolvedRaw is ResolvedURL unredacted, for Pin.
	resolvedRaw string
}

func newResult(it *Item, now time.Time) ItemResult {
	src := ""
	if urls := it.urls(); len(urls) > 0 {
		src = urls[0]
	} else {
		src = it.VersionFrom
	}
	r := ItemResult{Name: it.Name, Policy: it.Policy, Type: it.Install.Type, Source: redact.URL(src), Spec: it.spec(), Time: now}
	if r.Name == "" {
		r.Name = fmt.Sprintf("items[%d]", it.Index)
	}
	if it.Policy == PolicyBoot {
		r.Frequency = it.Frequency
	}
	return r
}

func (r *ItemResult) fail(err error) {
	r.Action, r.err, r.Error, r.Installed = ActionFailed, err, err.Error(), false
}

// Err is the item's failure, nil if it succeeded.
func (r ItemResult) Err() error { return r.err }

// Run verifies the baked items and installs the boot items (and bake
// items never baked). The error names every failed item.
func (m Software) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	c, ok, err := Parse(cfg)
	if err != nil || !ok {
		return err
	}
	log := env.Logger()
	now := m.now()
	var failures []error
	man, err := ReadManifest(env.Root)
	if err != nil {
		// Unreadable: nothing baked can be trusted; bake items are fetched
		// and installed as if never baked, and the boot is degraded.
		log.Warn("software: bake manifest unreadable; bake items are installed now", zap.Error(err))
		failures = append(failures, err)
		man = nil
	}
	prev := m.loadResults(env)
	results := make([]ItemResult, len(c.Items))
	var todo []int
	for i, it := range c.Items {
		r := newResult(it, now)
		switch {
		case it.Err != nil:
			r.fail(it.Err)
		case it.Policy == PolicyBake && man.Find(it.Name) != nil:
			r = m.checkBaked(ctx, env, it, man.Find(it.Name), r)
		case (it.Policy == PolicyBake || it.Frequency == string(state.PerInstance)) && doneBefore(prev, it):
			// A bake item never baked is installed once per instance too.
			p := prev[it.Name]
			r.Action, r.Installed, r.Checksum, r.Bytes, r.Version = ActionSkipped, true, p.Checksum, p.Bytes, p.Version
			r.ResolvedURL, r.Signer = p.ResolvedURL, p.Signer
			log.Info("software: already installed for this instance", zap.String("item", it.Name))
		case it.Policy == PolicyBake:
			log.Warn("software: bake item not in the bake manifest (never baked); fetching and installing it now",
				zap.String("item", it.Name), zap.String("manifest", ManifestFile))
			todo = append(todo, i)
			continue
		default:
			todo = append(todo, i)
			continue
		}
		results[i] = r
	}
	items := make([]*Item, len(todo))
	for k, i := range todo {
		items[k] = c.Items[i]
	}
	for k, r := range m.apply(ctx, env, c, items, false) {
		results[todo[k]] = r
	}
	for _, r := range results {
		if r.err != nil {
			failures = append(failures, fmt.Errorf("%s: %w", r.Name, r.err))
		}
	}
	if err := m.saveResults(env, results); err != nil {
		failures = append(failures, err)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return modules.JoinItemErrors(failures)
}

// checkBaked verifies a baked item and, when its service is to run,
// starts the unit (a no-op if it already runs).
func (m Software) checkBaked(ctx context.Context, env *modules.Env, it *Item, mi *ManifestItem, r ItemResult) ItemResult {
	log := env.Logger()
	r.Checksum, r.Bytes = mi.Algo+":"+mi.Sum, mi.Size
	if mi.Sum == "" {
		r.Checksum = ""
	}
	if mi.Package != nil {
		r.Version = mi.Package.Version
	}
	if mi.Version != "" {
		r.Version = mi.Version
	}
	r.ResolvedURL, r.Signer = mi.ResolvedURL, mi.Signer
	if err := m.verifyBaked(ctx, env, it, mi); err != nil {
		log.Warn("software: baked item changed", zap.String("item", it.Name), zap.String("verify", it.Verify), zap.Error(err))
		r.fail(err)
		return r
	}
	r.Action, r.Installed = ActionVerified, true
	log.Info("software: baked item verified", zap.String("item", it.Name), zap.String("verify", it.Verify))
	if s := it.Service; s != nil && (s.Start || s.Restart) {
		if err := m.services(env).Start(ctx, s.Unit); err != nil {
			r.fail(err)
			r.Installed = true // verified, but its unit did not come up
		}
	}
	return r
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func doneBefore(prev map[string]ItemResult, it *Item) bool {
	p, ok := prev[it.Name]
	return ok && p.Spec == it.spec() && p.Installed && p.Error == ""
}

func (m Software) services(env *modules.Env) sys.Services {
	if m.Services != nil {
		return m.Services
	}
	return sys.NewServices(env.Root, env.Logger())
}

// apply fetches (in parallel, bounded) and installs (in list order) items;
// bake says this is `ec2init bake`: what the manifest needs is recorded,
// units are enabled but not started on the build instance. Results are in
// the order of items.
func (m Software) apply(ctx context.Context, env *modules.Env, c *Config, items []*Item, bake bool) []ItemResult {
	log := env.Logger()
	now := m.now()
	results := make([]ItemResult, len(items))
	for i, it := range items {
		results[i] = newResult(it, now)
	}
	arts := m.fetchAll(ctx, env, c, items, results)
	svc := m.services(env)
	for i, it := range items {
		r := &results[i]
		if r.err != nil {
			continue
		}
		if err := ctx.Err(); err != nil {
			r.fail(err)
			continue
		}
		start := time.Now()
		var artSHA256 string
		if r.algo == "sha256" {
			artSHA256 = r.sum
		}
		inst, err := m.install(ctx, env, it, arts[i], artSHA256, bake)
		if err != nil {
			log.Error("software: install failed", zap.String("item", it.Name), zap.String("type", it.Install.Type), zap.Error(err))
			r.fail(err)
			continue
		}
		r.inst, r.Installed, r.Action = inst, true, ActionInstalled
		r.InstallMS = millis(time.Since(start))
		if inst.pkg != nil {
			r.Version = inst.pkg.Version
		}
		log.Info("software: installed", zap.String("item", it.Name), zap.String("type", it.Install.Type),
			zap.Duration("duration", time.Since(start)))
		if err := m.serviceActions(ctx, svc, it, bake); err != nil {
			r.fail(err)
			r.Installed = true // installed, but its unit did not come up
		}
	}
	return results
}

// serviceActions reloads systemd (the install may have added a unit
// file), enables and starts or restarts the item's unit. On the build
// instance units are enabled only: they start on the instances.
func (m Software) serviceActions(ctx context.Context, svc sys.Services, it *Item, bake bool) error {
	s := it.Service
	if s == nil {
		return nil
	}
	if err := svc.Reload(ctx); err != nil {
		return err
	}
	if s.Enable {
		if err := svc.Enable(ctx, s.Unit); err != nil {
			return err
		}
	}
	switch {
	case bake:
	case s.Restart:
		return svc.Restart(ctx, s.Unit)
	case s.Start:
		return svc.Start(ctx, s.Unit)
	}
	return nil
}

// fetchAll fetches the artifacts of items that have one, resolving
// version_from first; a failure is set in results. The returned paths are
// real paths in the cache.
func (m Software) fetchAll(ctx context.Context, env *modules.Env, c *Config, items []*Item, results []ItemResult) []string {
	log := env.Logger()
	arts := make([]string, len(items))
	var idx []int
	var names []string
	var srcs []fetch.Source
	var f Fetcher
	var fetcherErr error
	getFetcher := func() (Fetcher, error) {
		if f == nil && fetcherErr == nil {
			f, fetcherErr = m.fetcher(ctx, env, c, needsS3(items))
		}
		return f, fetcherErr
	}
	for i, it := range items {
		if !it.NeedsFetch() {
			continue
		}
		if !it.verified() {
			// A file:// source with nothing to verify it against (the
			// schema requires a checksum or signature of remote ones):
			// used in place.
			if err := localArtifact(env.Root, it, &results[i], &arts[i]); err != nil {
				results[i].fail(err)
			}
			continue
		}
		var rv fetch.Resolved
		if it.VersionFrom != "" {
			f, err := getFetcher()
			if err != nil {
				results[i].fail(err)
				continue
			}
			rv, err = f.ResolveVersion(ctx, it.Name, it.VersionFrom, it.AllowInsecure)
			if err != nil {
				log.Error("software: version_from failed", zap.String("item", it.Name), zap.Error(err))
				results[i].fail(fmt.Errorf("version_from: %w", err))
				continue
			}
			results[i].Version = rv.Version
			log.Info("software: version resolved", zap.String("item", it.Name), zap.String("version", rv.Version),
				zap.String("url", redact.URL(rv.URL)))
		}
		src, err := m.source(env.Root, it, rv)
		if err != nil {
			results[i].fail(err)
			continue
		}
		if it.VersionFrom != "" {
			raw := rv.URL
			if urls := it.urls(); len(urls) > 0 {
				raw = strings.ReplaceAll(urls[0], versionVar, rv.Version)
			}
			results[i].ResolvedURL, results[i].resolvedRaw = redact.URL(raw), raw
		}
		idx, names, srcs = append(idx, i), append(names, it.Name), append(srcs, src)
	}
	if len(srcs) == 0 {
		return arts
	}
	f, err := getFetcher()
	if err != nil {
		for _, i := range idx {
			results[i].fail(err)
		}
		return arts
	}
	start := time.Now()
	got, errs := fetchOutlasting(ctx, f, c, names, srcs, log, outageWait)
	fetched := time.Since(start)
	for k, i := range idx {
		r := &results[i]
		var err error
		if k < len(errs) {
			err = errs[k]
		}
		if err == nil && (k >= len(got) || got[k].Path == "") {
			err = errors.New("the fetcher returned no artifact")
		}
		if err != nil {
			log.Error("software: fetch failed", zap.String("item", names[k]), zap.String("source", r.Source), zap.Error(err))
			r.fail(fmt.Errorf("fetch %s: %w", redact.URL(srcs[k].URL), err))
			continue
		}
		a := got[k]
		arts[i] = a.Path
		if !a.Cached {
			r.FetchMS = millis(fetched)
		}
		r.Checksum, r.Bytes, r.Cached, r.algo, r.sum = a.Algo+":"+a.Sum, a.Size, a.Cached, a.Algo, a.Sum
		r.Signer = a.Signer
		if a.URL != "" && a.URL != redact.URL(srcs[k].URL) {
			r.FetchedFrom = a.URL
		}
		log.Info("software: fetched", zap.String("item", names[k]), zap.String("source", r.Source),
			zap.Int64("bytes", a.Size), zap.Bool("cached", a.Cached), zap.String("checksum", r.Checksum),
			zap.String("signer", a.Signer), zap.String("from", a.URL),
			zap.Duration("since_start", time.Since(start)))
	}
	return arts
}

// localArtifact points at a file:// source under the root, hashing it
// for the record.
func localArtifact(root *sys.Root, it *Item, r *ItemResult, art *string) error {
	raw := it.urls()[0]
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	p, err := root.Path(path.Clean(u.Path))
	if err != nil {
		return fmt.Errorf("source %s: %w", raw, err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("source %s: %w", raw, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("source %s: not a regular file", raw)
	}
	sum, err := fileSHA256(p)
	if err != nil {
		return fmt.Errorf("source %s: %w", raw, err)
	}
	*art = p
	r.algo, r.sum, r.Checksum, r.Bytes = "sha256", sum, "sha256:"+sum, fi.Size()
	return nil
}

// source is the fetcher's view of an item: {version} filled with what
// version_from resolved (whose URL, checksum and signature URL stand in
// for those the item lacks), file:// URLs (sources, checksum, signature)
// pointing into the root, and the signature's key read from the root.
func (m Software) source(root *sys.Root, it *Item, rv fetch.Resolved) (fetch.Source, error) {
	fill := func(raw string) (string, error) {
		if raw == "" {
			return "", nil
		}
		return inRoot(root, strings.ReplaceAll(raw, versionVar, rv.Version))
	}
	s := fetch.Source{SHA256: it.SHA256, SHA512: it.SHA512, AllowInsecure: it.AllowInsecure}
	urls := it.urls()
	if len(urls) == 0 && rv.URL != "" {
		urls = []string{rv.URL}
	}
	if len(urls) == 0 {
		return s, errors.New("version_from gave no url and the item has no source")
	}
	for i, raw := range urls {
		u, err := fill(raw)
		if err != nil {
			return s, err
		}
		if i == 0 {
			s.URL = u
		} else {
			s.Mirrors = append(s.Mirrors, u)
		}
	}
	var err error
	switch {
	case it.SHA256URL != "":
		s.ChecksumURL, s.ChecksumAlgo = it.SHA256URL, "sha256"
	case it.SHA512URL != "":
		s.ChecksumURL, s.ChecksumAlgo = it.SHA512URL, "sha512"
	case !it.hasChecksum():
		// The manifest's digest, when the item names none of its own.
		s.SHA256, s.SHA512 = rv.SHA256, rv.SHA512
	}
	if s.ChecksumURL, err = fill(s.ChecksumURL); err != nil {
		return s, err
	}
	if sig, err := m.signature(root, it, rv, fill); err != nil || sig != nil {
		if err != nil {
			return s, err
		}
		s.Signature = sig
	}
	if s.SHA256 == "" && s.SHA512 == "" && s.ChecksumURL == "" && s.Signature == nil {
		return s, errors.New("nothing to verify the artifact with: version_from gave no sha256, sha512 or signature_url, and the item has no checksum or signature of its own")
	}
	return s, nil
}

// signature is the item's detached signature with its key read (from the
// root for a key file); nil without one.
func (m Software) signature(root *sys.Root, it *Item, rv fetch.Resolved, fill func(string) (string, error)) (*fetch.Signature, error) {
	sigURL := it.SignatureURL
	if sigURL == "" && it.Signature == "" {
		sigURL = rv.SignatureURL
	}
	keyed := it.PublicKey != "" || it.PublicKeyFile != "" || it.GPGKey != "" || it.GPGKeyring != ""
	if !keyed || (sigURL == "" && it.Signature == "") {
		return nil, nil
	}
	sig := &fetch.Signature{Kind: it.sigKind()}
	switch {
	case it.PublicKey != "":
		sig.Key = []byte(it.PublicKey)
	case it.GPGKey != "":
		sig.Key = []byte(it.GPGKey)
	default:
		key, file := "public_key_file", it.PublicKeyFile
		if it.GPGKeyring != "" {
			key, file = "gpg_keyring", it.GPGKeyring
		}
		b, err := root.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		if err := fetch.CheckSignatureKey(sig.Kind, b); err != nil {
			return nil, fmt.Errorf("%s %s: %w", key, file, err)
		}
		sig.Key = b
	}
	if it.Signature != "" {
		sig.Data = []byte(it.Signature)
		return sig, nil
	}
	var err error
	if sig.URL, err = fill(sigURL); err != nil {
		return nil, err
	}
	return sig, nil
}

// inRoot maps a file:// URL to the file under the root; other URLs are
// returned as they are.
func inRoot(root *sys.Root, raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || !strings.EqualFold(u.Scheme, "file") {
		return raw, nil
	}
	p, err := root.Path(path.Clean(u.Path))
	if err != nil {
		return "", fmt.Errorf("source %s: %w", raw, err)
	}
	return (&url.URL{Scheme: "file", Path: p}).String(), nil
}

// fetcher builds the artifact fetcher for c: the cache under the root
// (0700: it may hold private software), the CA file from the root.
func (m Software) fetcher(ctx context.Context, env *modules.Env, c *Config, s3 bool) (Fetcher, error) {
	if !exists(env.Root, c.CacheDir) {
		if err := env.Root.MkdirAll(c.CacheDir, 0o700); err != nil {
			return nil, fmt.Errorf("cache: %w", err)
		}
	}
	cache, err := env.Root.Path(c.CacheDir)
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	// Without Progress (no terminal) the fetcher logs progress itself.
	opts := fetch.ArtifactOptions{CacheDir: cache, S3Endpoint: c.S3.Endpoint, S3PathStyle: c.S3.PathStyle,
		IMDS: m.IMDS, Log: env.Log, Env: m.getenv, Progress: m.Progress}
	if c.CAFile != "" {
		if opts.CAFile, err = env.Root.Path(c.CAFile); err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
	}
	if env.Fetcher != nil {
		// The boot's connection pool; with a ca_file (other roots) the
		// artifact fetcher builds its own transport.
		opts.Transport = env.Fetcher.Transport()
	}
	if opts.IMDS == nil {
		opts.IMDS = env.IMDS
	}
	if opts.IMDS == nil && s3 {
		return nil, errNoIMDS
	}
	newFetcher := m.NewFetcher
	if newFetcher == nil {
		newFetcher = defaultFetcher
	}
	f, err := newFetcher(opts)
	if err != nil {
		return nil, fmt.Errorf("fetcher: %w", err)
	}
	return f, nil
}

// needsS3 says whether an item reads from S3 (and needs the role).
func needsS3(items []*Item) bool {
	for _, it := range items {
		for _, u := range append(it.urls(), it.SHA256URL, it.SHA512URL, it.SignatureURL, it.VersionFrom) {
			if strings.HasPrefix(strings.ToLower(u), "s3://") {
				return true
			}
		}
	}
	return false
}

// errNoIMDS is an s3:// item in a run without a metadata client (the
// agent's env.IMDS, or Software.IMDS for bake).
var errNoIMDS = errors.New("s3 sources need the instance role's credentials from IMDS, and this run has no metadata client")

// store is the module's own store for this instance (software.json), nil
// outside a boot.
func (m Software) store(env *modules.Env) *state.ModuleStore {
	if env.State == nil {
		return nil
	}
	return env.State.For(m.Name())
}

// ResultsPath is where the module records instance id's per-item results.
func ResultsPath(instanceID string) string {
	return state.ModuleStatePath(instanceID, Software{}.Name())
}

// ReadResults returns the per-item results recorded for instance id (nil,
// nil when the module never ran for it), for `status`.
func ReadResults(root *sys.Root, instanceID string) ([]ItemResult, error) {
	return state.LoadItems[ItemResult](state.NewModuleStates(root, instanceID).For(Software{}.Name()))
}

// loadResults reads this instance's previous results by item name; a
// missing or unreadable record means nothing was installed yet.
func (m Software) loadResults(env *modules.Env) map[string]ItemResult {
	st := m.store(env)
	if st == nil {
		return nil
	}
	items, err := state.LoadItems[ItemResult](st)
	if err != nil {
		env.Logger().Warn("software: previous results unreadable; installing again", zap.String("file", st.Path()), zap.Error(err))
		return nil
	}
	out := map[string]ItemResult{}
	for _, r := range items {
		out[r.Name] = r
	}
	return out
}

// saveResults writes the per-item results where `status` finds them:
// 0600 in the instance's state directory.
func (m Software) saveResults(env *modules.Env, results []ItemResult) error {
	st := m.store(env)
	if st == nil {
		return nil
	}
	if err := state.SaveItems(st, results, time.Now()); err != nil {
		return fmt.Errorf("recording results: %w", err)
	}
	return nil
}

// fetchOutlasting is FetchAll, with the items that failed for a passing
// reason (fetch.Transient: the origin down or overloaded) fetched again,
// every source each round, until c.RetryFor has passed since the first
// round: an outage shorter than that costs the boot time, not the item.
func fetchOutlasting(ctx context.Context, f Fetcher, c *Config, names []string, srcs []fetch.Source, log *zap.Logger,
	waitFor func(round int) time.Duration) ([]fetch.Artifact, []error) {
	start := time.Now()
	got, errs := f.FetchAll(ctx, c.Parallel, names, srcs)
	// One artifact and one error per name, whatever the fetcher returned.
	got = append(got, make([]fetch.Artifact, max(0, len(names)-len(got)))...)
	errs = append(errs, make([]error, max(0, len(names)-len(errs)))...)
	for round := 1; ; round++ {
		var again []int
		for k, err := range errs {
			if fetch.Transient(err) {
				again = append(again, k)
			}
		}
		wait := waitFor(round)
		if len(again) == 0 || ctx.Err() != nil || time.Since(start)+wait > time.Duration(c.RetryFor) {
			return got, errs
		}
		log.Warn("software: sources unreachable; trying again", zap.Int("items", len(again)),
			zap.Duration("in", wait), zap.Duration("retry_for", time.Duration(c.RetryFor)))
		select {
		case <-ctx.Done():
			return got, errs
		case <-time.After(wait):
		}
		subNames, subSrcs := make([]string, len(again)), make([]fetch.Source, len(again))
		for j, k := range again {
			subNames[j], subSrcs[j] = names[k], srcs[k]
		}
		subGot, subErrs := f.FetchAll(ctx, c.Parallel, subNames, subSrcs)
		for j, k := range again {
			if j < len(subGot) {
				got[k] = subGot[j]
			}
			if j < len(subErrs) {
				errs[k] = subErrs[j]
			}
		}
	}
}

// outageWait is the pause before round n of fetching unreachable items
// again: 2 s more each round, at most 15 s.
func outageWait(round int) time.Duration {
	return min(time.Duration(round)*2*time.Second, 15*time.Second)
}
