package testkit

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

func TestFakeBin(t *testing.T) {
	dir := FakeBin(t, map[string]string{
		"hello": "#!/bin/sh\necho \"hello $*\"\n",
		"fail":  "#!/bin/sh\nexit 3\n",
	})
	out, err := exec.Command(filepath.Join(dir, "hello"), "world").Output()
	if err != nil || string(out) != "hello world\n" {
		t.Errorf("hello: %q, %v", out, err)
	}
	err = exec.Command(filepath.Join(dir, "fail")).Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
		t.Errorf("fail: %v, want exit status 3", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "hello")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("mode: %v, %v", fi, err)
	}
}

// fatalTB records a Fatal instead of ending the test, to test that a
// helper refuses bad input.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = format
	panic(f)
}

func TestFakeToolWithoutShebang(t *testing.T) {
	f := &fatalTB{TB: t}
	func() {
		defer func() {
			if r := recover(); r != nil && r != any(f) {
				panic(r)
			}
		}()
		FakeTool(f, t.TempDir(), "tool", "echo no shebang\n")
	}()
	if !strings.Contains(f.msg, "no #! line") {
		t.Errorf("FakeTool without #!: fatal %q", f.msg)
	}
}

func TestOrigin(t *testing.T) {
	o := NewOrigin(t, map[string][]byte{"/a": []byte("alpha")})
	url := o.Put("/b", []byte("bravo"))
	ca := o.WriteCA(t, filepath.Join(t.TempDir(), "etc/pki/ca.pem"))
	pemBytes, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatal("CA file holds no certificate")
	}
	// A client that trusts only the CA file, as ca_file configures one.
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	get := func(u string) (int, string) {
		t.Helper()
		res, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	for _, tc := range []struct{ url, body string }{{o.URL + "/a", "alpha"}, {url, "bravo"}, {url, "bravo"}} {
		if code, body := get(tc.url); code != 200 || body != tc.body {
			t.Errorf("GET %s: %d %q, want 200 %q", tc.url, code, body, tc.body)
		}
	}
	if code, _ := get(o.URL + "/missing"); code != http.StatusNotFound {
		t.Errorf("GET /missing: %d", code)
	}
	for p, want := range map[string]int{"/a": 1, "/b": 2, "/missing": 1, "/never": 0} {
		if n := o.Count(p); n != want {
			t.Errorf("Count(%s) = %d, want %d", p, n, want)
		}
	}
	// A client without the CA refuses the origin.
	if _, err := http.Get(o.URL + "/a"); err == nil {
		t.Error("the default client trusted the self-signed origin")
	}
}

func TestSyncBuffer(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				b.Write([]byte("x"))
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if n := len(b.String()); n != 800 {
		t.Errorf("%d bytes, want 800", n)
	}
}

func TestFileStateAndStickyDir(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	if err := os.WriteFile(f, []byte("v1"), 0o640); err != nil {
		t.Fatal(err)
	}
	before := FileState(t, f)
	if !strings.HasPrefix(before, "-rw-r----- ") || !strings.HasSuffix(before, ` "v1"`) {
		t.Errorf("FileState = %s", before)
	}
	if err := os.Chmod(f, 0o600); err != nil {
		t.Fatal(err)
	}
	if after := FileState(t, f); after == before {
		t.Errorf("FileState missed a mode change: %s", after)
	}
	StickyDir(t, filepath.Join(dir, "tmp"))
	if fi, err := os.Stat(filepath.Join(dir, "tmp")); err != nil || fi.Mode() != os.ModeDir|os.ModeSticky|0o777 {
		t.Errorf("sticky dir: %v, %v", fi.Mode(), err)
	}
}

func TestPlantAndUserDir(t *testing.T) {
	RequireRoot(t, "chown to another user needs root")
	dir := t.TempDir()
	home := filepath.Join(dir, "home/ec2-user")
	UserDir(t, home, 0o700)
	link := filepath.Join(home, "app.conf")
	Plant(t, link, "/etc/shadow")
	for _, p := range []string{home, link} {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != UserUID || st.Gid != UserGID {
			t.Errorf("%s owned by %d:%d, want %d:%d", p, st.Uid, st.Gid, UserUID, UserGID)
		}
	}
	if fi, err := os.Stat(home); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("home mode: %v, %v", fi.Mode(), err)
	}
	if target, err := os.Readlink(link); err != nil || target != "/etc/shadow" {
		t.Errorf("link -> %q, %v", target, err)
	}
}

// The signing keys' output verifies with the same real tools.
func TestSigningKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("generates keys with minisign and gpg")
	}
	data := []byte("artifact\n")
	msg := writeArtifact(t, data)

	mk := NewMinisignKey(t)
	if err := os.WriteFile(msg+".minisig", mk.Sign(t, data), 0o600); err != nil {
		t.Fatal(err)
	}
	runTool(t, nil, "minisign", "-V", "-P", mk.Line(t), "-m", msg)
	if !strings.Contains(string(mk.PubFile(t)), mk.Line(t)) {
		t.Errorf("public key file %q lacks its line", mk.PubFile(t))
	}

	gk := NewGPGKey(t, "Release <release@example.com>", "", "1y")
	if err := os.WriteFile(msg+".asc", gk.Sign(t, data, "", true), 0o600); err != nil {
		t.Fatal(err)
	}
	gk.GPG(t, "", "--verify", msg+".asc", msg)
	if !strings.HasPrefix(string(gk.Export(t, true)), "-----BEGIN PGP PUBLIC KEY BLOCK-----") {
		t.Errorf("armored export: %q", gk.Export(t, true))
	}
}
