package imds

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"go.uber.org/zap"
)

// Instance is the typed view of an instance's metadata: the facts the agent,
// its modules and user scripts rely on. Field names are stable: they are the
// `ec2init metadata --json` output.
type Instance struct {
	InstanceID         string   `json:"instance_id"`
	InstanceType       string   `json:"instance_type"`
	InstanceLifeCycle  string   `json:"instance_life_cycle,omitempty"`
	AMIID              string   `json:"ami_id"`
	AMILaunchIndex     string   `json:"ami_launch_index,omitempty"`
	AMIManifestPath    string   `json:"ami_manifest_path,omitempty"`
	AncestorAMIIDs     []string `json:"ancestor_ami_ids,omitempty"`
	KernelID           string   `json:"kernel_id,omitempty"`
	RamdiskID          string   `json:"ramdisk_id,omitempty"`
	ProductCodes       []string `json:"product_codes,omitempty"`
	ReservationID      string   `json:"reservation_id,omitempty"`
	Hostname           string   `json:"hostname,omitempty"`
	LocalHostname      string   `json:"local_hostname"`
	LocalIPv4          string   `json:"local_ipv4"`
	PublicHostname     string   `json:"public_hostname,omitempty"`
	PublicIPv4         string   `json:"public_ipv4,omitempty"`
	MAC                string   `json:"mac"`
	Region             string   `json:"region"`
	AvailabilityZone   string   `json:"availability_zone"`
	AvailabilityZoneID string   `json:"availability_zone_id,omitempty"`
	Partition          string   `json:"partition"`
	Domain             string   `json:"domain,omitempty"`
	// Placement: a placement group, its partition, a dedicated host.
	Placement Placement `json:"placement"`
	// NetworkInterfaces are ordered by device number (eth0 first).
	NetworkInterfaces []NetworkInterface `json:"network_interfaces"`
	PublicKeys        []PublicKey        `json:"public_keys"`
	// BlockDeviceMapping is ordered by virtual device name.
	BlockDeviceMapping []BlockDevice     `json:"block_device_mapping"`
	SecurityGroups     []string          `json:"security_groups"`
	Tags               map[string]string `json:"tags,omitempty"`
	IAM                *IAM              `json:"iam,omitempty"`
	IdentityDocument   *IdentityDocument `json:"identity_document,omitempty"`
}

// Placement holds where the instance runs. Tenancy is "host" when IMDS
// reports a dedicated host, otherwise empty: IMDS does not expose tenancy.
type Placement struct {
	GroupName       string `json:"group_name,omitempty"`
	PartitionNumber string `json:"partition_number,omitempty"`
	HostID          string `json:"host_id,omitempty"`
	Tenancy         string `json:"tenancy,omitempty"`
}

// NetworkInterface is one attached ENI.
type NetworkInterface struct {
	MAC              string   `json:"mac"`
	DeviceNumber     int      `json:"device_number"`
	InterfaceID      string   `json:"interface_id"`
	SubnetID         string   `json:"subnet_id"`
	SubnetIPv4CIDR   string   `json:"subnet_ipv4_cidr_block"`
	VPCID            string   `json:"vpc_id"`
	VPCIPv4CIDR      string   `json:"vpc_ipv4_cidr_block"`
	VPCIPv4CIDRs     []string `json:"vpc_ipv4_cidr_blocks,omitempty"`
	SecurityGroupIDs []string `json:"security_group_ids"`
	SecurityGroups   []string `json:"security_groups,omitempty"`
	LocalIPv4s       []string `json:"local_ipv4s"`
	PublicIPv4s      []string `json:"public_ipv4s,omitempty"`
	IPv6s            []string `json:"ipv6s,omitempty"`
	LocalHostname    string   `json:"local_hostname,omitempty"`
	OwnerID          string   `json:"owner_id,omitempty"`
}

// PublicKey is a key pair's public half, as given at launch. OpenSSHKey is
// always one "type base64 [comment]" line (see ParseOpenSSHKey): a value
// IMDS serves that is anything else never becomes a PublicKey.
type PublicKey struct {
	Index      int    `json:"index"`
	Name       string `json:"name"`
	OpenSSHKey string `json:"openssh_key"`
}

// BlockDevice maps a virtual name (ami, root, ebsN, ephemeralN, swap) to a
// device.
type BlockDevice struct {
	Name   string `json:"name"`
	Device string `json:"device"`
}

// IAM is the instance profile, never its credentials.
type IAM struct {
	Role               string `json:"role,omitempty"`
	InstanceProfileARN string `json:"instance_profile_arn,omitempty"`
	InstanceProfileID  string `json:"instance_profile_id,omitempty"`
}

// IdentityDocument is dynamic/instance-identity/document, with AWS's names.
type IdentityDocument struct {
	AccountID               string   `json:"accountId"`
	Architecture            string   `json:"architecture"`
	AvailabilityZone        string   `json:"availabilityZone"`
	BillingProducts         []string `json:"billingProducts"`
	DevpayProductCodes      []string `json:"devpayProductCodes"`
	MarketplaceProductCodes []string `json:"marketplaceProductCodes"`
	ImageID                 string   `json:"imageId"`
	InstanceID              string   `json:"instanceId"`
	InstanceType            string   `json:"instanceType"`
	KernelID                string   `json:"kernelId"`
	PendingTime             string   `json:"pendingTime"`
	PrivateIP               string   `json:"privateIp"`
	RamdiskID               string   `json:"ramdiskId"`
	Region                  string   `json:"region"`
	Version                 string   `json:"version"`
}

// Instance crawls meta-data/ and the identity document and returns the
// typed view.
func (c *Client) Instance(ctx context.Context) (*Instance, error) {
	tree, err := c.Crawl(ctx, "meta-data/", "dynamic/instance-identity/")
	if err != nil {
		return nil, err
	}
	return instanceFromTree(tree, c.log)
}

// InstanceTree is Instance with the tree it crawled, for a caller that
// keeps the raw tree too: one crawl serves both. known holds leaves the
// caller fetched already (paths relative to latest/, such as
// "meta-data/instance-id"): they are not asked again.
func (c *Client) InstanceTree(ctx context.Context, known map[string]string) (*Instance, *Tree, error) {
	tree, err := c.crawl(ctx, known, "meta-data/", "dynamic/instance-identity/")
	if err != nil {
		return nil, nil, err
	}
	in, err := instanceFromTree(tree, c.log)
	if err != nil {
		return nil, nil, err
	}
	return in, tree, nil
}

// InstanceFromTree builds the typed view from a crawled tree. Absent optional
// values stay empty; a malformed identity document or IAM info is an error.
// Public keys that are not one OpenSSH key line are left out.
func InstanceFromTree(t *Tree) (*Instance, error) {
	return instanceFromTree(t, zap.NewNop())
}

func instanceFromTree(t *Tree, log *zap.Logger) (*Instance, error) {
	md := func(p string) string {
		v, _ := t.Value("meta-data/" + p)
		return strings.TrimSpace(v)
	}
	in := &Instance{
		InstanceID:         md("instance-id"),
		InstanceType:       md("instance-type"),
		InstanceLifeCycle:  md("instance-life-cycle"),
		AMIID:              md("ami-id"),
		AMILaunchIndex:     md("ami-launch-index"),
		AMIManifestPath:    md("ami-manifest-path"),
		AncestorAMIIDs:     lines(md("ancestor-ami-ids")),
		KernelID:           md("kernel-id"),
		RamdiskID:          md("ramdisk-id"),
		ProductCodes:       lines(md("product-codes")),
		ReservationID:      md("reservation-id"),
		Hostname:           md("hostname"),
		LocalHostname:      md("local-hostname"),
		LocalIPv4:          md("local-ipv4"),
		PublicHostname:     md("public-hostname"),
		PublicIPv4:         md("public-ipv4"),
		MAC:                md("mac"),
		Region:             md("placement/region"),
		AvailabilityZone:   md("placement/availability-zone"),
		AvailabilityZoneID: md("placement/availability-zone-id"),
		Partition:          md("services/partition"),
		Domain:             md("services/domain"),
		Placement: Placement{
			GroupName:       md("placement/group-name"),
			PartitionNumber: md("placement/partition-number"),
			HostID:          md("placement/host-id"),
		},
		SecurityGroups: lines(md("security-groups")),
	}
	if in.Placement.HostID != "" {
		in.Placement.Tenancy = "host"
	}

	for _, item := range t.Listing("meta-data/network/interfaces/macs/") {
		dir := "network/interfaces/macs/" + item
		if !strings.HasSuffix(dir, "/") {
			dir += "/"
		}
		nic := NetworkInterface{
			MAC:              md(dir + "mac"),
			InterfaceID:      md(dir + "interface-id"),
			SubnetID:         md(dir + "subnet-id"),
			SubnetIPv4CIDR:   md(dir + "subnet-ipv4-cidr-block"),
			VPCID:            md(dir + "vpc-id"),
			VPCIPv4CIDR:      md(dir + "vpc-ipv4-cidr-block"),
			VPCIPv4CIDRs:     lines(md(dir + "vpc-ipv4-cidr-blocks")),
			SecurityGroupIDs: lines(md(dir + "security-group-ids")),
			SecurityGroups:   lines(md(dir + "security-groups")),
			LocalIPv4s:       lines(md(dir + "local-ipv4s")),
			PublicIPv4s:      lines(md(dir + "public-ipv4s")),
			IPv6s:            lines(md(dir + "ipv6s")),
			LocalHostname:    md(dir + "local-hostname"),
			OwnerID:          md(dir + "owner-id"),
		}
		if nic.MAC == "" {
			nic.MAC = strings.TrimSuffix(item, "/")
		}
		if n, err := strconv.Atoi(md(dir + "device-number")); err == nil {
			nic.DeviceNumber = n
		}
		in.NetworkInterfaces = append(in.NetworkInterfaces, nic)
	}
	sort.SliceStable(in.NetworkInterfaces, func(i, j int) bool {
		return in.NetworkInterfaces[i].DeviceNumber < in.NetworkInterfaces[j].DeviceNumber
	})

	for _, item := range t.Listing("meta-data/public-keys/") {
		idx, name, _ := strings.Cut(item, "=")
		idx = strings.TrimSuffix(idx, "/")
		n, err := strconv.Atoi(idx)
		if err != nil {
			continue
		}
		raw, _ := t.Value("meta-data/public-keys/" + idx + "/openssh-key")
		key, typ, err := ParseOpenSSHKey(raw)
		if err != nil {
			// The key's body never reaches the log: only its index,
			// name and, when it is one, its type.
			fields := []zap.Field{zap.Int("index", n), zap.String("name", name), zap.String("reason", err.Error())}
			if typ != "" {
				fields = append(fields, zap.String("type", typ))
			}
			log.Warn(fmt.Sprintf("meta-data/public-keys/%d/openssh-key is not one OpenSSH public key; skipped", n), fields...)
			continue
		}
		in.PublicKeys = append(in.PublicKeys, PublicKey{Index: n, Name: name, OpenSSHKey: key})
	}
	sort.Slice(in.PublicKeys, func(i, j int) bool { return in.PublicKeys[i].Index < in.PublicKeys[j].Index })

	for _, name := range t.Listing("meta-data/block-device-mapping/") {
		in.BlockDeviceMapping = append(in.BlockDeviceMapping, BlockDevice{Name: name, Device: md("block-device-mapping/" + name)})
	}
	sort.Slice(in.BlockDeviceMapping, func(i, j int) bool { return in.BlockDeviceMapping[i].Name < in.BlockDeviceMapping[j].Name })

	if keys := t.Listing("meta-data/tags/instance/"); len(keys) > 0 {
		in.Tags = make(map[string]string, len(keys))
		for _, k := range keys {
			v, _ := t.Value("meta-data/tags/instance/" + k)
			in.Tags[k] = v
		}
	}

	if roles := t.Listing("meta-data/iam/security-credentials/"); len(roles) > 0 || md("iam/info") != "" {
		in.IAM = &IAM{}
		if len(roles) > 0 {
			in.IAM.Role = roles[0]
		}
		if info := md("iam/info"); info != "" {
			var v struct {
				InstanceProfileArn string
				InstanceProfileId  string
			}
			if err := json.Unmarshal([]byte(info), &v); err != nil {
				return nil, fmt.Errorf("meta-data/iam/info: %w", err)
			}
			in.IAM.InstanceProfileARN, in.IAM.InstanceProfileID = v.InstanceProfileArn, v.InstanceProfileId
		}
	}

	if doc, ok := t.Value("dynamic/instance-identity/document"); ok {
		in.IdentityDocument = &IdentityDocument{}
		if err := json.Unmarshal([]byte(doc), in.IdentityDocument); err != nil {
			return nil, fmt.Errorf("dynamic/instance-identity/document: %w", err)
		}
		// Older instances lack placement/region; the document always has it.
		if in.Region == "" {
			in.Region = in.IdentityDocument.Region
		}
	}
	if in.Partition == "" && in.Region != "" {
		in.Partition = partitionOf(in.Region)
	}
	return in, nil
}

// ParseOpenSSHKey checks that s is exactly one OpenSSH public key, "type
// base64 [comment]", and returns it with surrounding blanks (a trailing
// newline) trimmed, and its type. Anything else is refused whole, for it
// would reach authorized_keys: a second line (a value with more than one
// non-empty line is not one key, and its other lines could carry options
// such as command="..."), an options prefix, an unknown type, a body that
// is not base64 or whose embedded type is not the declared one, control
// characters. typ is set, even with an error, when the first word is a key
// type, so that a caller can say which kind of key it refused without
// showing the key.
func ParseOpenSSHKey(s string) (key, typ string, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", "", errors.New("empty")
	}
	f := strings.Fields(s)
	if isOpenSSHKeyType(f[0]) {
		typ = f[0]
	}
	if strings.ContainsAny(s, "\n\r") {
		return "", typ, errors.New("more than one line")
	}
	for _, c := range s {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return "", typ, errors.New("control characters")
		}
	}
	if typ == "" {
		return "", "", errors.New("does not start with an OpenSSH key type (options, or not a key)")
	}
	if len(f) < 2 {
		return "", typ, errors.New("no key data after the type")
	}
	blob, err := base64.StdEncoding.DecodeString(f[1])
	if err != nil {
		return "", typ, errors.New("key data is not base64")
	}
	if len(blob) < 4 {
		return "", typ, errors.New("key data too short")
	}
	n := binary.BigEndian.Uint32(blob)
	if uint64(n) > uint64(len(blob)-4) || string(blob[4:4+n]) != typ {
		return "", typ, errors.New("key data is not a key of the declared type")
	}
	key = typ + " " + f[1]
	if len(f) > 2 {
		// The comment as written, inner blanks included.
		_, rest, _ := strings.Cut(s, f[1])
		key += " " + strings.TrimSpace(rest)
	}
	return key, typ, nil
}

// isOpenSSHKeyType reports the key types OpenSSH's authorized_keys
// accepts, certificates and security keys included.
func isOpenSSHKeyType(t string) bool {
	switch strings.TrimSuffix(t, "-cert-v01@openssh.com") {
	case "ssh-rsa", "ssh-dss", "ssh-ed25519",
		"ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521":
		return true
	}
	switch t {
	case "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
		"sk-ssh-ed25519-cert-v01@openssh.com", "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com":
		return true
	}
	return false
}

// partitionOf derives the AWS partition from a region name, for instances
// whose IMDS predates services/partition.
func partitionOf(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	case strings.HasPrefix(region, "us-iso-"):
		return "aws-iso"
	case strings.HasPrefix(region, "us-isob-"):
		return "aws-iso-b"
	default:
		return "aws"
	}
}

func lines(s string) []string {
	if s == "" {
		return nil
	}
	return splitListing(s)
}
