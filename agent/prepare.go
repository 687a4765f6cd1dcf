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
// the user data: everything the stages need.
func (b *booter) prepare(ctx context.Context) error {
	if b.opts.IMDS == nil {
		return fmt.Errorf("%w: no IMDS client", ErrNoMetadataSource)
	}
	id, err := b.identify(ctx)
	if err != nil {
		return err
	}
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
	if err := b.root.WriteFile(InstanceEnvFile, EnvFile(b.env), 0o644, nil); err != nil {
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
// and crawls IMDS only for a new instance (or a missing cache).
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
	in, err := b.opts.IMDS.Instance(ctx)
	if err != nil {
		return fmt.Errorf("instance metadata: %w", err)
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
func (b *booter) readUserData(ctx context.Context) {
	raw, err := b.opts.IMDS.UserData(ctx)
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
	opts := userdata.Options{Vars: templateVars(b.instance), AllowInsecureInclude: b.opts.AllowInsecureInclude}
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
			out = append(out, ConfigSource{Name: fmt.Sprintf("user data part %d %q", p.Index, p.Filename), Body: p.Body})
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
	srcs, err := ReadImageConfig(b.root)
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

// yamlErrorLine keeps yaml.v3's "line N: ..." and drops the "yaml: " prefix.
func yamlErrorLine(err error) string {
	msg := err.Error()
	if len(msg) > 6 && msg[:6] == "yaml: " {
		return msg[6:]
	}
	return msg
}

// templateVars are the instance facts "## template: jinja" parts see, in
// cloud-init's instance-data.json shape for EC2: v1 (standardized keys, in
// both the hyphen and underscore spellings cloud-init writes), ds.meta_data
// (the IMDS meta-data tree with IMDS's hyphenated names) and
// ds.dynamic.instance-identity.document; userdata.VarsMap adds the
// underscore aliases (ds.meta_data.placement.availability_zone) and the
// top-level copies of v1 ({{ region }}). merged_cfg is cloud-init's
// system config; ec2init has none at this point of the boot, so it is
// empty and a template using it gets cloud-init's missing-variable marker.
func templateVars(in *imds.Instance) userdata.VarsMap {
	v1 := map[string]any{
		"cloud_name":        "aws",
		"cloud-name":        "aws",
		"cloud_id":          awsCloudID(in.Region),
		"platform":          "ec2",
		"subplatform":       "metadata (http://169.254.169.254)",
		"instance_id":       in.InstanceID,
		"instance-id":       in.InstanceID,
		"local_hostname":    in.LocalHostname,
		"local-hostname":    in.LocalHostname,
		"region":            in.Region,
		"availability_zone": in.AvailabilityZone,
		"availability-zone": in.AvailabilityZone,
		"public_ssh_keys":   publicSSHKeys(in.PublicKeys),
		"machine":           unameMachine(),
		// Not cloud-init's v1 keys, kept for templates written for ec2init.
		"instance_type": in.InstanceType,
		"image_id":      in.AMIID,
		"local_ipv4":    in.LocalIPv4,
		"public_ipv4":   in.PublicIPv4,
	}
	meta := map[string]any{
		"instance-id":    in.InstanceID,
		"instance-type":  in.InstanceType,
		"ami-id":         in.AMIID,
		"hostname":       in.Hostname,
		"local-hostname": in.LocalHostname,
		"local-ipv4":     in.LocalIPv4,
		"mac":            in.MAC,
		"placement": map[string]any{
			"availability-zone": in.AvailabilityZone,
			"region":            in.Region,
		},
		"tags": map[string]any{"instance": stringMap(in.Tags)},
	}
	optional := map[string]string{
		"public-hostname":     in.PublicHostname,
		"public-ipv4":         in.PublicIPv4,
		"ami-launch-index":    in.AMILaunchIndex,
		"reservation-id":      in.ReservationID,
		"instance-life-cycle": in.InstanceLifeCycle,
		"kernel-id":           in.KernelID,
		"ramdisk-id":          in.RamdiskID,
	}
	for k, v := range optional {
		if v != "" {
			meta[k] = v
		}
	}
	placement := meta["placement"].(map[string]any)
	for k, v := range map[string]string{"availability-zone-id": in.AvailabilityZoneID, "group-name": in.Placement.GroupName,
		"partition-number": in.Placement.PartitionNumber, "host-id": in.Placement.HostID} {
		if v != "" {
			placement[k] = v
		}
	}
	if len(in.SecurityGroups) > 0 {
		meta["security-groups"] = anyList(in.SecurityGroups)
	}
	if len(in.PublicKeys) > 0 {
		keys := map[string]any{}
		for _, k := range in.PublicKeys {
			keys[k.Name] = []any{k.OpenSSHKey} // cloud-init's crawl of public-keys/
		}
		meta["public-keys"] = keys
	}
	if len(in.BlockDeviceMapping) > 0 {
		bdm := map[string]any{}
		for _, b := range in.BlockDeviceMapping {
			bdm[b.Name] = b.Device
		}
		meta["block-device-mapping"] = bdm
	}
	ds := map[string]any{"meta_data": meta}
	if doc := in.IdentityDocument; doc != nil {
		ds["dynamic"] = map[string]any{"instance-identity": map[string]any{"document": identityDocument(doc)}}
	}
	return userdata.VarsMap{"v1": v1, "ds": ds, "merged_cfg": map[string]any{}}
}

func stringMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
