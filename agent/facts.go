package agent

import (
	"fmt"
	"sort"
	"strings"

	"go.uber.org/zap"

	"github.com/ec2init/ec2init/agent/imds"
)

// MaxFactBytes caps one fact's value. Every fact is in the environment of
// every command the agent runs, and Linux refuses an exec with one variable
// over 128 KiB (or all of them over ARG_MAX) with E2BIG: a single hostile
// 1 MiB IMDS value would make every command of the boot fail. Real facts are
// ids, addresses and names, far below this.
const MaxFactBytes = 4 << 10

// FactsEnv is the environment every script the agent runs receives, and
// what /run/ec2init/instance.env holds for systemd units: nothing needs a
// hard-coded address, subnet or region. A value longer than MaxFactBytes,
// or with a NUL (which no environment can carry), is left out; FactsEnvLog
// says so.
func FactsEnv(in *imds.Instance) map[string]string {
	return FactsEnvLog(in, nil)
}

// FactsEnvLog is FactsEnv, warning on log (when not nil) about each value
// left out, by variable name and size, never the value.
func FactsEnvLog(in *imds.Instance, log *zap.Logger) map[string]string {
	env := map[string]string{
		"EC2_INSTANCE_ID":          in.InstanceID,
		"EC2_INSTANCE_TYPE":        in.InstanceType,
		"EC2_AMI_ID":               in.AMIID,
		"EC2_REGION":               in.Region,
		"EC2_AVAILABILITY_ZONE":    in.AvailabilityZone,
		"EC2_AVAILABILITY_ZONE_ID": in.AvailabilityZoneID,
		"EC2_PARTITION":            in.Partition,
		"EC2_LOCAL_HOSTNAME":       in.LocalHostname,
		"EC2_LOCAL_IPV4":           in.LocalIPv4,
		"EC2_PUBLIC_IPV4":          in.PublicIPv4,
		"EC2_PUBLIC_HOSTNAME":      in.PublicHostname,
		"EC2_MAC":                  in.MAC,
		"EC2_PLACEMENT_GROUP":      in.Placement.GroupName,
		// cloud-init gives boothooks INSTANCE_ID; scripts written for it
		// keep working.
		"INSTANCE_ID": in.InstanceID,
	}
	if len(in.NetworkInterfaces) > 0 {
		nic := in.NetworkInterfaces[0]
		env["EC2_SUBNET_ID"] = nic.SubnetID
		env["EC2_SUBNET_CIDR"] = nic.SubnetIPv4CIDR
		env["EC2_VPC_ID"] = nic.VPCID
		env["EC2_VPC_CIDR"] = nic.VPCIPv4CIDR
		env["EC2_INTERFACE_ID"] = nic.InterfaceID
	}
	if in.IdentityDocument != nil {
		env["EC2_ACCOUNT_ID"] = in.IdentityDocument.AccountID
		env["EC2_ARCHITECTURE"] = in.IdentityDocument.Architecture
	}
	if in.IAM != nil {
		env["EC2_IAM_ROLE"] = in.IAM.Role
	}
	for k, v := range env {
		switch {
		case v == "":
			delete(env, k)
		case len(v) > MaxFactBytes || strings.IndexByte(v, 0) >= 0:
			delete(env, k)
			if log != nil {
				log.Warn(fmt.Sprintf("instance fact %s left out of the environment: its value is not a plausible fact (%d bytes, at most %d without NUL)",
					k, len(v), MaxFactBytes), zap.String("variable", k), zap.Int("bytes", len(v)))
			}
		}
	}
	return env
}

// EnvFile renders env as a systemd EnvironmentFile (and a file a shell can
// source): sorted KEY="value" lines with shell-safe quoting.
func EnvFile(env map[string]string) []byte {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# Written by ec2init at every boot. Instance facts for scripts and units.\n")
	for _, k := range keys {
		b.WriteString(k)
		b.WriteString("=\"")
		b.WriteString(strings.NewReplacer(`\`, `\\`, `"`, `\"`, "$", `\$`, "`", "\\`", "\n", " ").Replace(env[k]))
		b.WriteString("\"\n")
	}
	return []byte(b.String())
}

// ParseEnvFile reads what EnvFile wrote back into a map.
func ParseEnvFile(data []byte) (map[string]string, error) {
	env := map[string]string{}
	for i, line := range strings.Split(string(data), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
			return nil, fmt.Errorf("line %d: not KEY=\"value\"", i+1)
		}
		v = v[1 : len(v)-1]
		var b strings.Builder
		for j := 0; j < len(v); j++ {
			if v[j] == '\\' && j+1 < len(v) {
				j++
			}
			b.WriteByte(v[j])
		}
		env[k] = b.String()
	}
	return env, nil
}
