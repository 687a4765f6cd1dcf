package fetch

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/internal/testkit"
)

// TestSignatures signs artifacts with the real minisign and gpg and
// fetches them from an HTTPS origin: a good signature lands in the cache;
// a wrong key, a truncated signature, a signature over other bytes and an
// expired key each fail with ErrSignature (or a parse error before any
// download) and leave nothing in the cache.
func TestSignatures(t *testing.T) {
	if testing.Short() {
		t.Skip("generates keys with minisign and gpg")
	}
	o := testkit.NewOrigin(t, nil)
	ca := o.WriteCA(t, filepath.Join(t.TempDir(), "ca.pem"))
	body := payload(2<<20 + 5)
	other := payload(1000)
	artURL := o.Put("/app.tar.gz", body)

	mk := newMinisignKey(t)
	mk2 := newMinisignKey(t)
	msig := mk.sign(t, body)
	gk := newGPGKey(t, "Release <release@example.com>", "", "1y")
	gk2 := newGPGKey(t, "Stranger <stranger@example.com>", "", "1y")
	// A key created in 2020 that expired a day later; it signed then.
	old := newGPGKey(t, "Old <old@example.com>", "20200101T000000", "1d")
	gsig := gk.sign(t, body, "", true)

	tests := []struct {
		name       string
		sig        Signature
		sha256     string
		wantSigner string
		wantIs     error
		wantErr    string
	}{
		{name: "minisign, signature URL", sig: Signature{Kind: SigMinisign, Key: []byte(mk.line(t)), URL: o.Put("/m1.minisig", msig)},
			wantSigner: "minisign key "},
		{name: "minisign, inline with a checksum too", sig: Signature{Kind: SigMinisign, Key: []byte(mk.line(t)), Data: msig}, sha256: sha256Hex(body),
			wantSigner: "minisign key "},
		{name: "minisign, key file content", sig: Signature{Kind: SigMinisign, Key: mustRead(t, mk.pub), Data: msig}, wantSigner: "minisign key "},
		{name: "minisign, wrong key", sig: Signature{Kind: SigMinisign, Key: []byte(mk2.line(t)), Data: msig},
			wantIs: ErrSignature, wantErr: "the trusted key is"},
		{name: "minisign, signature over other bytes", sig: Signature{Kind: SigMinisign, Key: []byte(mk.line(t)), URL: o.Put("/m2.minisig", mk.sign(t, other))},
			wantIs: ErrSignature, wantErr: "does not match"},
		{name: "minisign, truncated signature", sig: Signature{Kind: SigMinisign, Key: []byte(mk.line(t)), URL: o.Put("/m3.minisig", msig[:len(msig)/2])},
			wantErr: "minisign signature (truncated or not one)"},
		{name: "openpgp, armored key and signature", sig: Signature{Kind: SigOpenPGP, Key: gk.export(t, true), URL: o.Put("/g1.asc", gsig)},
			wantSigner: "openpgp key "},
		{name: "openpgp, binary key and signature", sig: Signature{Kind: SigOpenPGP, Key: gk.export(t, false), Data: gk.sign(t, body, "", false)},
			wantSigner: "openpgp key "},
		{name: "openpgp, wrong key", sig: Signature{Kind: SigOpenPGP, Key: gk2.export(t, true), Data: gsig},
			wantIs: ErrSignature, wantErr: "not among the trusted keys"},
		{name: "openpgp, signature over other bytes", sig: Signature{Kind: SigOpenPGP, Key: gk.export(t, true), Data: gk.sign(t, other, "", true)},
			wantIs: ErrSignature},
		{name: "openpgp, truncated signature", sig: Signature{Kind: SigOpenPGP, Key: gk.export(t, true), URL: o.Put("/g2.sig", gk.sign(t, body, "", false)[:40])},
			wantErr: "OpenPGP signature (truncated or not one)"},
		{name: "openpgp, expired key", sig: Signature{Kind: SigOpenPGP, Key: old.export(t, true), Data: old.sign(t, body, "20200101T120000", true)},
			wantIs: ErrSignature, wantErr: "the signing key has expired"},
		{name: "minisign key for an openpgp signature", sig: Signature{Kind: SigOpenPGP, Key: []byte(mk.line(t)), Data: gsig},
			wantErr: "OpenPGP public key"},
		{name: "unknown kind", sig: Signature{Kind: "x509", Key: []byte("k"), Data: gsig}, wantErr: `signature kind "x509"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newTestFetcher(t, ArtifactOptions{CAFile: ca})
			sig := tt.sig
			src := Source{URL: artURL, SHA256: tt.sha256, Signature: &sig}
			a, err := f.Fetch(context.Background(), tt.name, src)
			if tt.wantErr != "" || tt.wantIs != nil {
				if err == nil {
					t.Fatal("fetched, want an error")
				}
				t.Logf("error: %v", err)
				if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
					t.Errorf("err %v, want %v", err, tt.wantIs)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("err %q, want it to say %q", err, tt.wantErr)
				}
				for _, p := range cacheFiles(t, f.opts.CacheDir) {
					if !strings.HasSuffix(p, ".lock") {
						t.Errorf("left in the cache: %s", p)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(a.Signer, tt.wantSigner) || a.Sum != sha256Hex(body) || a.Algo != "sha256" || a.URL != artURL {
				t.Errorf("artifact %+v", a)
			}
			if got, _ := os.ReadFile(a.Path); string(got) != string(body) {
				t.Error("cached bytes differ")
			}
			// Again: the signature is known to have verified this content;
			// nothing is downloaded.
			before := o.Count("/app.tar.gz")
			a2, err := f.Fetch(context.Background(), tt.name, src)
			if err != nil || !a2.Cached || a2.Path != a.Path || a2.Signer != a.Signer {
				t.Errorf("second fetch: %+v, %v", a2, err)
			}
			if o.Count("/app.tar.gz") != before {
				t.Error("the artifact was downloaded again")
			}
		})
	}
}

// A signature checked over a resumed download covers the bytes of the
// earlier run too: the verifier is fed the partial file first.
func TestSignatureOverResume(t *testing.T) {
	if testing.Short() {
		t.Skip("generates a key with minisign")
	}
	o := testkit.NewOrigin(t, nil)
	ca := o.WriteCA(t, filepath.Join(t.TempDir(), "ca.pem"))
	body := payload(3<<20 + 1)
	mk := newMinisignKey(t)
	sig := Signature{Kind: SigMinisign, Key: []byte(mk.line(t)), Data: mk.sign(t, body)}
	src := Source{URL: o.Put("/big", body), Signature: &sig}
	for _, tt := range []struct {
		name string
		seed []byte
	}{
		{name: "the right first bytes", seed: body[:1<<20]},
		// A partial file of other bytes fails the signature; the download
		// starts over once from byte 0 and then verifies.
		{name: "other first bytes", seed: payload(1 << 20)[1:]},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newTestFetcher(t, ArtifactOptions{CAFile: ca})
			c, err := newSigCheck(sig.Kind, sig.Key, sig.Data)
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(f.opts.CacheDir, partialDir, partialKey(src.URL, expected{algo: "signed", sum: c.id}))
			if err := os.WriteFile(p, tt.seed, 0o600); err != nil {
				t.Fatal(err)
			}
			a, err := f.Fetch(context.Background(), "big", src)
			if err != nil {
				t.Fatal(err)
			}
			if a.Sum != sha256Hex(body) {
				t.Errorf("sum %s", a.Sum)
			}
		})
	}
}

func mustRead(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Content already in the cache (fetched by checksum alone) is not served
// to a source whose signature does not verify it.
func TestSignatureOverCachedContent(t *testing.T) {
	if testing.Short() {
		t.Skip("generates keys with minisign")
	}
	o := testkit.NewOrigin(t, nil)
	ca := o.WriteCA(t, filepath.Join(t.TempDir(), "ca.pem"))
	body := payload(5000)
	u := o.Put("/a", body)
	mk, other := newMinisignKey(t), newMinisignKey(t)
	f := newTestFetcher(t, ArtifactOptions{CAFile: ca})
	if _, err := f.Fetch(context.Background(), "a", Source{URL: u, SHA256: sha256Hex(body)}); err != nil {
		t.Fatal(err)
	}
	bad := Signature{Kind: SigMinisign, Key: []byte(other.line(t)), Data: mk.sign(t, body)}
	if _, err := f.Fetch(context.Background(), "a", Source{URL: u, SHA256: sha256Hex(body), Signature: &bad}); !errors.Is(err, ErrSignature) {
		t.Errorf("err %v, want ErrSignature", err)
	}
	good := Signature{Kind: SigMinisign, Key: []byte(mk.line(t)), Data: mk.sign(t, body)}
	a, err := f.Fetch(context.Background(), "a", Source{URL: u, SHA256: sha256Hex(body), Signature: &good})
	if err != nil || !a.Cached || !strings.HasPrefix(a.Signer, "minisign key ") {
		t.Errorf("good signature over the cached content: %+v, %v", a, err)
	}
	if o.Count("/a") != 1 {
		t.Errorf("%d downloads, want 1", o.Count("/a"))
	}
}
