package ec2metadata

// Help is ec2-metadata v0.1.5's help, kept word for word so scripts and
// people who know it find what they expect, followed by ec2init's additions.
const Help = `ec2-metadata v0.1.5
Use to retrieve EC2 instance metadata from within a running EC2 instance. 
e.g. to retrieve instance id: ec2-metadata -i
		 to retrieve ami id: ec2-metadata -a
		 to get help: ec2-metadata --help
For more information on Amazon EC2 instance meta-data, refer to the documentation at
https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ec2-instance-metadata.html

Usage: ec2-metadata <option>
Options:
--all                     Show all metadata information for this host (also default).
-a/--ami-id               The AMI ID used to launch this instance
-l/--ami-launch-index     The index of this instance in the reservation (per AMI).
-m/--ami-manifest-path    The manifest path of the AMI with which the instance was launched.
-n/--ancestor-ami-ids     The AMI IDs of any instances that were rebundled to create this AMI.
-b/--block-device-mapping Defines native device names to use when exposing virtual devices.
-i/--instance-id          The ID of this instance
-t/--instance-type        The type of instance to launch. For more information, see Instance Types.
-h/--local-hostname       The local hostname of the instance.
-o/--local-ipv4           Public IP address if launched with direct addressing; private IP address if launched with public addressing.
-k/--kernel-id            The ID of the kernel launched with this instance, if applicable.
-z/--availability-zone    The availability zone in which the instance launched. Same as placement
-R/--region               The region in which the instance launched.
-P/--partition            The AWS partition name.
-c/--product-codes        Product codes associated with this instance.
-p/--public-hostname      The public hostname of the instance.
-v/--public-ipv4          NATted public IP Address
-u/--public-keys          Public keys. Only available if supplied at instance launch time
-r/--ramdisk-id           The ID of the RAM disk launched with this instance, if applicable.
-e/--reservation-id       ID of the reservation.
-s/--security-groups      Names of the security groups the instance is launched in. Only available if supplied at instance launch time
-d/--user-data            User-supplied data.Only available if supplied at instance launch time.
-g/--tags                 Tags assigned to this instance.
--quiet                   Suppress tag keys from the output.
--path                    Show metadata information from the specified path.  Can be specified multiple times.
`

// ExtensionsHelp documents what ec2init adds to ec2-metadata.
const ExtensionsHelp = `
ec2init additions:
--json                    The whole typed instance (stable field names) as JSON.
--tree                    Every path and value of meta-data/ and dynamic/ (credentials redacted).
--facts                   The essentials at a glance: AMI, instance, AZ, VPC, subnet, IPs, keys, NIC drivers.
--endpoint URL            IMDS endpoint (default: $AWS_EC2_METADATA_SERVICE_ENDPOINT, imds.endpoint, 169.254.169.254).
--allow-imdsv1            Fall back to IMDSv1 when no token can be had.
--log-level LEVEL         debug, info, warn or error.
`
