package rhsubscription

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ec2init/ec2init/internal/testkit"
	"github.com/ec2init/ec2init/modules/modtest"
)

// fake is subscription-manager as far as the module needs it. Debian has
// no subscription-manager (nor a Red Hat account to register with), so
// the module is checked argv by argv against this fake: it records each
// call and answers as the real tool does. FAKE says what goes wrong.
const fake = `#!/bin/sh
echo "$*" >> "$EC2INIT_ROOT/calls"
case "$1 $2" in
identity*) [ "$FAKE" = registered ] && { echo "system identity: 1234"; exit 0; }
           echo "This system is not yet registered."; exit 1 ;;
register*) [ "$FAKE" = badpass ] && { echo "Invalid credentials: $*"; exit 64; }
           echo "The system has been registered with ID: 5f6e-77"; echo "The registered system name is: ip-10-0-0-1" ;;
"list --available") printf 'pool-a\npool-b\npool-c\n' ;;
"list --consumed") printf 'pool-b\n' ;;
"repos --list-enabled") printf '+----+\n    Available Repositories\n+----+\nRepo ID:   rhel-9-baseos\nRepo Name: BaseOS\n\nRepo ID:   rhel-9-appstream\n' ;;
"repos --list-disabled") printf 'Repo ID:   rhel-9-codeready\nRepo Name: CRB\n' ;;
attach*) [ "$FAKE" = attach ] && { echo "No subscriptions are available"; exit 1; } ;;
esac
exit 0
`

func TestRHSubscription(t *testing.T) {
	tests := []struct {
		name, cfg, fake string
		want            []string // the calls, in order
		wantErr         string
	}{
		{"activation key", `rh_subscription:
  activation-key: KEY-s3cr3t
  org: "123"
  rhsm-baseurl: https://cdn.example.com
  server-hostname: subscription.example.com
  auto-attach: true
  service-level: self-support
`, "", []string{
			"identity",
			"register --activationkey=KEY-s3cr3t --org=123 --baseurl=https://cdn.example.com --serverurl=subscription.example.com",
			"attach --auto --servicelevel=self-support",
		}, ""},
		{"password, pools, repos, release", `rh_subscription:
  username: admin@example.com
  password: 'Pa55w0rd!'
  auto_attach: true
  add_pool: [pool-a, pool-b, pool-x]
  enable_repo: [rhel-9-codeready, rhel-9-baseos, nosuch]
  disable_repo: [rhel-9-appstream, rhel-9-codeready]
  release_version: "9.2"
`, "", []string{
			"identity",
			"register --username=admin@example.com --password=Pa55w0rd!",
			"attach --auto",
			"list --available --pool-only",
			"list --consumed --pool-only",
			"attach --pool=pool-a",
			"repos --list-enabled",
			"repos --list-disabled",
			"repos --disable=rhel-9-appstream --enable=rhel-9-codeready",
			"release --set=9.2",
		}, ""},
		{"integer org", "rh_subscription: {activation_key: k, org: 42}\n", "", []string{"identity", "register --activationkey=k --org=42"}, ""},
		{"already registered", "rh_subscription: {username: u, password: 'Pa55w0rd!'}\n", "registered", []string{"identity"}, ""},
		{"not configured", "rh_subscription: {org: o}\n", "", nil, ""},
		{"bad password: never quoted", "rh_subscription: {username: u, password: 'Pa55w0rd!'}\n", "badpass",
			[]string{"identity", "register --username=u --password=Pa55w0rd!"}, "subscription-manager register: exit status 64: Invalid credentials: register --username=u --password=<redacted>"},
		{"key without org", "rh_subscription: {activation_key: KEY-s3cr3t}\n", "", []string{"identity"}, "activation_key needs org"},
		{"service level without auto attach", "rh_subscription: {activation_key: k, org: o, service_level: x}\n", "", []string{"identity"}, "service_level needs auto_attach: true"},
		{"no pool available", "rh_subscription: {activation_key: k, org: o, add_pool: [pool-b, pool-z]}\n", "",
			[]string{"identity", "register --activationkey=k --org=o", "list --available --pool-only", "list --consumed --pool-only"}, "none of pool-b, pool-z is available"},
		{"attach fails", "rh_subscription: {activation_key: k, org: o, auto_attach: true}\n", "attach",
			[]string{"identity", "register --activationkey=k --org=o", "attach --auto"}, "subscription-manager attach: exit status 1: No subscriptions are available"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := modtest.Env(t)
			bin := testkit.FakeBin(t, map[string]string{Tool: fake})
			e.Runner.Env = map[string]string{"PATH": bin + ":/usr/bin:/bin", "FAKE": tt.fake}
			core, logs := observer.New(zap.DebugLevel)
			e.Log = zap.New(core)
			modtest.Put(t, e, "/var/cache/dnf/x/repomd.xml", "old")
			err := RHSubscription{}.Run(context.Background(), e, modtest.Config(t, tt.cfg))
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			got := strings.Split(strings.TrimSpace(modtest.Get(t, e, "/calls")), "\n")
			if len(tt.want) == 0 {
				got = nil
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			// The secrets are in argv (the calls above) and nowhere else.
			for _, secret := range []string{"Pa55w0rd!", "KEY-s3cr3t"} {
				if err != nil && strings.Contains(err.Error(), secret) {
					t.Errorf("error quotes a secret: %v", err)
				}
				for _, l := range logs.All() {
					if strings.Contains(l.Message, secret) || strings.Contains(fmtFields(l), secret) {
						t.Errorf("log quotes a secret: %v", l)
					}
				}
			}
			wantCache := "old"
			if strings.Contains(tt.cfg, "release_version") {
				wantCache = "<absent>"
			}
			if got := modtest.Get(t, e, "/var/cache/dnf/x/repomd.xml"); got != wantCache {
				t.Errorf("dnf cache %q, want %q", got, wantCache)
			}
		})
	}
}

func fmtFields(l observer.LoggedEntry) string {
	var b strings.Builder
	for k, v := range l.ContextMap() {
		b.WriteString(k + "=")
		b.WriteString(strings.TrimSpace(strings.ReplaceAll(fmtAny(v), "\n", " ")) + " ")
	}
	return b.String()
}

func fmtAny(v any) string {
	if err, ok := v.(error); ok {
		return err.Error()
	}
	if s, ok := v.(string); ok {
		return s
	}
	return ""
}

// TestNotInstalled: on an image without subscription-manager the error
// says so (and wraps exec's).
func TestNotInstalled(t *testing.T) {
	e, _ := modtest.Env(t)
	e.Runner.Env = map[string]string{"PATH": t.TempDir()}
	modtest.Put(t, e, "/x", "")
	err := RHSubscription{}.Run(context.Background(), e, modtest.Config(t, "rh_subscription: {activation_key: k, org: o}\n"))
	if !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("err = %v, want not found", err)
	}
}

func TestRemoveTree(t *testing.T) {
	e, _ := modtest.Env(t)
	modtest.Put(t, e, "/var/cache/yum/a/b/c", "x")
	outside := filepath.Join(t.TempDir(), "keep")
	if err := os.WriteFile(outside, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	full, _ := e.Root.Path("/var/cache/yum/a/link")
	testkit.Plant(t, full, filepath.Dir(outside))
	if err := removeTree(e.Root, "/var/cache/yum"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := e.Root.Exists("/var/cache/yum"); ok {
		t.Error("cache left")
	}
	if _, err := os.Stat(outside); err != nil {
		t.Errorf("followed a symlink out of the tree: %v", err)
	}
}

func TestSchema(t *testing.T) {
	for doc, want := range map[string]string{
		"rh_subscription: {username: u}\n":                                      "u.yaml:1:18: error: rh_subscription: username and password go together",
		"rh_subscription: {activation_key: k}\n":                                "u.yaml:1:35: error: rh_subscription: activation_key needs org",
		"rh_subscription: {activation_key: k, activation-key: k, org: o}\n":     "u.yaml:1:54: error: rh_subscription.activation-key: given with activation_key",
		"rh_subscription: {activation-key: k, org: o}\n":                        "u.yaml:1:35: warning: rh_subscription.activation-key: deprecated: use activation_key",
		"rh_subscription: {activation_key: k, org: 1}\n":                        "u.yaml:1:43: warning: rh_subscription.org: an integer org is deprecated",
		"rh_subscription: {activation_key: k, org: o, service_level: s}\n":      "u.yaml:1:61: error: rh_subscription.service_level: needs auto_attach: true",
		"rh_subscription: {activation_key: k, org: o, auto_attach: 'yes'}\n":    "u.yaml:1:59: error: rh_subscription.auto_attach: expected boolean",
		"rh_subscription: {org: o}\n":                                           "warning: rh_subscription: neither username and password nor activation_key",
		"rh_subscription: {username: u, password: [hunter2], enable_repo: r}\n": "u.yaml:1:42: error: rh_subscription.password: expected string, got a list",
		"rh_subscription: {activation_key: k, org: o, add_pool: pool}\n":        "rh_subscription.add_pool: expected list of string",
	} {
		got := modtest.Diagnostics(t, doc, RHSubscription{})
		if !strings.Contains(got, want) {
			t.Errorf("%q: diagnostics %q, want %q", doc, got, want)
		}
		if strings.Contains(got, "hunter2") {
			t.Errorf("diagnostics quote the password: %q", got)
		}
	}
	if got := modtest.Diagnostics(t, "rh_subscription: {activation_key: k, org: o, auto_attach: true, service_level: s}\n", RHSubscription{}); got != "" {
		t.Errorf("good config has findings %q", got)
	}
}
