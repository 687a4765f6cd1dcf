package imdssim

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, data string
		want       string // the whole message: file and line are the point
	}{
		{"malformed yaml", "meta-data:\n  a: [\n", "imds data file sim.yaml: line 2: did not find expected node content"},
		{"bad indentation", "meta-data:\n  a: b\n   c: d\n", "imds data file sim.yaml: line 3: mapping values are not allowed in this context"},
		{"empty file", "", "imds data file sim.yaml: line 1: empty: want a mapping with meta-data"},
		{"top is a list", "- a\n- b\n", "imds data file sim.yaml: line 1: want a mapping with meta-data, dynamic, user-data; got a list"},
		{"meta-data is a list", "# c\nmeta-data:\n  - x\n", "imds data file sim.yaml: line 3: meta-data must be a mapping (a directory), got a list"},
		{"dynamic is a value", "meta-data: {}\ndynamic: 3\n", "imds data file sim.yaml: line 2: dynamic must be a mapping (a directory), got a value"},
		{"map in a list", "meta-data:\n  sg:\n    - a: b\n", "imds data file sim.yaml: line 3: meta-data/sg: a list may hold only values"},
		{"unknown top key", "meta-data: {}\nuserdata: x\n", `imds data file sim.yaml: line 2: unknown key "userdata" (want meta-data, dynamic, user-data or user-data-base64)`},
		{"no meta-data", "dynamic: {}\n", "imds data file sim.yaml: line 1: no meta-data"},
		{"user-data is a mapping", "meta-data: {}\nuser-data:\n  a: b\n", "imds data file sim.yaml: line 3: user-data must be text, got a mapping"},
		{"both user data keys", "meta-data: {}\nuser-data: x\nuser-data-base64: eA==\n", "imds data file sim.yaml: line 3: user-data and user-data-base64 are exclusive"},
		{"bad base64", "meta-data: {}\nuser-data-base64: '%%%'\n", "imds data file sim.yaml: line 2: user-data-base64: illegal base64 data at input byte 0"},
		{"slash in key", "meta-data:\n  a/b: c\n", "imds data file sim.yaml: line 2: meta-data: key must be a non-empty name without '/'"},
		{"dot key", "meta-data:\n  x:\n    '..': c\n", "imds data file sim.yaml: line 3: meta-data/x: key must be a non-empty name without '/'"},
		{"duplicate key", "meta-data:\n  p:\n    a: 1\n    b: 2\n    a: 3\n", `imds data file sim.yaml: line 5: meta-data/p: duplicate key "a" (first at line 3)`},
		{"duplicate top key", "meta-data: {}\nmeta-data: {}\n", `imds data file sim.yaml: line 2: duplicate key "meta-data" (first at line 1)`},
		{"two keys at index 0", "meta-data:\n  public-keys:\n    0=a: {openssh-key: x}\n    0=b: {openssh-key: y}\n",
			`imds data file sim.yaml: line 4: meta-data/public-keys: key "0=b" is addressed as "0", like the key at line 3`},
		{"merge key", "meta-data:\n  a: &x {b: c}\n  d:\n    <<: *x\n", "imds data file sim.yaml: line 4: meta-data/d: merge keys (<<) are not supported"},
		{"alias in itself", "meta-data: &x\n  a: *x\n", "meta-data/a/a/a/a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("sim.yaml", []byte(tt.data))
			if err == nil {
				t.Fatalf("accepted; want %q", tt.want)
			}
			if strings.HasPrefix(tt.want, "imds data file") && err.Error() != tt.want || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err =\n  %v\nwant\n  %s", err, tt.want)
			}
			var pe *ParseError
			if !errors.As(err, &pe) || pe.File != "sim.yaml" {
				t.Errorf("err %T is not a *ParseError for sim.yaml", err)
			}
		})
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	// JSON is YAML, tab indentation included.
	path := filepath.Join(dir, "sim.json")
	doc := "{\n\t\"meta-data\": {\n\t\t\"instance-id\": \"i-1\",\n\t\t\"ami-launch-index\": 0,\n\t\t\"sg\": [\"a\", \"b\"]\n\t},\n\t\"user-data-base64\": \"H4sIAAAAAAAA/w==\"\n}\n"
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	tree, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"meta-data/instance-id": "i-1", "meta-data/ami-launch-index": "0", "meta-data/sg": "a\nb"} {
		if v, _, _ := tree.Get(p); v != want {
			t.Errorf("%s = %q, want %q", p, v, want)
		}
	}
	if ud := tree.UserData(); len(ud) != 10 || ud[0] != 0x1f || ud[1] != 0x8b {
		t.Errorf("binary user data = %x", ud)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("meta-data:\n  ami-id: x\n  tags:\n  - a: b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = LoadFile(bad)
	if want := "imds data file " + bad + ": line 4: meta-data/tags: a list may hold only values"; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}

	_, err = LoadFile(filepath.Join(dir, "absent.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want a wrapped fs.ErrNotExist", err)
	}
}

func TestParseValues(t *testing.T) {
	data := `
meta-data:
  count: 3
  on: true
  ratio: 1.50
  empty:
  none: {}
  lines: [a, b, c]
  nic: &nic
    mac: 0e:00:00:00:00:01
  copy: *nic
  public-keys:
    "10=ten": {openssh-key: k10}
    "2=two": {openssh-key: k2}
  tags:
    "a=b": leaf with an equals sign
user-data:
`
	tree, err := Parse("v.yaml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path        string
		want        string
		dir, exists bool
	}{
		{"meta-data/count", "3", false, true},
		{"meta-data/on", "true", false, true},
		{"meta-data/ratio", "1.50", false, true}, // the text as written
		{"meta-data/empty", "", false, true},
		{"meta-data/none", "", true, true},
		{"meta-data/lines", "a\nb\nc", false, true},
		{"meta-data/copy/mac", "0e:00:00:00:00:01", false, true},
		{"meta-data/public-keys", "2=two\n10=ten", true, true}, // by index, not text
		{"/meta-data/public-keys/10/", "openssh-key", true, true},
		{"meta-data/public-keys/2/openssh-key", "k2", false, true},
		{"meta-data/public-keys/2=two", "", false, false}, // listed name is not an address
		{"meta-data/tags/a=b", "leaf with an equals sign", false, true},
		{"meta-data/tags", "a=b", true, true},
		{"user-data", "", false, false}, // null: no user data
		{"meta-data/count/x", "", false, false},
	}
	for _, tt := range tests {
		v, dir, ok := tree.Get(tt.path)
		if v != tt.want || dir != tt.dir || ok != tt.exists {
			t.Errorf("Get(%q) = %q, %v, %v; want %q, %v, %v", tt.path, v, dir, ok, tt.want, tt.dir, tt.exists)
		}
	}
	if l, ok := tree.Listing("meta-data"); !ok || strings.Join(l, " ") != "copy/ count empty lines nic/ none/ on public-keys/ ratio tags/" {
		t.Errorf("Listing(meta-data) = %q, %v", l, ok)
	}
	if _, ok := tree.Listing("meta-data/count"); ok {
		t.Error("Listing of a value succeeded")
	}
}

func TestTreeMutation(t *testing.T) {
	tree := DefaultTree()
	orig := tree.Clone()
	tree.Set("meta-data/public-keys/0/openssh-key", "ssh-ed25519 AAAA new")
	tree.Set("meta-data/public-keys/1=second/openssh-key", "ssh-rsa BBBB second")
	tree.Set("meta-data/instance-id/oops", "a value on the way becomes a directory")
	tree.Set("meta-data/events/recommendations/rebalance", `{"noticeTime": "2026-11-28T10:00:00Z"}`)
	tree.Delete("meta-data/placement/group-name")
	tree.Delete("meta-data/no/such/path")
	tree.Set("user-data", "#cloud-config\n")
	tree.Set("", "ignored")
	checks := map[string]string{
		"meta-data/public-keys":                      "0=my-key\n1=second",
		"meta-data/public-keys/0/openssh-key":        "ssh-ed25519 AAAA new",
		"meta-data/public-keys/1/openssh-key":        "ssh-rsa BBBB second",
		"meta-data/instance-id":                      "oops",
		"meta-data/events/recommendations/rebalance": `{"noticeTime": "2026-11-28T10:00:00Z"}`,
		"meta-data/placement":                        "availability-zone\navailability-zone-id\npartition-number\nregion",
		"user-data":                                  "#cloud-config\n",
		"meta-data/events/recommendations":           "rebalance",
		"meta-data/network/interfaces/macs/0e:1a:2b:3c:4d:5e/device-number": "0",
	}
	for p, want := range checks {
		if v, _, ok := tree.Get(p); !ok || v != want {
			t.Errorf("Get(%q) = %q, %v; want %q", p, v, ok, want)
		}
	}
	tree.Delete("meta-data/public-keys/0")
	tree.Delete("meta-data/public-keys/1=second")
	if v, _, _ := tree.Get("meta-data/public-keys"); v != "" {
		t.Errorf("after deleting both keys: %q", v)
	}
	tree.Delete("user-data")
	if _, _, ok := tree.Get("user-data"); ok {
		t.Error("user data survived Delete")
	}
	// The clone saw none of it.
	if v, _, _ := orig.Get("meta-data/instance-id"); v != "i-0123456789abcdef0" {
		t.Errorf("clone shares state: %q", v)
	}
	if ud := orig.UserData(); !strings.HasPrefix(string(ud), "#!/bin/bash\n") {
		t.Errorf("clone user data: %q", ud)
	}

	var zero Tree // usable: an empty tree
	if _, _, ok := zero.Get("meta-data"); ok {
		t.Error("zero tree has meta-data")
	}
	zero.Set("meta-data/instance-id", "i-z")
	if v, _, _ := zero.Clone().Get("meta-data/instance-id"); v != "i-z" {
		t.Errorf("zero tree after Set: %q", v)
	}
}

// TestDefaultTree checks that the built-in instance is self-consistent, as
// a real one is: every fact a client may cross-check agrees.
func TestDefaultTree(t *testing.T) {
	tree := DefaultTree()
	get := func(p string) string {
		t.Helper()
		v, dir, ok := tree.Get(p)
		if !ok || dir {
			t.Fatalf("%s: missing or a directory", p)
		}
		return v
	}
	absent := []string{"meta-data/events/recommendations/rebalance", "meta-data/product-codes", "meta-data/kernel-id", "meta-data/ramdisk-id", "meta-data/spot"}
	for _, p := range absent {
		if _, _, ok := tree.Get(p); ok {
			t.Errorf("%s present; a default on-demand Nitro instance has none", p)
		}
	}

	var doc struct {
		AccountID, Architecture, AvailabilityZone, ImageID, InstanceID string
		InstanceType, PrivateIP, Region, Version                       string
		PendingTime                                                    time.Time
	}
	if err := json.Unmarshal([]byte(get("dynamic/instance-identity/document")), &doc); err != nil {
		t.Fatal(err)
	}
	mac := get("meta-data/mac")
	nic := "meta-data/network/interfaces/macs/" + mac + "/"
	localIP, publicIP := get("meta-data/local-ipv4"), get("meta-data/public-ipv4")
	var info struct{ InstanceProfileArn string }
	if err := json.Unmarshal([]byte(get("meta-data/iam/info")), &info); err != nil {
		t.Fatal(err)
	}
	equal := [][3]string{ // what, got, want
		{"identity instanceId", doc.InstanceID, get("meta-data/instance-id")},
		{"identity imageId", doc.ImageID, get("meta-data/ami-id")},
		{"identity instanceType", doc.InstanceType, get("meta-data/instance-type")},
		{"identity region", doc.Region, get("meta-data/placement/region")},
		{"identity availabilityZone", doc.AvailabilityZone, get("meta-data/placement/availability-zone")},
		{"identity privateIp", doc.PrivateIP, localIP},
		{"identity accountId", doc.AccountID, get(nic + "owner-id")},
		{"identity version", doc.Version, "2017-09-30"},
		{"iam account", strings.Split(info.InstanceProfileArn, ":")[4], doc.AccountID},
		{"ec2 identity account", jsonField(t, get("meta-data/identity-credentials/ec2/info"), "AccountId"), doc.AccountID},
		{"AZ in region", doc.Region, doc.AvailabilityZone[:len(doc.AvailabilityZone)-1]},
		{"primary NIC mac", get(nic + "mac"), mac},
		{"primary NIC device", get(nic + "device-number"), "0"},
		{"primary NIC ip", get(nic + "local-ipv4s"), localIP},
		{"primary NIC public ip", get(nic + "public-ipv4s"), publicIP},
		{"elastic association", get(nic + "ipv4-associations/" + publicIP), localIP},
		{"primary NIC groups", get(nic + "security-groups"), get("meta-data/security-groups")},
		{"hostname", get("meta-data/hostname"), get("meta-data/local-hostname")},
		{"local hostname", get("meta-data/local-hostname"), "ip-" + strings.ReplaceAll(localIP, ".", "-") + ".ec2.internal"},
		{"NIC hostname", get(nic + "local-hostname"), get("meta-data/local-hostname")},
		{"public hostname", get("meta-data/public-hostname"), "ec2-" + strings.ReplaceAll(publicIP, ".", "-") + ".compute-1.amazonaws.com"},
		{"NIC public hostname", get(nic + "public-hostname"), get("meta-data/public-hostname")},
		{"services partition", get("meta-data/services/partition"), "aws"},
		{"public keys", strings.Join(must(tree.Listing("meta-data/public-keys")), ","), "0=my-key"},
		{"key name", strings.Fields(get("meta-data/public-keys/0/openssh-key"))[2], "my-key"},
		{"tag Name", get("meta-data/tags/instance/Name"), "web-1"},
		{"system", get("meta-data/system"), "nitro"},
		{"rebalance-free events", get("meta-data/events/maintenance/scheduled"), "[]"},
	}
	for _, e := range equal {
		if e[1] != e[2] {
			t.Errorf("%s: %q, want %q", e[0], e[1], e[2])
		}
	}
	if doc.Architecture != "x86_64" || doc.PendingTime.IsZero() {
		t.Errorf("identity document: %+v", doc)
	}

	macs, _ := tree.Listing("meta-data/network/interfaces/macs")
	if len(macs) != 2 {
		t.Fatalf("NICs: %q, want two", macs)
	}
	vpc := get(nic + "vpc-id")
	for i, entry := range macs {
		m := strings.TrimSuffix(entry, "/")
		dir := "meta-data/network/interfaces/macs/" + m + "/"
		if _, err := net.ParseMAC(m); err != nil || get(dir+"mac") != m {
			t.Errorf("NIC %s: bad or inconsistent MAC", m)
		}
		if got := get(dir + "device-number"); got != string(rune('0'+i)) {
			t.Errorf("NIC %s: device-number %s", m, got)
		}
		if get(dir+"vpc-id") != vpc || get(dir+"owner-id") != doc.AccountID {
			t.Errorf("NIC %s: in another VPC or account", m)
		}
		_, subnet, err := net.ParseCIDR(get(dir + "subnet-ipv4-cidr-block"))
		if err != nil {
			t.Fatal(err)
		}
		_, vpcNet, _ := net.ParseCIDR(get(dir + "vpc-ipv4-cidr-block"))
		ips := strings.Split(get(dir+"local-ipv4s"), "\n")
		if i == 1 && len(ips) != 2 {
			t.Errorf("second NIC: %q, want two addresses", ips)
		}
		for _, ip := range ips {
			if a := net.ParseIP(ip); a == nil || !subnet.Contains(a) || !vpcNet.Contains(a) {
				t.Errorf("NIC %s: %s outside %v / %v", m, ip, subnet, vpcNet)
			}
		}
		if want := "ip-" + strings.ReplaceAll(ips[0], ".", "-") + ".ec2.internal"; get(dir+"local-hostname") != want {
			t.Errorf("NIC %s: local-hostname %q, want %q", m, get(dir+"local-hostname"), want)
		}
		groups := strings.Split(get(dir+"security-groups"), "\n")
		if ids := strings.Split(get(dir+"security-group-ids"), "\n"); len(ids) != len(groups) {
			t.Errorf("NIC %s: %d group ids for %d groups", m, len(ids), len(groups))
		}
		if i == 1 {
			if _, _, ok := tree.Get(dir + "public-ipv4s"); ok {
				t.Errorf("second NIC has a public address")
			}
		}
	}

	roles, _ := tree.Listing("meta-data/iam/security-credentials")
	if len(roles) != 1 {
		t.Fatalf("roles: %q", roles)
	}
	for _, p := range []string{"meta-data/iam/security-credentials/" + roles[0], "meta-data/identity-credentials/ec2/security-credentials/ec2-instance"} {
		var c struct{ Code, Type, AccessKeyId, SecretAccessKey, Token, LastUpdated, Expiration string }
		if err := json.Unmarshal([]byte(get(p)), &c); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		exp, err := time.Parse(time.RFC3339, c.Expiration)
		if c.Code != "Success" || c.Type != "AWS-HMAC" || !strings.HasPrefix(c.AccessKeyId, "ASIA") || len(c.AccessKeyId) != 20 ||
			len(c.SecretAccessKey) != 40 || c.Token == "" || err != nil || exp.Year() < 2090 {
			t.Errorf("%s: %+v", p, c)
		}
	}
	for _, p := range []string{"pkcs7", "signature", "rsa2048"} {
		if _, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(get("dynamic/instance-identity/"+p), "\n", "")); err != nil {
			t.Errorf("%s: not base64: %v", p, err)
		}
	}
	if ud := tree.UserData(); !strings.HasPrefix(string(ud), "#!/bin/bash\n") || !strings.Contains(string(ud), "echo") {
		t.Errorf("user data %q", ud)
	}
}

func must(v []string, ok bool) []string {
	if !ok {
		return []string{"<missing>"}
	}
	return v
}

func jsonField(t *testing.T, doc, field string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(doc), &m); err != nil {
		t.Fatal(err)
	}
	s, _ := m[field].(string)
	return s
}
