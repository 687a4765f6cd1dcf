package ssh

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"fmt"
	"strings"

	xssh "golang.org/x/crypto/ssh"
)

// fingerprint formats an OpenSSH public key line as `ssh-keygen -l` prints
// it ("256 SHA256:... root@host (ED25519)"), computed here rather than by
// one ssh-keygen process per host key at every first boot.
func fingerprint(line string) (string, error) {
	pk, comment, _, _, err := xssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return "", err
	}
	bits, label, err := keySize(pk)
	if err != nil {
		return "", err
	}
	if comment == "" {
		comment = "no comment"
	}
	return fmt.Sprintf("%d %s %s (%s)", bits, xssh.FingerprintSHA256(pk), comment, label), nil
}

// keySize is the key's size in bits and ssh-keygen's name for its type.
func keySize(pk xssh.PublicKey) (int, string, error) {
	ck, ok := pk.(xssh.CryptoPublicKey)
	if !ok {
		return 0, "", fmt.Errorf("%s: unsupported key type", pk.Type())
	}
	label := strings.ToUpper(strings.TrimPrefix(strings.TrimSuffix(pk.Type(), "@openssh.com"), "ssh-"))
	switch k := ck.CryptoPublicKey().(type) {
	case *rsa.PublicKey:
		return k.N.BitLen(), "RSA", nil
	case *ecdsa.PublicKey:
		return k.Curve.Params().BitSize, "ECDSA", nil
	case ed25519.PublicKey:
		return 256, "ED25519", nil
	}
	return 0, label, fmt.Errorf("%s: unsupported key type", pk.Type())
}
