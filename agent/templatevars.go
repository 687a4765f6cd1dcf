package agent

// Helpers of the instance data (cloudinit.go) jinja parts and
// instance-data.json see.

import (
	"encoding/json"
	"runtime"
	"strings"

	"github.com/ec2init/ec2init/agent/imds"
)

// awsCloudID is cloud-init's canonical_cloud_id for EC2.
func awsCloudID(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "aws-china"
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-gov"
	}
	return "aws"
}

func publicSSHKeys(keys []imds.PublicKey) []any {
	out := make([]any, 0, len(keys))
	for _, k := range keys {
		out = append(out, k.OpenSSHKey)
	}
	return out
}

// unameMachine is uname -m's name for this build's architecture.
func unameMachine() string {
	switch runtime.GOARCH {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	}
	return runtime.GOARCH
}

// identityDocument is the document with AWS's own (camelCase) names.
func identityDocument(d *imds.IdentityDocument) map[string]any {
	b, err := json.Marshal(d)
	if err != nil {
		return nil
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	return m
}

func anyList(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
