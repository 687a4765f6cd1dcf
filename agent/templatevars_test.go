package agent

import (
	"testing"

	"go.uber.org/zap"

	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/agent/userdata"
)

// TestTemplateVarsAsCloudInit: the boot's jinja view (booter.jinjaVars)
// has cloud-init's keys and shapes: v1 in both spellings, ds.meta_data
// with IMDS's names and their underscore aliases, a public key under its
// name as one string (cloud-init's crawl of public-keys/), the identity
// document, v1 copied to the top level, and cloud-init's marker for a
// missing variable.
func TestTemplateVarsAsCloudInit(t *testing.T) {
	root, err := sys.NewRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	in := &imds.Instance{InstanceID: "i-0abc", Region: "cn-north-1", AvailabilityZone: "cn-north-1a", LocalHostname: "ip-10-0-0-1.cn-north-1.compute.internal",
		PublicKeys:       []imds.PublicKey{{Name: "deploy", OpenSSHKey: "ssh-ed25519 AAAA deploy"}},
		IdentityDocument: &imds.IdentityDocument{AccountID: "123456789012"}}
	b := &booter{root: root, log: zap.NewNop(), instance: in}
	tmpl := "## template: jinja\n#!/bin/sh\n" +
		"{{ v1.cloud_id }} {{ v1['availability-zone'] }} {{ ds.meta_data.placement['availability-zone'] }} {{ ds.meta_data.placement.availability_zone }} " +
		"{{ ds.meta_data['instance-id'] }} {{ v1.local_hostname }} {{ ds.meta_data.local_hostname }} {{ ds.dynamic.instance_identity.document.accountId }} " +
		"{{ v1.public_ssh_keys[0] }} {{ ds.meta_data.public_keys.deploy }} {{ availability_zone }} {{ merged_cfg.x }}\n"
	res, err := userdata.Parse([]byte(tmpl), userdata.Options{Vars: b.jinjaVars()})
	if err != nil {
		t.Fatal(err)
	}
	want := "#!/bin/sh\naws-china cn-north-1a cn-north-1a cn-north-1a i-0abc ip-10-0-0-1 ip-10-0-0-1.cn-north-1.compute.internal 123456789012 " +
		"ssh-ed25519 AAAA deploy ssh-ed25519 AAAA deploy cn-north-1a CI_MISSING_JINJA_VAR/x\n"
	if got := string(res.Parts[0].Body); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}
