package fetch

import (
	"testing"

	"github.com/ec2init/ec2init/internal/testkit"
)

// The signature tests sign with testkit's real minisign and gpg keys; these
// short names keep those tests' tables readable.

type minisignKey struct {
	testkit.MinisignKey
	pub string
}

func newMinisignKey(t testing.TB) minisignKey {
	t.Helper()
	k := testkit.NewMinisignKey(t)
	return minisignKey{MinisignKey: k, pub: k.Pub}
}

func (k minisignKey) line(t testing.TB) string              { t.Helper(); return k.Line(t) }
func (k minisignKey) sign(t testing.TB, data []byte) []byte { t.Helper(); return k.Sign(t, data) }

type gpgKey struct{ testkit.GPGKey }

func newGPGKey(t testing.TB, uid, at, expire string) gpgKey {
	t.Helper()
	return gpgKey{testkit.NewGPGKey(t, uid, at, expire)}
}

func (k gpgKey) export(t testing.TB, armor bool) []byte { t.Helper(); return k.Export(t, armor) }

func (k gpgKey) sign(t testing.TB, data []byte, at string, armor bool) []byte {
	t.Helper()
	return k.Sign(t, data, at, armor)
}
