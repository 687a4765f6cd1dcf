package ec2metadata

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/sys"
)

// WriteFacts prints the seed's essentials: what an operator checks first
// on an instance, including whether each ENI is served by the ENA driver
// (the local interface is matched by MAC address).
func WriteFacts(w io.Writer, in *imds.Instance, devs []sys.NetDev) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v == "" {
			v = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\n", k, v)
	}
	row("AMI ID:", in.AMIID)
	row("Instance ID:", in.InstanceID)
	row("Instance type:", in.InstanceType)
	row("Region:", in.Region)
	az := in.AvailabilityZone
	if in.AvailabilityZoneID != "" {
		az += " (" + in.AvailabilityZoneID + ")"
	}
	row("Availability zone:", az)
	var primary imds.NetworkInterface
	if len(in.NetworkInterfaces) > 0 {
		primary = in.NetworkInterfaces[0]
	}
	row("VPC:", withCIDR(primary.VPCID, primary.VPCIPv4CIDR))
	row("Subnet:", withCIDR(primary.SubnetID, primary.SubnetIPv4CIDR))
	row("Local IPv4:", in.LocalIPv4)
	row("Public IPv4:", in.PublicIPv4)
	pg := in.Placement.GroupName
	if pg != "" && in.Placement.PartitionNumber != "" {
		pg += " (partition " + in.Placement.PartitionNumber + ")"
	}
	row("Placement group:", pg)
	if in.Placement.HostID != "" {
		row("Dedicated host:", in.Placement.HostID)
	}
	var keys []string
	for _, k := range in.PublicKeys {
		keys = append(keys, k.Name)
	}
	row("Key pair:", strings.Join(keys, ", "))
	role := ""
	if in.IAM != nil {
		role = in.IAM.Role
	}
	row("IAM role:", role)
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w, "Network interfaces:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  DEVICE\tMAC\tENI\tSUBNET\tIPV4\tLOCAL IF\tDRIVER")
	for _, nic := range in.NetworkInterfaces {
		ifName, driver := "-", "-"
		for _, d := range devs {
			if strings.EqualFold(d.MAC, nic.MAC) {
				ifName, driver = d.Name, d.Driver
				if driver == "" {
					driver = "none"
				} else if driver != "ena" {
					driver += " (not ENA)"
				}
			}
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\t%s\n", nic.DeviceNumber, nic.MAC, nic.InterfaceID,
			nic.SubnetID, strings.Join(nic.LocalIPv4s, ","), ifName, driver)
	}
	return tw.Flush()
}

func withCIDR(id, cidr string) string {
	if id == "" || cidr == "" {
		return id
	}
	return id + " (" + cidr + ")"
}
