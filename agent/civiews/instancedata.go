package civiews

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/ec2init/ec2init/agent/sys"
)

// cloud-init's instance data files.
const (
	InstanceDataFile          = RunDir + "/instance-data.json"
	InstanceDataSensitiveFile = RunDir + "/instance-data-sensitive.json"
	CloudIDFile               = RunDir + "/cloud-id"
	// CombinedConfigFile is the cloud-config the boot acts on, 0600.
	CombinedConfigFile = RunDir + "/combined-cloud-config.json"
	// CombinedConfigDoc is cloud-init's _doc of CombinedConfigFile.
	CombinedConfigDoc = "Aggregated cloud-config created by merging merged_system_cfg (/etc/cloud/cloud.cfg and /etc/cloud/cloud.cfg.d), metadata, vendordata and userdata. The combined_cloud_config represents the aggregated desired configuration acted upon by cloud-init."
	// RedactedValue replaces every sensitive value in the world-readable
	// instance-data.json (cloud-init's REDACT_SENSITIVE_VALUE).
	RedactedValue = "redacted for non-root user"
	// DSDoc is cloud-init's note on ds (EXPERIMENTAL_TEXT).
	DSDoc = "EXPERIMENTAL: The structure and format of content scoped under the 'ds' key may change in subsequent releases of cloud-init."
)

// SensitiveKeys are the key names, or key paths, whose values only root
// may read (cloud-init's sensitive_metadata_keys, as its Ec2 datasource
// has them).
var SensitiveKeys = []string{
	"combined_cloud_config",
	"merged_cfg",
	"merged_system_cfg",
	"security-credentials",
	"userdata",
	"user-data",
	"user_data",
	"vendordata",
	"vendor-data",
	"ds/vendor_data",
}

// ProcessInstanceData returns a copy of data with cloud-init's two
// catalogues at its top: base64_encoded_keys (values stored with the
// "ci-b64:" prefix, which is stripped) and sensitive_keys (the slash
// paths of every key SensitiveKeys names, at any depth), both sorted.
func ProcessInstanceData(data map[string]any) map[string]any {
	out, b64, sens := processLevel(data, "")
	sort.Strings(b64)
	sort.Strings(sens)
	out["base64_encoded_keys"] = stringsAny(b64)
	out["sensitive_keys"] = stringsAny(sens)
	return out
}

func processLevel(m map[string]any, prefix string) (out map[string]any, b64, sens []string) {
	out = make(map[string]any, len(m))
	for k, v := range m {
		p := k
		if prefix != "" {
			p = prefix + "/" + k
		}
		if isSensitive(k) || isSensitive(p) {
			sens = append(sens, p)
		}
		switch x := v.(type) {
		case string:
			if rest, ok := strings.CutPrefix(x, "ci-b64:"); ok {
				b64 = append(b64, p)
				v = rest
			}
		case map[string]any:
			sub, sb, ss := processLevel(x, p)
			b64, sens = append(b64, sb...), append(sens, ss...)
			v = sub
		}
		out[k] = v
	}
	return out, b64, sens
}

func isSensitive(key string) bool {
	key = strings.ToLower(key)
	for _, s := range SensitiveKeys {
		if s == key {
			return true
		}
	}
	return false
}

func stringsAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// RedactInstanceData returns a copy of processed data (see
// ProcessInstanceData) with the value of every path its sensitive_keys
// names replaced by RedactedValue: instance-data.json.
func RedactInstanceData(data map[string]any) map[string]any {
	out := copyMap(data)
	keys, _ := out["sensitive_keys"].([]any)
	for _, k := range keys {
		p, _ := k.(string)
		parts := strings.Split(p, "/")
		obj := out
		ok := true
		for _, part := range parts[:len(parts)-1] {
			sub, isMap := obj[part].(map[string]any)
			if !isMap {
				ok = false // an ancestor is redacted already
				break
			}
			obj = sub
		}
		if last := parts[len(parts)-1]; ok {
			if _, has := obj[last]; has {
				obj[last] = RedactedValue
			}
		}
	}
	return out
}

func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		switch x := v.(type) {
		case map[string]any:
			out[k] = copyMap(x)
		case []any:
			out[k] = append(make([]any, 0, len(x)), x...)
		default:
			out[k] = v
		}
	}
	return out
}

// WriteInstanceData writes data (InstanceData's sensitive form, before
// processing) as cloud-init does: instance-data-sensitive.json 0600,
// instance-data.json redacted and world-readable, and the cloud-id file
// (/run/cloud-init/cloud-id-<id>, linked from cloud-id).
func (w *Writer) WriteInstanceData(data map[string]any) error {
	processed := ProcessInstanceData(data)
	sensitive, err := MarshalJSON(processed)
	if err != nil {
		return err
	}
	// The public copy has no features: cloud-init adds them to the
	// sensitive file only.
	public := RedactInstanceData(processed)
	delete(public, "features")
	pub, err := MarshalJSON(public)
	if err != nil {
		return err
	}
	if err := w.root.WriteFileIfChanged(InstanceDataSensitiveFile, sensitive, 0o600, nil); err != nil {
		return err
	}
	if err := w.root.WriteFileIfChanged(InstanceDataFile, pub, 0o644, nil); err != nil {
		return err
	}
	v1, _ := data["v1"].(map[string]any)
	id, _ := v1["cloud_id"].(string)
	if id == "" || strings.Contains(id, "/") {
		id = "none"
	}
	idFile := CloudIDFile + "-" + id
	if err := w.root.WriteFileIfChanged(idFile, []byte(id+"\n"), 0o644, nil); err != nil {
		return err
	}
	// Relative, so the link holds under a --root prefix too.
	if err := w.symlink(CloudIDFile, path.Base(idFile)); err != nil {
		return err
	}
	// A previous cloud id's file goes, as cloud-init removes it.
	entries, err := w.root.ReadDir(RunDir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if n := e.Name(); strings.HasPrefix(n, "cloud-id-") && path.Join(RunDir, n) != idFile {
			if err := w.root.Remove(path.Join(RunDir, n)); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeCombined writes CombinedConfigFile (0600) when cfg changed since
// the last write: the boot's merged cloud-config grows as it reads the
// user data.
func (w *Writer) writeCombined(cfg map[string]any) error {
	out := copyMap(cfg)
	out["_doc"] = CombinedConfigDoc
	data, err := MarshalJSON(out)
	if err != nil {
		return err
	}
	if bytes.Equal(data, w.lastCombined) {
		return nil
	}
	if err := w.root.WriteFileIfChanged(CombinedConfigFile, data, 0o600, nil); err != nil {
		return err
	}
	w.lastCombined = data
	return nil
}

// ErrInstanceDataAccess: the instance data exists but this user may not
// read it.
var ErrInstanceDataAccess = errors.New("no read permission")

// ReadInstanceData reads an instance-data file under the writer's root
// conventions (p is a host path under root, or any readable file when
// root is the host).
func ReadInstanceData(read func(string) ([]byte, error), p string) (map[string]any, error) {
	b, err := read(p)
	if errors.Is(err, fs.ErrPermission) {
		return nil, fmt.Errorf("%w on '%s'. Try sudo", ErrInstanceDataAccess, p)
	}
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return m, nil
}

// Clean removes what is under CloudDir, as `cloud-init clean` does: all
// of it but seed/, unless seed. It returns the host paths removed. A
// symlink is removed itself, never followed.
func Clean(root *sys.Root, seed bool) ([]string, error) {
	entries, err := root.ReadDir(CloudDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range entries {
		p := path.Join(CloudDir, e.Name())
		if e.Name() == "seed" && !seed {
			continue
		}
		if err := removeAll(root, p, e.Type()); err != nil {
			return removed, fmt.Errorf("%s: %w", p, err)
		}
		removed = append(removed, p)
	}
	return removed, nil
}

func removeAll(root *sys.Root, p string, t fs.FileMode) error {
	if t.IsDir() {
		entries, err := root.ReadDir(p)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := removeAll(root, path.Join(p, e.Name()), e.Type()); err != nil {
				return err
			}
		}
	}
	return root.Remove(p)
}
