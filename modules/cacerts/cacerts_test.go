package cacerts

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ec2init/ec2init/internal/testkit"
	"github.com/ec2init/ec2init/modules/modtest"
)

const (
	debianOS = "ID=debian\nVERSION_ID=12\nVERSION_CODENAME=bookworm\n"
	amznOS   = "ID=\"amzn\"\nID_LIKE=\"fedora\"\nVERSION_ID=\"2023\"\n"
)

func newCA(t *testing.T, cn string) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func indent(s string) string {
	return "      " + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n      ") + "\n"
}

// TestDebianRealTool runs the real update-ca-certificates on a temporary
// root (it takes each of its directories as an option).
func TestDebianRealTool(t *testing.T) {
	if _, err := exec.LookPath("update-ca-certificates"); err != nil {
		t.Skip("update-ca-certificates not installed (Debian package ca-certificates)")
	}
	def, mine, mine2 := newCA(t, "Distro Default"), newCA(t, "Corp Root"), newCA(t, "Corp Root 2")
	for _, remove := range []bool{false, true} {
		t.Run(map[bool]string{false: "add", true: "remove_defaults"}[remove], func(t *testing.T) {
			e, _ := modtest.Env(t)
			modtest.Put(t, e, "/etc/os-release", debianOS)
			modtest.Put(t, e, DebianCertsDir+"/mozilla/Distro_Default.crt", def)
			modtest.Put(t, e, DebianConf, "# comment\nmozilla/Distro_Default.crt\n")
			cfg := "ca_certs:\n  remove_defaults: " + map[bool]string{false: "false", true: "true"}[remove] +
				"\n  trusted:\n    - |\n" + indent(mine) + "    - |\n" + indent(mine2)
			if err := (CACerts{}).Run(context.Background(), e, modtest.Config(t, cfg)); err != nil {
				t.Fatal(err)
			}
			if got := modtest.Get(t, e, DebianLocalDir+"/cloud-init-ca-cert-2.crt"); got != mine2 {
				t.Errorf("cert 2 file: %q", got)
			}
			bundle := modtest.Get(t, e, DebianEtcCerts+"/ca-certificates.crt")
			if !strings.Contains(bundle, strings.TrimSpace(mine)) || !strings.Contains(bundle, strings.TrimSpace(mine2)) {
				t.Errorf("bundle lacks the trusted certs:\n%s", bundle)
			}
			if got := strings.Contains(bundle, strings.TrimSpace(def)); got == remove {
				t.Errorf("default in bundle: %v with remove_defaults %v", got, remove)
			}
			wantConf := "# comment\nmozilla/Distro_Default.crt\n"
			if remove {
				wantConf = "# comment\n" + headerComment + "\n!mozilla/Distro_Default.crt\n"
			}
			if got := modtest.Get(t, e, DebianConf); got != wantConf {
				t.Errorf("conf %q, want %q", got, wantConf)
			}
		})
	}
}

// TestAmazonLinux: Debian does not package update-ca-trust (p11-kit's
// trust tool is another program), so the tool is a fake recording its
// argv; the files and removals are real.
func TestAmazonLinux(t *testing.T) {
	e, _ := modtest.Env(t)
	e.Runner.Chroot = false
	modtest.Put(t, e, "/etc/os-release", amznOS)
	modtest.Put(t, e, RHELTrustDir+"/extracted/pem/tls-ca-bundle.pem", "old")
	modtest.Put(t, e, RHELLocalDir+"/ca-bundle.trust.p11-kit", "old")
	mine := newCA(t, "Corp Root")
	cfg := modtest.Config(t, "ca-certs:\n  remove-defaults: true\n  trusted:\n    - |\n"+indent(mine))
	// Without --chroot update-ca-trust cannot be aimed at the root.
	err := (CACerts{}).Run(context.Background(), e, cfg)
	if err == nil || !strings.Contains(err.Error(), "update-ca-trust cannot update root") {
		t.Fatalf("error %v", err)
	}
	if got := modtest.Get(t, e, RHELLocalDir+"/anchors/cloud-init-ca-cert-1.crt"); got != mine {
		t.Errorf("anchor: %q", got)
	}
	for _, p := range []string{RHELTrustDir + "/extracted/pem/tls-ca-bundle.pem", RHELLocalDir + "/ca-bundle.trust.p11-kit"} {
		if got := modtest.Get(t, e, p); got != "<absent>" {
			t.Errorf("%s kept with remove_defaults", p)
		}
	}
}

// TestMalformedRefused: a bad item is named with its line and nothing is
// written or run.
func TestMalformedRefused(t *testing.T) {
	good := newCA(t, "Good")
	broken := strings.Replace(good, "MII", "XXX", 1)
	// The second item's "- |" line: after the key lines and the first item.
	line := "test.yaml:" + strconv.Itoa(4+strings.Count(strings.TrimSpace(good), "\n")+1)
	key := "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
	for _, tt := range []struct{ name, item, want string }{
		{"not pem", "just text", line + ": ca_certs.trusted[1]: no PEM certificate"},
		{"broken body", broken, line + ": ca_certs.trusted[1]: "},
		{"a key", key, `ca_certs.trusted[1]: block 1 is "PRIVATE KEY", not a CERTIFICATE`},
		{"trailing junk", good + "junk\n", "ca_certs.trusted[1]: text after certificate 1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := modtest.Env(t)
			e.Runner.Env = map[string]string{"PATH": testkit.FakeBin(t, map[string]string{"update-ca-certificates": "#!/bin/sh\nexit 99\n"})}
			modtest.Put(t, e, "/etc/os-release", debianOS)
			cfg := "ca_certs:\n  trusted:\n    - |\n" + indent(good) + "    - |\n" + indent(tt.item)
			err := (CACerts{}).Run(context.Background(), e, modtest.Config(t, cfg))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "AAAA") {
				t.Errorf("error shows the key: %v", err)
			}
			if ents, _ := os.ReadDir(e.Root.Prefix() + DebianLocalDir); len(ents) > 0 {
				t.Errorf("written before refusing: %v", ents)
			}
		})
	}
}
