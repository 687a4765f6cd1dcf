package accounts

import (
	"strings"

	"github.com/ec2init/ec2init/agent/sys"
)

// ChpasswdArgv is the chpasswd command that sets passwords in root's
// shadow from "user:password" lines on its stdin (never argv, which other
// users can read in /proc): -e for hashes. On the host, or when the runner
// chroots into the root, chpasswd runs plainly and hashes text through the
// image's PAM, as cloud-init has it; under a --root prefix it chroots
// itself (-R), where the host's PAM does not apply, so text is hashed by
// chpasswd with the image's ENCRYPT_METHOD (-c).
func ChpasswdArgv(root *sys.Root, chroot, hashed bool) []string {
	argv := []string{"chpasswd"}
	if !root.IsHost() && !chroot {
		argv = append(argv, "-R", root.Prefix())
		if !hashed {
			argv = append(argv, "-c", EncryptMethod(root))
		}
	}
	if hashed {
		argv = append(argv, "-e")
	}
	return argv
}

// EncryptMethod is the image's ENCRYPT_METHOD from its login.defs, SHA512
// when it sets none.
func EncryptMethod(root *sys.Root) string {
	method := "SHA512"
	b, err := root.ReadFile("/etc/login.defs")
	if err != nil {
		return method
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "ENCRYPT_METHOD" {
			method = strings.ToUpper(f[1])
		}
	}
	return method
}
