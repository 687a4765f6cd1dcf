package agent

import (
	"testing"

	"go.uber.org/zap"

	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/agent/userdata"
)

// TestBooterJinjaVars: the boot's jinja view is cloud-init's (short
// local_hostname, ds.meta-data) with ec2init's extra v1 keys kept.
func TestBooterJinjaVars(t *testing.T) {
	root, err := sys.NewRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b := &booter{root: root, log: zap.NewNop(), instance: &imds.Instance{InstanceID: "i-0abc", InstanceType: "m6i.large",
		LocalHostname: "ip-10-0-0-1.ec2.internal", Region: "us-east-1", AvailabilityZone: "us-east-1a", LocalIPv4: "10.0.0.1"}}
	res, err := userdata.Parse([]byte("## template: jinja\n#!/bin/sh\n{{ v1.instance_type }} {{ v1.local_hostname }} {{ ds.meta_data.local_hostname }} {{ local_ipv4 }} {{ v1.cloud_name }}\n"),
		userdata.Options{Vars: b.jinjaVars()})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(res.Parts[0].Body), "#!/bin/sh\nm6i.large ip-10-0-0-1 ip-10-0-0-1.ec2.internal 10.0.0.1 aws\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestGlibcBanner(t *testing.T) {
	for _, tt := range []struct{ data, want string }{
		{"\x7fELF GNU C Library (Debian GLIBC 2.36-9) stable release version 2.36.\x00", "2.36"},
		{"release version x release version 2.34\x00", "2.34"},
		{"release version 2.\x00", ""},
		{"release version 2\x00", ""},
		{"no banner", ""},
		{"release version 10.1", "10.1"},
	} {
		if got := glibcBanner([]byte(tt.data)); got != tt.want {
			t.Errorf("glibcBanner(%q) = %q, want %q", tt.data, got, tt.want)
		}
	}
}
