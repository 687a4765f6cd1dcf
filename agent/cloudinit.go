package agent

// cloud-init's instance data for EC2 (/run/cloud-init/instance-data.json),
// built from ec2init's typed instance facts: what `cloud-init query` and
// jinja templates written for cloud-init read.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/civiews"
	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/agent/userdata"
	"github.com/ec2init/ec2init/modules"
)

// SysInfo is cloud-init's sys_info: the host as Python's platform module
// describes it. ec2init has no Python: Python is its Go runtime's version.
type SysInfo struct {
	Dist     [3]string // os-release ID, VERSION_ID, codename
	Platform string    // platform.platform(): Linux-<release>-<machine>-with-<libc>
	Python   string
	Release  string
	System   string
	Uname    [6]string // system, node, release, version, machine, processor
	Variant  string
}

// ReadSysInfo describes the host: its kernel (uname), and the distribution
// of the image under root (/etc/os-release).
func ReadSysInfo(root *sys.Root) SysInfo {
	var u syscall.Utsname
	_ = syscall.Uname(&u)
	str := func(a [65]int8) string {
		b := make([]byte, 0, len(a))
		for _, c := range a {
			if c == 0 {
				break
			}
			b = append(b, byte(c))
		}
		return string(b)
	}
	si := SysInfo{System: str(u.Sysname), Release: str(u.Release), Python: strings.TrimPrefix(runtime.Version(), "go")}
	if si.System == "" {
		si.System = "Linux"
	}
	machine := str(u.Machine)
	if machine == "" {
		machine = unameMachine()
	}
	// Python's platform.uname(): the processor is "" where /proc has no
	// name for it, as on most Linux.
	si.Uname = [6]string{si.System, str(u.Nodename), si.Release, str(u.Version), machine, ""}
	si.Dist = readDist(root)
	// Python names the C library it runs on: the image's glibc here.
	si.Platform = fmt.Sprintf("%s-%s-%s-with-glibc%s", si.System, si.Release, machine, glibcVersion(root))
	si.Variant = distVariant(si.System, si.Dist[0])
	return si
}

// glibcVersion is the version of the image's C library ("2.36"), read
// from its banner; "" when there is none to read. The banner is found
// with bytes.Index, not a regexp: the library is 2 MiB and every stage
// process reads it, so a regexp scan cost each stage milliseconds.
func glibcVersion(root *sys.Root) string {
	for _, p := range []string{"/lib/x86_64-linux-gnu/libc.so.6", "/lib/aarch64-linux-gnu/libc.so.6",
		"/lib64/libc.so.6", "/usr/lib64/libc.so.6", "/lib/libc.so.6"} {
		data, err := root.ReadFile(p)
		if err != nil {
			continue
		}
		if v := glibcBanner(data); v != "" {
			return v
		}
	}
	return ""
}

// glibcBanner finds "release version MAJOR.MINOR" in data.
func glibcBanner(data []byte) string {
	const marker = "release version "
	for off := 0; ; {
		i := bytes.Index(data[off:], []byte(marker))
		if i < 0 {
			return ""
		}
		rest := data[off+i+len(marker):]
		if v := majorMinor(rest); v != "" {
			return v
		}
		off += i + len(marker)
	}
}

// majorMinor is the leading "digits.digits" of b, "" if b starts otherwise.
func majorMinor(b []byte) string {
	n, dots := 0, 0
	for n < len(b) && (b[n] >= '0' && b[n] <= '9' || b[n] == '.' && dots == 0 && n > 0) {
		if b[n] == '.' {
			dots++
		}
		n++
	}
	if dots == 0 || b[n-1] == '.' {
		return ""
	}
	return string(b[:n])
}

// readDist is cloud-init's get_linux_distro from os-release: ID ("rhel"
// named "redhat"), VERSION_ID, and the codename (VERSION_CODENAME, else
// the parenthesised word of VERSION).
func readDist(root *sys.Root) [3]string {
	data, err := root.ReadFile("/etc/os-release")
	if err != nil {
		return [3]string{}
	}
	kv := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		kv[k] = strings.Trim(v, `"'`)
	}
	id, codename := kv["ID"], kv["VERSION_CODENAME"]
	switch {
	case strings.Contains(id, "sles") || strings.Contains(id, "suse"):
		codename = unameMachine()
	case id == "alpine" || id == "photon":
		codename = kv["PRETTY_NAME"]
	case codename == "":
		if _, rest, ok := strings.Cut(kv["VERSION"], " ("); ok {
			codename, _, _ = strings.Cut(rest, ")")
		}
	}
	if id == "rhel" {
		id = "redhat"
	}
	return [3]string{id, kv["VERSION_ID"], codename}
}

// distVariant is cloud-init's variant for a Linux distribution.
func distVariant(system, dist string) string {
	if !strings.EqualFold(system, "linux") {
		return "unknown"
	}
	switch d := strings.ToLower(dist); d {
	case "almalinux", "alpine", "aosc", "arch", "azurelinux", "centos", "cloudlinux", "debian", "eurolinux",
		"fedora", "mariner", "miraclelinux", "openeuler", "opencloudos", "openmandriva", "photon",
		"raspberry-pi-os", "rhel", "rocky", "suse", "tencentos", "virtuozzo":
		return d
	case "ubuntu", "linuxmint", "mint":
		return "ubuntu"
	case "redhat":
		return "rhel"
	case "opensuse", "opensuse-leap", "opensuse-microos", "opensuse-tumbleweed", "sle_hpc", "sle-micro", "sles":
		return "suse"
	}
	return "linux"
}

// cloud-init's features (cloudinit/features.py) as its current release
// sets them: instance-data-sensitive.json carries them for tools that
// look for a behaviour by name.
var cloudInitFeatures = map[string]any{
	"ALLOW_EC2_MIRRORS_ON_NON_AWS_INSTANCE_TYPES": false,
	"APT_DEB822_SOURCE_LIST_FILE":                 true,
	"DEPRECATION_INFO_BOUNDARY":                   "devel",
	"ERROR_ON_USER_DATA_FAILURE":                  true,
	"EXPIRE_APPLIES_TO_HASHED_USERS":              true,
	"MANUAL_NETWORK_WAIT":                         true,
	"NETPLAN_CONFIG_ROOT_READ_ONLY":               true,
	"NOCLOUD_SEED_URL_APPEND_FORWARD_SLASH":       true,
	"STRIP_INVALID_MTU":                           false,
}

// CloudInitFeatures is a copy of cloud-init's features and their values.
func CloudInitFeatures() map[string]any {
	out := make(map[string]any, len(cloudInitFeatures))
	for k, v := range cloudInitFeatures {
		out[k] = v
	}
	return out
}

// InstanceDataInput is what the instance data is built from.
type InstanceDataInput struct {
	Instance *imds.Instance
	Sys      SysInfo
	// SystemConfig is the image's merged cloud-config (cloud-init's
	// merged_cfg: its system config, not the user data's).
	SystemConfig map[string]any
	// Endpoint is the IMDS address the facts came from (subplatform).
	Endpoint string
	// Crawled is IMDS's tree as cloud-init materializes it
	// (MaterializeMetaData): "meta-data" and, on AWS, "dynamic". Nil: ds
	// is built from Instance's typed facts.
	Crawled map[string]any
}

// InstanceData is cloud-init's instance-data for an EC2 instance, the
// sensitive form (instance-data-sensitive.json) before
// civiews.ProcessInstanceData adds base64_encoded_keys and
// sensitive_keys: ds (the crawled IMDS tree with IMDS's hyphenated names,
// the identity document, never the user data), merged_cfg and
// merged_system_cfg, sys_info, v1 (the standardized keys, in both
// spellings cloud-init writes) and features.
func InstanceData(in InstanceDataInput) map[string]any {
	inst := in.Instance
	si := in.Sys
	endpoint := strings.TrimSuffix(in.Endpoint, "/")
	if endpoint == "" {
		endpoint = imds.DefaultIPv4Endpoint
	}
	az := inst.AvailabilityZone
	if d := inst.IdentityDocument; d != nil && d.AvailabilityZone != "" {
		az = d.AvailabilityZone
	}
	region := inst.Region
	if d := inst.IdentityDocument; d != nil && d.Region != "" {
		region = d.Region
	}
	if region == "" && az != "" {
		region = az[:len(az)-1]
	}
	host := shortHostname(inst.LocalHostname)
	v1 := map[string]any{
		"_beta_keys":        []any{"subplatform"},
		"availability-zone": az,
		"availability_zone": az,
		"cloud_id":          awsCloudID(region),
		"cloud-name":        "aws",
		"cloud_name":        "aws",
		"distro":            si.Dist[0],
		"distro_version":    si.Dist[1],
		"distro_release":    si.Dist[2],
		"platform":          "ec2",
		"public_ssh_keys":   publicSSHKeys(inst.PublicKeys),
		"python_version":    si.Python,
		"instance-id":       inst.InstanceID,
		"instance_id":       inst.InstanceID,
		"kernel_release":    si.Uname[2],
		"local-hostname":    host,
		"local_hostname":    host,
		"machine":           si.Uname[4],
		"region":            region,
		"subplatform":       "metadata (" + endpoint + ")",
		"system_platform":   si.Platform,
		"variant":           si.Variant,
	}
	ds := map[string]any{
		"_doc":                  civiews.DSDoc,
		"_metadata_api_version": "2021-03-23",
		"meta-data":             metaDataTree(inst),
	}
	if md, ok := in.Crawled["meta-data"].(map[string]any); ok {
		ds["meta-data"] = deepCopy(md)
	}
	if dyn, ok := in.Crawled["dynamic"].(map[string]any); ok {
		ds["dynamic"] = deepCopy(dyn)
	} else if doc := inst.IdentityDocument; doc != nil {
		d := identityDocument(doc)
		// AWS's document says null where there is no kernel or ramdisk.
		for _, k := range []string{"kernelId", "ramdiskId"} {
			if d[k] == "" {
				d[k] = nil
			}
		}
		ds["dynamic"] = map[string]any{"instance-identity": map[string]any{"document": d}}
	}
	merged := deepCopy(in.SystemConfig)
	merged["_doc"] = "DEPRECATED: Use merged_system_cfg. Will be dropped from 24.1"
	system := deepCopy(in.SystemConfig)
	system["_doc"] = "Merged cloud-init system config from /etc/cloud/cloud.cfg and /etc/cloud/cloud.cfg.d/"
	features := CloudInitFeatures()
	return map[string]any{
		"ds":                ds,
		"features":          features,
		"merged_cfg":        merged,
		"merged_system_cfg": system,
		"sys_info": map[string]any{
			"dist":     []any{si.Dist[0], si.Dist[1], si.Dist[2]},
			"platform": si.Platform,
			"python":   si.Python,
			"release":  si.Release,
			"system":   si.System,
			"uname":    []any{si.Uname[0], si.Uname[1], si.Uname[2], si.Uname[3], si.Uname[4], si.Uname[5]},
			"variant":  si.Variant,
		},
		"v1": v1,
	}
}

// JinjaVars is what "## template: jinja" parts see under cloud-init: the
// instance data as instance-data-sensitive.json holds it (cloud-init
// renders with root's view), keys aliased by userdata.VarsMap. It is the
// one builder for both.
func JinjaVars(in InstanceDataInput) userdata.VarsMap {
	return userdata.VarsMap(civiews.ProcessInstanceData(InstanceData(in)))
}

// shortHostname is cloud-init's get_hostname() of local-hostname: its
// first label, or ip-a-b-c-d for an address.
func shortHostname(h string) string {
	if h == "" {
		return "localhost"
	}
	if isIPv4(h) {
		return "ip-" + strings.ReplaceAll(h, ".", "-")
	}
	first, _, _ := strings.Cut(h, ".")
	return first
}

func isIPv4(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 4 {
		return false
	}
	for _, p := range parts {
		if p == "" || len(p) > 3 || strings.Trim(p, "0123456789") != "" {
			return false
		}
	}
	return true
}

// metaDataTree is meta-data/ as cloud-init's crawl stores it: directories
// as maps, leaves as strings (lists where IMDS lists), IMDS's names.
func metaDataTree(in *imds.Instance) map[string]any {
	meta := map[string]any{
		"ami-id":         in.AMIID,
		"hostname":       in.Hostname,
		"instance-id":    in.InstanceID,
		"instance-type":  in.InstanceType,
		"local-hostname": in.LocalHostname,
		"local-ipv4":     in.LocalIPv4,
		"mac":            in.MAC,
	}
	set := func(m map[string]any, kv map[string]string) {
		for k, v := range kv {
			if v != "" {
				m[k] = v
			}
		}
	}
	set(meta, map[string]string{
		"ami-launch-index":    in.AMILaunchIndex,
		"ami-manifest-path":   in.AMIManifestPath,
		"instance-life-cycle": in.InstanceLifeCycle,
		"kernel-id":           in.KernelID,
		"public-hostname":     in.PublicHostname,
		"public-ipv4":         in.PublicIPv4,
		"ramdisk-id":          in.RamdiskID,
		"reservation-id":      in.ReservationID,
	})
	placement := map[string]any{}
	set(placement, map[string]string{
		"availability-zone":    in.AvailabilityZone,
		"availability-zone-id": in.AvailabilityZoneID,
		"region":               in.Region,
		"group-name":           in.Placement.GroupName,
		"partition-number":     in.Placement.PartitionNumber,
		"host-id":              in.Placement.HostID,
	})
	meta["placement"] = placement
	if in.Partition != "" || in.Domain != "" {
		svc := map[string]any{}
		set(svc, map[string]string{"partition": in.Partition, "domain": in.Domain})
		meta["services"] = svc
	}
	if len(in.AncestorAMIIDs) > 0 {
		meta["ancestor-ami-ids"] = anyList(in.AncestorAMIIDs)
	}
	if len(in.ProductCodes) > 0 {
		meta["product-codes"] = anyList(in.ProductCodes)
	}
	if len(in.SecurityGroups) > 0 {
		meta["security-groups"] = anyList(in.SecurityGroups)
	}
	if len(in.Tags) > 0 {
		meta["tags"] = map[string]any{"instance": stringMap(in.Tags)}
	}
	if len(in.PublicKeys) > 0 {
		keys := map[string]any{}
		for _, k := range in.PublicKeys {
			keys[k.Name] = k.OpenSSHKey // as cloud-init's crawl of public-keys/ stores one key
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
	if in.IAM != nil {
		info := map[string]any{"Code": "Success"}
		set(info, map[string]string{"InstanceProfileArn": in.IAM.InstanceProfileARN, "InstanceProfileId": in.IAM.InstanceProfileID})
		meta["iam"] = map[string]any{"info": info}
	}
	if len(in.NetworkInterfaces) > 0 {
		macs := map[string]any{}
		for _, n := range in.NetworkInterfaces {
			m := map[string]any{"device-number": fmt.Sprint(n.DeviceNumber), "mac": n.MAC}
			set(m, map[string]string{
				"interface-id":           n.InterfaceID,
				"subnet-id":              n.SubnetID,
				"subnet-ipv4-cidr-block": n.SubnetIPv4CIDR,
				"vpc-id":                 n.VPCID,
				"vpc-ipv4-cidr-block":    n.VPCIPv4CIDR,
				"local-hostname":         n.LocalHostname,
				"owner-id":               n.OwnerID,
			})
			for k, l := range map[string][]string{"local-ipv4s": n.LocalIPv4s, "public-ipv4s": n.PublicIPv4s, "ipv6s": n.IPv6s,
				"security-group-ids": n.SecurityGroupIDs, "security-groups": n.SecurityGroups, "vpc-ipv4-cidr-blocks": n.VPCIPv4CIDRs} {
				switch len(l) {
				case 0:
				case 1: // IMDS answers one line: cloud-init keeps it a string
					m[k] = l[0]
				default:
					m[k] = anyList(l)
				}
			}
			macs[n.MAC] = m
		}
		meta["network"] = map[string]any{"interfaces": map[string]any{"macs": macs}}
	}
	return meta
}

func deepCopy(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = deepCopyValue(v)
	}
	return out
}

func deepCopyValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return deepCopy(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = deepCopyValue(e)
		}
		return out
	}
	return v
}

// SystemConfigMap is cloud-init's merged_cfg: its system configuration
// (/etc/cloud/cloud.cfg, then cloud.cfg.d in order) with ec2init's image
// config (ReadImageConfig) over it, as plain values: a later file's
// mapping merges into an earlier one's, any other value replaces it. A
// file that does not parse is left out (the boot reports it by line).
func SystemConfigMap(root *sys.Root) (map[string]any, error) {
	ci, ciErr := config.ReadCloudInitFiles(root.Prefix())
	srcs, err := ReadImageConfig(root)
	return mergeSystemConfig(ci, srcs), errors.Join(ciErr, err)
}

// mergeSystemConfig is SystemConfigMap's merge of the files read.
func mergeSystemConfig(ci []config.CloudInitSource, image []ConfigSource) map[string]any {
	out := map[string]any{}
	for _, src := range ci {
		mergeYAML(out, src.Body)
	}
	for _, s := range image {
		mergeYAML(out, s.Body)
	}
	return out
}

func mergeYAML(into map[string]any, body []byte) {
	var m map[string]any
	if yaml.Unmarshal(body, &m) != nil {
		return
	}
	mergeMaps(into, jsonable(m).(map[string]any))
}

func mergeMaps(into, from map[string]any) {
	for k, v := range from {
		sub, ok := v.(map[string]any)
		have, haveMap := into[k].(map[string]any)
		if ok && haveMap {
			mergeMaps(have, sub)
			continue
		}
		into[k] = v
	}
}

// jsonable turns YAML's decoded values into what encoding/json writes
// (map[string]any keys).
func jsonable(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonable(e)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[fmt.Sprint(k)] = jsonable(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonable(e)
		}
		return out
	}
	return v
}

// instanceData is the boot's instance data for cloud-init's views.
func (b *booter) instanceData() (map[string]any, error) {
	cfg, err := b.sysCfg.systemConfigMap(b.root)
	if err != nil {
		b.log.Warn("image cloud-config for instance data", zap.Error(err))
	}
	endpoint := ""
	if b.opts.IMDS != nil {
		endpoint = b.opts.IMDS.Endpoint()
	}
	return InstanceData(InstanceDataInput{Instance: b.instance, Sys: ReadSysInfo(b.root), SystemConfig: cfg,
		Endpoint: endpoint, Crawled: b.crawledMetaData()}), nil
}

// jinjaVars is what jinja parts see: JinjaVars over the boot's instance
// data, plus the v1 keys templates written for ec2init use
// (instance_type, image_id, local_ipv4, public_ipv4), which cloud-init's
// instance-data.json has not.
func (b *booter) jinjaVars() userdata.VarsMap {
	data, _ := b.instanceData()
	vars := userdata.VarsMap(civiews.ProcessInstanceData(data))
	withEC2InitV1(vars, b.instance)
	return vars
}

// withEC2InitV1 adds to vars' v1 the keys templates written for ec2init
// use, which cloud-init's v1 has not.
func withEC2InitV1(vars userdata.VarsMap, in *imds.Instance) {
	if v1, ok := vars["v1"].(map[string]any); ok && in != nil {
		v1["instance_type"], v1["image_id"] = in.InstanceType, in.AMIID
		v1["local_ipv4"], v1["public_ipv4"] = in.LocalIPv4, in.PublicIPv4
	}
}

// crawledMetaDataFile caches, per instance, IMDS's tree as cloud-init
// materializes it: crawled once per instance, as cloud-init crawls once
// and keeps its datasource, never again on a reboot.
const crawledMetaDataFile = "cloud-init-metadata.json"

// crawledMetaData is the instance's cached tree, crawled when there is
// none; nil when IMDS cannot be crawled (ds is then built from the typed
// facts).
func (b *booter) crawledMetaData() map[string]any {
	if b.crawled != nil || b.store == nil {
		return b.crawled
	}
	if data, err := b.store.ReadInstanceFile(crawledMetaDataFile); err == nil {
		var m map[string]any
		if json.Unmarshal(data, &m) == nil {
			b.crawled = m
			return m
		}
	}
	if b.opts.IMDS == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tree, err := b.opts.IMDS.Crawl(ctx, "meta-data/", "dynamic/instance-identity/")
	if err != nil {
		b.log.Warn("crawl metadata for cloud-init's instance data", zap.Error(err))
		return nil
	}
	m := MaterializeMetaData(tree)
	if data, err := json.Marshal(m); err == nil {
		if err := b.store.WriteInstanceFile(crawledMetaDataFile, data); err != nil {
			b.log.Warn("cache crawled metadata", zap.Error(err))
		}
	}
	b.crawled = m
	return m
}

// MaterializeMetaData is a crawled tree as cloud-init's Ec2 datasource
// stores it: "meta-data" and "dynamic" ("instance-identity" only) as
// nested maps, a directory's keys as IMDS lists them, a leaf decoded as
// cloud-init's MetadataLeafDecoder does (a JSON object parsed, several
// lines a list, else the text), a public key under its name, and nothing
// of security-credentials.
func MaterializeMetaData(t *imds.Tree) map[string]any {
	out := map[string]any{}
	if len(t.Listing("meta-data/")) > 0 {
		out["meta-data"] = materialize(t, "meta-data/")
	}
	if len(t.Listing("dynamic/instance-identity/")) > 0 {
		out["dynamic"] = map[string]any{"instance-identity": materialize(t, "dynamic/instance-identity/")}
	}
	return out
}

func materialize(t *imds.Tree, dir string) map[string]any {
	out := map[string]any{}
	leaves := map[string]string{} // name: path
	var order []string
	for _, item := range t.Listing(dir) {
		item = strings.TrimSpace(item)
		name := strings.TrimSuffix(item, "/")
		if name == "" || name == "security-credentials" {
			continue
		}
		if strings.HasSuffix(item, "/") {
			if _, dup := out[name]; !dup {
				out[name] = materialize(t, dir+item)
			}
			continue
		}
		p := dir + item
		if idx, keyName, ok := strings.Cut(item, "="); ok && strings.Trim(idx, "0123456789") == "" && idx != "" {
			p, name = dir+idx+"/openssh-key", keyName
		}
		if _, seen := leaves[name]; !seen {
			order = append(order, name)
		}
		leaves[name] = p
	}
	for _, name := range order {
		if _, dup := out[name]; dup {
			continue // a directory of that name wins, as in cloud-init
		}
		v, ok := t.Value(leaves[name])
		if !ok {
			continue
		}
		out[name] = decodeLeaf(v)
	}
	return out
}

// decodeLeaf is cloud-init's MetadataLeafDecoder.
func decodeLeaf(v string) any {
	if v == "" {
		return ""
	}
	if tv := strings.TrimSpace(v); strings.HasPrefix(tv, "{") && strings.HasSuffix(tv, "}") {
		var obj any
		if json.Unmarshal([]byte(tv), &obj) == nil {
			return obj
		}
	}
	if strings.Contains(v, "\n") {
		lines := strings.Split(strings.TrimSuffix(v, "\n"), "\n")
		for i, l := range lines {
			lines[i] = strings.TrimSuffix(l, "\r")
		}
		return anyList(lines)
	}
	return v
}

// combinedConfig is cloud-init's combined cloud-config: its system
// config with what the boot merged (image config, user data) over it.
func (b *booter) combinedConfig() (map[string]any, error) {
	out, err := b.sysCfg.systemConfigMap(b.root)
	if err != nil {
		b.log.Warn("system config for combined cloud-config", zap.Error(err))
	}
	if b.cloudConfig != nil {
		mergeMaps(out, cloudConfigMap(b.cloudConfig))
	}
	return out, nil
}

// cloudConfigMap is c as plain values.
func cloudConfigMap(c *config.CloudConfig) map[string]any {
	out := map[string]any{}
	for _, k := range c.Keys() {
		var v any
		if ok, err := c.Decode(k, &v); ok && err == nil {
			out[k] = jsonable(v)
		}
	}
	return out
}

// ErrNoModule: RunModule was asked for a module the registry has not.
var ErrNoModule = errors.New("no such module")

// recordedBooter is a booter for work run again by hand (`single`,
// `userdata run-script`) on the instance the last boot recorded: its state,
// its cached facts, the boot lock held (not while a boot runs the same
// work). release unlocks; records are made durable by the caller's sync.
func recordedBooter(ctx context.Context, opts Options) (b *booter, release func(), err error) {
	store, err := state.Open(state.Options{Root: opts.Root, BootID: opts.BootID, Now: opts.Now, DeferSync: true})
	if err != nil {
		return nil, nil, err
	}
	id, err := store.RecordedInstanceID()
	if err != nil || id == "" {
		return nil, nil, errors.New("no instance recorded yet: run `ec2init boot` first")
	}
	if err := store.UseInstance(id); err != nil {
		return nil, nil, err
	}
	root, err := sys.NewRoot(opts.Root)
	if err != nil {
		return nil, nil, err
	}
	lock, err := acquireBootLock(ctx, root, opts.LockTimeout, opts.Log)
	if err != nil {
		return nil, nil, err
	}
	b = &booter{opts: opts, store: store, root: root, runRoot: root.NoSync(), registry: opts.Registry,
		log: opts.Log.With(zap.String("instance_id", id)), cloudConfig: config.Merge()}
	if data, err := store.ReadInstanceFile(instanceCache); err == nil {
		var in imds.Instance
		if err := json.Unmarshal(data, &in); err == nil {
			b.instance, b.env = &in, FactsEnv(&in)
		}
	}
	return b, lock.release, nil
}

// RunModule runs one module of opts.Registry for the instance the last
// boot recorded, as `cloud-init single` does: with the instance's cached
// facts and the cloud-config of the image and the stored user data. freq
// "" is the module's own frequency, gated by its semaphore (a module that
// already ran is skipped); Always runs it whatever its semaphore says.
// name may be cloud-init's spelling (cc_runcmd, scripts-user).
func RunModule(ctx context.Context, opts Options, name string, freq state.Frequency) (state.ModuleResult, error) {
	if opts.Registry == nil {
		return state.ModuleResult{}, ErrNoRegistry
	}
	opts = opts.withDefaults()
	name = config.ModuleName(name)
	var mod modules.Module
	for _, m := range append(opts.Registry.Steps(), opts.Registry.All()...) {
		if m.Name() == name && mod == nil {
			mod = m
		}
	}
	if mod == nil {
		return state.ModuleResult{}, fmt.Errorf("%w: %q", ErrNoModule, name)
	}
	if freq == "" {
		freq = state.Frequency(mod.Frequency())
	}
	b, release, err := recordedBooter(ctx, opts)
	if err != nil {
		return state.ModuleResult{}, err
	}
	defer release()
	if b.instance == nil {
		return state.ModuleResult{}, errors.New("instance facts: none recorded")
	}
	store, root := b.store, b.root
	srcs, err := ReadImageConfig(root)
	if err != nil {
		return state.ModuleResult{}, fmt.Errorf("image cloud-config: %w", err)
	}
	if raw, err := store.ReadInstanceFile(state.UserDataRaw); err == nil {
		res, err := userdata.Parse(raw, userdata.Options{Vars: b.jinjaVars()})
		if err == nil {
			b.userData = forLaunchIndex(store, res)
			srcs = append(srcs, cloudConfigParts(b.userData)...)
		}
	}
	b.cloudConfig = config.Merge(b.checkCloudConfig(srcs)...)
	defer b.sync("single") // as a stage's end: the module's records and files durable
	slot, ok := mod.(modules.Scripts)
	if !ok {
		return b.runGated(ctx, b.log, b.moduleWork(mod, freq)), nil
	}
	// A script slot (scripts_user, scripts_per_boot, ...): each script it
	// finds, under its own semaphore; the first failure is the result.
	res := state.ModuleResult{Name: slot.Name(), Frequency: string(freq), Outcome: string(state.OutcomeSkipped)}
	for _, w := range b.slotWork(slot, freq) {
		r := b.runGated(ctx, b.log, w)
		if res.Outcome != string(state.OutcomeFailed) && r.Outcome != string(state.OutcomeSkipped) {
			res.Outcome, res.Error, res.ExitCode = r.Outcome, r.Error, r.ExitCode
		}
	}
	return res, nil
}
