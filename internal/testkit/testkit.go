// Package testkit holds the fixtures many of ec2init's tests used to write
// by hand: fake command-line tools as shell stubs, the root check, a
// loopback HTTPS origin with its CA, a log buffer safe for concurrent
// writers, minisign and OpenPGP signing keys made with the real tools, and
// the planted-symlink fixtures of the hostile-user tests.
//
// Only _test.go files import it. It depends on the standard library alone,
// so any layer's tests may use it without crossing a layer.
package testkit
