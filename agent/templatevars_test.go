package agent

import (
	"testing"

	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/userdata"
)

func TestTemplateVarsAsCloudInit(t *testing.T) {
	in := &imds.Instance{InstanceID: "i-0abc", Region: "cn-north-1", AvailabilityZone: "cn-north-1a", LocalHostname: "ip-10-0-0-1",
		PublicKeys:       []imds.PublicKey{{Name: "deploy", OpenSSHKey: "ssh-ed25519 AAAA deploy"}},
		IdentityDocument: &imds.IdentityDocument{AccountID: "123456789012"}}
	tmpl := "## template: jinja\n#!/bin/sh\n" +
		"{{ v1.cloud_id }} {{ v1['availability-zone'] }} {{ ds.meta_data.placement['availability-zone'] }} {{ ds.meta_data.placement.availability_zone }} " +
		"{{ ds.meta_data['instance-id'] }} {{ ds.meta_data.local_hostname }} {{ ds.dynamic.instance_identity.document.accountId }} " +
		"{{ v1.public_ssh_keys[0] }} {{ ds.meta_data.public_keys.deploy[0] }} {{ availability_zone }} {{ merged_cfg.x }}\n"
	res, err := userdata.Parse([]byte(tmpl), userdata.Options{Vars: templateVars(in)})
	if err != nil {
		t.Fatal(err)
	}
	want := "#!/bin/sh\naws-china cn-north-1a cn-north-1a cn-north-1a i-0abc ip-10-0-0-1 123456789012 ssh-ed25519 AAAA deploy ssh-ed25519 AAAA deploy cn-north-1a CI_MISSING_JINJA_VAR/x\n"
	if got := string(res.Parts[0].Body); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}
