package imds_test

import (
	"context"
	"testing"

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
