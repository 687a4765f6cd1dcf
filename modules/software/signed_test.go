package software

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ec2init/ec2init/agent/fetch"
	"github.com/ec2init/ec2init/internal/testkit"
	"github.com/ec2init/ec2init/modules/modtest"
)

// TestSignedItems signs with the real minisign and gpg: a good signature
// installs; a wrong key, a truncated signature, a signature over other
// bytes, an expired OpenPGP key and an unreadable key file each fail their
// item alone, with a message naming it, and install nothing.
func TestSignedItems(t *testing.T) {
	if testing.Short() {
		t.Skip("generates keys with minisign and gpg")
	}
	o := newOrigin(t)
	env := newEnv(t)
	ca := o.installCA(t, env.Root)
	tool := []byte("#!/bin/sh\necho signed tool\n")
	toolURL := o.Put("/tool", tool)
	mk, other := testkit.NewMinisignKey(t), testkit.NewMinisignKey(t)
	gk := testkit.NewGPGKey(t, "Release <release@example.com>", "", "1y")
	old := testkit.NewGPGKey(t, "Old <old@example.com>", "20200101T000000", "1d")
	writeHost(t, env.Root, "/etc/ec2init/keys/release.pub", mk.PubFile(t))
	writeHost(t, env.Root, "/etc/ec2init/keys/release.gpg", gk.Export(t, false))
	msig := mk.Sign(t, tool)
	o.Put("/tool.minisig", msig)
	o.Put("/tool.asc", gk.Sign(t, tool, "", true))
	o.Put("/tool.truncated.minisig", msig[:len(msig)/2])
	o.Put("/other.minisig", mk.Sign(t, []byte("other bytes")))
	o.Put("/tool.old.asc", old.Sign(t, tool, "20200101T120000", true))
	for _, d := range []string{"wrong-key", "truncated", "other-bytes", "expired", "no-keyring"} {
		writeHost(t, env.Root, "/opt/"+d+"/tool", []byte("previous"))
	}
	item := func(name, extra string) string {
		return "- name: " + name + "\n  source: " + toolURL + "\n  install: {type: file, dest: /opt/" + name + "/tool}\n" + indent(extra, 2)
	}
	cfg := modtest.Config(t, bootConfig(ca, item("minisign", "signature_url: "+o.URL+"/tool.minisig\npublic_key_file: /etc/ec2init/keys/release.pub")+
		item("openpgp", "signature_url: "+o.URL+"/tool.asc\ngpg_keyring: /etc/ec2init/keys/release.gpg")+
		item("openpgp-inline", "signature_url: "+o.URL+"/tool.asc\ngpg_key: |\n"+indent(string(gk.Export(t, true)), 2))+
		item("wrong-key", "signature_url: "+o.URL+"/tool.minisig\npublic_key: "+other.Line(t))+
		item("truncated", "signature_url: "+o.URL+"/tool.truncated.minisig\npublic_key: "+mk.Line(t))+
		item("other-bytes", "signature_url: "+o.URL+"/other.minisig\npublic_key: "+mk.Line(t))+
		item("expired", "signature_url: "+o.URL+"/tool.old.asc\ngpg_key: |\n"+indent(string(old.Export(t, true)), 2))+
		item("no-keyring", "signature_url: "+o.URL+"/tool.asc\ngpg_keyring: /etc/ec2init/keys/missing.gpg")))
	m, _ := module()
	err := m.Run(context.Background(), env, cfg)
	if err == nil {
		t.Fatal("no error, want the bad items'")
	}
	msg := err.Error()
	for _, want := range []string{
		"wrong-key: fetch " + toolURL + ": artifact wrong-key: fetch " + toolURL + ": signature verification failed: minisign signature by key",
		"truncated: fetch " + toolURL + ": artifact truncated: " + o.URL + "/tool.truncated.minisig: signature verification failed: minisign signature (truncated or not one)",
		"other-bytes: fetch " + toolURL + ": artifact other-bytes: fetch " + toolURL + ": signature verification failed: minisign signature does not match",
		"expired: fetch " + toolURL + ": artifact expired: fetch " + toolURL + ": signature verification failed: OpenPGP: the signing key has expired",
		"no-keyring: gpg_keyring: ",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if !errors.Is(err, fetch.ErrSignature) {
		t.Errorf("err %v is not ErrSignature", err)
	}
	res := readResults(t, env.Root, "i-0abc")
	for _, name := range []string{"minisign", "openpgp", "openpgp-inline"} {
		r := res[name]
		if r.Action != ActionInstalled || readHost(t, env.Root, "/opt/"+name+"/tool") != string(tool) || r.Checksum != "sha256:"+sha256hex(tool) {
			t.Errorf("%s: %+v", name, r)
		}
		wantSigner := "minisign key "
		if name != "minisign" {
			wantSigner = "openpgp key "
		}
		if !strings.HasPrefix(r.Signer, wantSigner) {
			t.Errorf("%s: signer %q", name, r.Signer)
		}
	}
	for _, name := range []string{"wrong-key", "truncated", "other-bytes", "expired", "no-keyring"} {
		if r := res[name]; r.Action != ActionFailed || r.Installed {
			t.Errorf("%s: %+v", name, r)
		}
		if got := readHost(t, env.Root, "/opt/"+name+"/tool"); got != "previous" {
			t.Errorf("%s: dest now %q", name, got)
		}
	}
}

// TestMirrorItems: sources are tried in order; a mirror is held to the
// item's checksum.
func TestMirrorItems(t *testing.T) {
	o := newOrigin(t)
	env := newEnv(t)
	ca := o.installCA(t, env.Root)
	body := []byte("the release")
	good := o.Put("/good/app", body)
	// none-good wants other bytes than app: with app's checksum it could be
	// served from the cache app just filled, when app is fetched first.
	lost := []byte("a release no mirror has")
	bad := o.Put("/bad/app", []byte("a mirror's other bytes"))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "https://" + l.Addr().String() + "/app"
	l.Close()
	cfg := modtest.Config(t, bootConfig(ca, `
- name: app
  sources: [`+down+`, `+bad+`, `+good+`]
  sha256: `+sha256hex(body)+`
  install: {type: file, dest: /opt/app/app}
- name: none-good
  sources: [`+down+`, `+bad+`]
  sha256: `+sha256hex(lost)+`
  install: {type: file, dest: /opt/none/app}
`))
	m, _ := module()
	// Quick retries against the closed port.
	m.NewFetcher = func(o fetch.ArtifactOptions) (Fetcher, error) {
		o.BaseBackoff, o.MaxBackoff = time.Millisecond, 5*time.Millisecond
		return fetch.NewArtifactFetcher(o)
	}
	err = m.Run(context.Background(), env, cfg)
	if err == nil || !strings.Contains(err.Error(), "none-good: fetch "+down) || !strings.Contains(err.Error(), "all 2 sources failed") || !errors.Is(err, fetch.ErrChecksum) {
		t.Fatalf("err = %v", err)
	}
	if readHost(t, env.Root, "/opt/app/app") != string(body) {
		t.Error("not installed from the good mirror")
	}
	if ok, _ := env.Root.Exists("/opt/none/app"); ok {
		t.Error("installed bytes no source verified")
	}
	res := readResults(t, env.Root, "i-0abc")
	if r := res["app"]; r.Source != down || r.FetchedFrom != good || r.Action != ActionInstalled {
		t.Errorf("app result %+v", r)
	}
}

// TestVersionFrom: the version is resolved from a manifest, recorded with
// the URL and digest in the results and the bake manifest; a manifest
// without a version fails its item by name.
func TestVersionFrom(t *testing.T) {
	o := newOrigin(t)
	env := newEnv(t)
	ca := o.installCA(t, env.Root)
	v12 := []byte("app 1.2.0")
	v20 := []byte("tool 2.0.1")
	appURL := o.Put("/rel/app-1.2.0.bin", v12)
	o.Put("/rel/latest.json", []byte(`{"version": "1.2.0", "url": "app-1.2.0.bin", "sha256": "`+sha256hex(v12)+`"}`))
	o.Put("/tool/LATEST", []byte("2.0.1\n"))
	o.Put("/tool/tool-2.0.1", v20)
	o.Put("/tool/tool-2.0.1.sha256", []byte(sha256hex(v20)+"  tool-2.0.1\n"))
	o.Put("/broken/latest.json", []byte(`{"url": "x"}`))
	cfg := modtest.Config(t, bootConfig(ca, `
- name: app
  policy: bake
  version_from: `+o.URL+`/rel/latest.json
  install: {type: file, dest: /opt/app/app}
- name: tool
  policy: bake
  version_from: `+o.URL+`/tool/LATEST
  source: `+o.URL+`/tool/tool-{version}
  sha256_url: `+o.URL+`/tool/tool-{version}.sha256
  install: {type: file, dest: /opt/tool/tool}
`))
	m, _ := module()
	man, results, err := m.Bake(context.Background(), env, cfg, "test")
	if err != nil {
		t.Fatal(err)
	}
	if readHost(t, env.Root, "/opt/app/app") != string(v12) || readHost(t, env.Root, "/opt/tool/tool") != string(v20) {
		t.Error("not installed")
	}
	if r := results[0]; r.Version != "1.2.0" || r.ResolvedURL != appURL || r.Checksum != "sha256:"+sha256hex(v12) {
		t.Errorf("app result %+v", r)
	}
	if mi := man.Find("tool"); mi == nil || mi.Version != "2.0.1" || mi.ResolvedURL != o.URL+"/tool/tool-2.0.1" || mi.Sum != sha256hex(v20) {
		t.Errorf("manifest item %+v", mi)
	}
	// bake --pin: the list frozen to what was resolved.
	pinned, err := Pin(cfg, results)
	if err != nil {
		t.Fatal(err)
	}
	pc, _, err := Parse(modtest.Config(t, string(pinned)))
	if err != nil {
		t.Fatalf("pinned config: %v\n%s", err, pinned)
	}
	if it := pc.Items[0]; it.VersionFrom != "" || it.Source != appURL || it.SHA256 != sha256hex(v12) || it.Err != nil {
		t.Errorf("pinned app: %+v\n%s", it, pinned)
	}
	if it := pc.Items[1]; it.VersionFrom != "" || it.Source != o.URL+"/tool/tool-2.0.1" || it.SHA256 != sha256hex(v20) || it.SHA256URL != "" || it.Err != nil {
		t.Errorf("pinned tool: %+v\n%s", it, pinned)
	}
	if !strings.Contains(string(pinned), "ca_file: "+ca) {
		t.Errorf("other keys lost:\n%s", pinned)
	}
	if err := WriteManifest(env.Root, man); err != nil {
		t.Fatal(err)
	}
	// At boot the baked items are verified, their resolved version shown.
	if err := m.Run(context.Background(), env, cfg); err != nil {
		t.Fatal(err)
	}
	if r := readResults(t, env.Root, "i-0abc")["tool"]; r.Action != ActionVerified || r.Version != "2.0.1" {
		t.Errorf("boot result %+v", r)
	}

	env = newEnv(t)
	ca = o.installCA(t, env.Root)
	err = m.Run(context.Background(), env, modtest.Config(t, bootConfig(ca, `
- name: broken
  version_from: `+o.URL+`/broken/latest.json
  install: {type: file, dest: /opt/broken}
`)))
	if err == nil || !strings.HasPrefix(err.Error(), "broken: version_from: version manifest "+o.URL+"/broken/latest.json: no version in it") || !errors.Is(err, fetch.ErrNoVersion) {
		t.Fatalf("err = %v", err)
	}
}
