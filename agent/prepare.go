package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/agent/userdata"
	"github.com/ec2init/ec2init/internal/backoff"
)

// Files the agent writes outside the state directory.
const (
	// InstanceEnvFile holds the instance facts for systemd units
	// (EnvironmentFile=) and scripts, rewritten at every boot.
	InstanceEnvFile = "/run/ec2init/instance.env"
	// RunStatusFile is a world-readable copy of status.json with names and
	// states only (PublicStatus).
	RunStatusFile = "/run/ec2init/status.json"
	// RunStatusFullFile is the live status with every message, 0600.
	RunStatusFullFile = "/run/ec2init/status-full.json"
	instanceCache     = "instance.json"
)

// prepare identifies the instance, decides what this boot is, and reads
// the user data: everything the stages need. IMDS is asked as little as
// cloud-init's cache lets it: a later stage of a boot whose status already
// names the instance asks nothing (its facts and user data are the ones
// the first stage stored); the first stage of a reboot asks the instance
// id and the user data; only a new instance is crawled, once.
func (b *booter) prepare(ctx context.Context) error {
	if b.opts.IMDS == nil {
		return fmt.Errorf("%w: no IMDS client", ErrNoMetadataSource)
	}
	id := ""
	if b.continued {
		id = b.status.InstanceID
	}
	if id == "" {
		var err error
		if id, err = b.identify(ctx); err != nil {
			return err
		}
	}
	var err error
	b.trans, err = b.store.BeginInstance(id)
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	b.status.InstanceID = id
	b.log = b.log.With(zap.String("instance_id", id))
	if b.trans.NewInstance && !b.trans.Resumed {
		b.log.Info("new instance: per-instance work runs", zap.String("previous_instance_id", b.trans.PreviousInstanceID))
	}

	if err := b.loadInstance(ctx); err != nil {
		return err
	}
	b.env = FactsEnvLog(b.instance, b.log)
	if err := b.runRoot.WriteFileIfChanged(InstanceEnvFile, EnvFile(b.env), 0o644, nil); err != nil {
		return fmt.Errorf("write %s: %w", InstanceEnvFile, err)
	}
	b.readUserData(ctx)
	b.mergeCloudConfig()
	return nil
}

// identify asks IMDS for the instance id, retrying until the deadline: at
// boot the network may not be up yet. It is the one request a reboot of a
// known instance needs before deciding nothing else must be fetched.
func (b *booter) identify(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, b.opts.IdentifyDeadline)
	defer cancel()
	for attempt := 1; ; attempt++ {
		id, err := b.opts.IMDS.Get(ctx, "instance-id")
		if err == nil && id != "" {
			return id, nil
		}
		if err == nil {
			err = errors.New("empty instance-id")
		}
		b.log.Warn("waiting for instance metadata", zap.Int("attempt", attempt), zap.Error(err))
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%w within %s: %v", ErrNoMetadataSource, b.opts.IdentifyDeadline, err)
		case <-time.After(backoff.Delay(200*time.Millisecond, 5*time.Second, attempt, 0.5+rand.Float64()/2)):
		}
	}
}

// loadInstance uses the facts cached for this instance when it is known,
// and crawls IMDS only for a new instance (or a missing cache). The one
// crawl also gives cloud-init's view of the tree (crawledMetaData), so
// instance-data.json and jinja never crawl again.
func (b *booter) loadInstance(ctx context.Context) error {
	if !b.trans.NewInstance || b.trans.Resumed {
		if data, err := b.store.ReadInstanceFile(instanceCache); err == nil {
			var in imds.Instance
			if err := json.Unmarshal(data, &in); err == nil && in.InstanceID == b.status.InstanceID {
				b.instance = &in
				return nil
			}
			b.log.Warn("cached instance facts unreadable; fetching again")
		} else if !errors.Is(err, fs.ErrNotExist) {
			b.log.Warn("read cached instance facts", zap.Error(err))
		}
	}
	in, tree, err := b.opts.IMDS.InstanceTree(ctx, map[string]string{"meta-data/instance-id": b.status.InstanceID})
	if err != nil {
		return fmt.Errorf("instance metadata: %w", err)
	}
	b.crawled = MaterializeMetaData(tree)
	if data, err := json.Marshal(b.crawled); err == nil {
		if err := b.store.WriteInstanceFile(crawledMetaDataFile, data); err != nil {
			b.log.Warn("cache crawled metadata", zap.Error(err))
		}
	}
	data, err := json.MarshalIndent(in, "", "  ")
	if err != nil {
		return err
	}
	if err := b.store.WriteInstanceFile(instanceCache, data); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	b.instance = in
	return nil
}

// readUserData fetches, stores and parses the user data. Problems are
// recorded in the status, never fatal: a boot with broken user data still
// finishes and says why it is degraded.
//
// It is fetched once per boot, by its first stage, as cloud-init's local
// stage fetches it afresh at every boot (so user data edited while the
// instance was stopped is read on its next boot); the later stages of the
// boot read the copy that stage stored, as cloud-init's later stages
// trust its cached datasource.
func (b *booter) readUserData(ctx context.Context) {
	raw, err := b.storedUserData()
	if err != nil {
		raw, err = b.opts.IMDS.UserData(ctx)
		switch {
		case errors.Is(err, imds.ErrNotFound):
			raw = nil
		case err != nil:
			b.fail("user data: " + err.Error())
			return
		}
		if err := b.store.WriteInstanceFile(state.UserDataRaw, raw); err != nil {
			b.fail("user data: store: " + err.Error())
		}
	}
	opts := userdata.Options{Vars: lazyVars(b.jinjaVars), AllowInsecureInclude: b.opts.AllowInsecureInclude}
	res, err := userdata.Parse(raw, opts)
	if err != nil {
		b.fail(err.Error())
		return
	}
	if hasIncludes(res) {
		fetch := b.opts.Fetch
		if fetch == nil {
			fetch = func(context.Context, string) ([]byte, error) {
				return nil, errors.New("#include is not enabled on this host")
			}
		}
		if res, err = userdata.Resolve(ctx, res, fetch, opts); err != nil {
			b.fail(err.Error())
			return
		}
	}
	if idx, err := strconv.Atoi(b.instance.AMILaunchIndex); err == nil {
		res = res.ForLaunchIndex(idx)
	}
	for _, w := range res.Warnings {
		b.degrade(w.String())
	}
	b.userDocs = b.checkCloudConfig(cloudConfigParts(res))
	b.userData = res
	b.log.Info("user data read", zap.Int("bytes", len(raw)), zap.Int("parts", len(res.Parts)),
		zap.Int("warnings", len(res.Warnings)))
}

// storedUserData is the user data this boot's first stage stored, for a
// later stage of the same boot; an error when this stage is the first.
func (b *booter) storedUserData() ([]byte, error) {
	if !b.trans.Resumed {
		return nil, fs.ErrNotExist
	}
	return b.store.ReadInstanceFile(state.UserDataRaw)
}

// lazyVars builds the jinja view only when a part is a template: most
// user data has none, and the view reads the image (system config, libc).
func lazyVars(build func() userdata.VarsMap) userdata.Vars {
	var once sync.Once
	var vars userdata.VarsMap
	return varsFunc(func() map[string]any {
		once.Do(func() { vars = build() })
		return vars.TemplateData()
	})
}

type varsFunc func() map[string]any

func (f varsFunc) TemplateData() map[string]any { return f() }

func hasIncludes(res *userdata.Result) bool {
	for _, p := range res.Parts {
		if p.Kind == userdata.KindInclude || p.Kind == userdata.KindIncludeOnce {
			return true
		}
	}
	return false
}

// ConfigSource is a cloud-config document and where it came from.
type ConfigSource struct {
	Name string
	Body []byte
	// MergeType is a user-data part's Merge-Type header: how it merges into
	// the documents before it (see config.Merge).
	MergeType string
}

func cloudConfigParts(res *userdata.Result) []ConfigSource {
	var out []ConfigSource
	for _, p := range res.Parts {
		if p.Kind == userdata.KindCloudConfig {
			out = append(out, ConfigSource{Name: fmt.Sprintf("user data part %d %q", p.Index, p.Filename), Body: p.Body, MergeType: p.MergeType})
		}
	}
	return out
}

// mergeCloudConfig merges the image's cloud-config (ImageConfigDir, what
// the AMI's builder put there: the software list `ec2init bake` baked
// from) under the user data's: a user-data key replaces the image's. Both
// lie over cloud-init's system configuration (/etc/cloud, see
// applySystemConfig), merged as cloud-init merges its own: their values
// win, mappings merge key by key.
func (b *booter) mergeCloudConfig() {
	srcs, err := b.sysCfg.imageConfig(b.root)
	if err != nil {
		b.fail("image cloud-config: " + err.Error())
	}
	docs := append(b.checkCloudConfig(srcs), b.userDocs...)
	b.cloudConfig = b.applySystemConfig(config.Merge(docs...))
}

// checkCloudConfig parses and validates cloud-config documents, reporting
// problems by source, line and key (never content), and returns what is
// valid: a key with errors is left out, the rest of the document still
// applies.
func (b *booter) checkCloudConfig(srcs []ConfigSource) []config.Doc {
	loaded, _ := LoadCloudConfig(srcs, ConfigPolicy{Registry: b.registry}) // not Strict: never fails
	for _, c := range loaded.Checked {
		errs, warnings := c.Problems()
		for _, msg := range errs {
			b.fail(msg)
		}
		for _, msg := range warnings {
			b.degrade(msg)
		}
	}
	return loaded.Docs
}

// ImageConfigDir holds cloud-config that is part of the image rather than
// of one launch: *.cfg and *.yaml files, read in lexical order at every
// boot and merged before the user data's parts (as cloud-init's
// /etc/cloud/cloud.cfg.d).
const ImageConfigDir = "/etc/ec2init/cloud.cfg.d"

// ReadImageConfig returns the documents of ImageConfigDir under root, in
// lexical order; a missing directory is none.
func ReadImageConfig(root *sys.Root) ([]ConfigSource, error) {
	entries, err := root.ReadDir(ImageConfigDir)
	if err != nil {
		return nil, err
	}
	var out []ConfigSource
	for _, e := range entries { // os.ReadDir sorts by name
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || !(strings.HasSuffix(name, ".cfg") || strings.HasSuffix(name, ".yaml")) {
			continue
		}
		p := path.Join(ImageConfigDir, name)
		body, err := root.ReadFile(p)
		if err != nil {
			return out, err
		}
		out = append(out, ConfigSource{Name: p, Body: body})
	}
	return out, nil
}

func topKey(path string) string {
	if i := strings.IndexAny(path, ".["); i >= 0 {
		return path[:i]
	}
	return path
}

func withoutKeys(d config.Doc, drop map[string]bool) config.Doc {
	if len(drop) == 0 || d.Root == nil {
		return d
	}
	root := *d.Root
	root.Content = nil
	for i := 0; i+1 < len(d.Root.Content); i += 2 {
		if !drop[d.Root.Content[i].Value] {
			root.Content = append(root.Content, d.Root.Content[i], d.Root.Content[i+1])
		}
	}
	return config.Doc{Source: d.Source, Root: &root}
}

func stringMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
