// Detached signatures: minisign (aead.dev/minisign) and OpenPGP
// (github.com/ProtonMail/go-crypto/openpgp), checked over the same bytes,
// in the same pass, as the artifact's hash.

package fetch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"aead.dev/minisign"
	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/ec2init/ec2init/agent/redact"
)

// Signature kinds.
const (
	SigMinisign = "minisign"
	SigOpenPGP  = "openpgp"
)

// ErrSignature is an artifact whose detached signature does not verify
// (wrong key, other bytes, an expired or revoked key). Nothing of it is
// left in the cache.
var ErrSignature = errors.New("signature verification failed")

// maxSignatureBytes caps a signature file (a minisign signature is a few
// hundred bytes; an OpenPGP one a few KiB).
const maxSignatureBytes = 64 << 10

// Signature is a detached signature an artifact must verify against.
type Signature struct {
	// Kind is SigMinisign or SigOpenPGP.
	Kind string
	// Key is the trusted public key: for minisign the base64 key line (or
	// a minisign.pub file's content); for OpenPGP one or more public keys,
	// armored or binary (gpg --export).
	Key []byte
	// Data is the signature itself, or URL (by the same schemes as the
	// artifact's) where it is fetched from. Exactly one is set.
	Data []byte
	URL  string
}

// CheckSignatureKey says whether key is a usable public key of kind, with
// an error fit for a configuration message.
func CheckSignatureKey(kind string, key []byte) error {
	_, err := parseSigKey(kind, key)
	return err
}

// CheckSignatureData says whether data is a well-formed signature of kind
// (not whether it verifies).
func CheckSignatureData(kind string, data []byte) error {
	switch kind {
	case SigMinisign:
		_, err := parseMinisignSig(data)
		return err
	case SigOpenPGP:
		_, err := parseOpenPGPSig(data)
		return err
	}
	return fmt.Errorf("signature kind %q: want minisign or openpgp", kind)
}

// sigKey is a parsed trusted key.
type sigKey struct {
	kind     string
	minisign minisign.PublicKey
	keyring  openpgp.EntityList
}

func parseSigKey(kind string, key []byte) (sigKey, error) {
	switch kind {
	case SigMinisign:
		var pk minisign.PublicKey
		text := bytes.TrimSpace(key)
		// A minisign.pub file has an untrusted comment line first; the
		// library drops it, but not surrounding blank lines.
		if err := pk.UnmarshalText(text); err != nil {
			return sigKey{}, fmt.Errorf("minisign public key: %s", strings.TrimPrefix(err.Error(), "minisign: "))
		}
		return sigKey{kind: kind, minisign: pk}, nil
	case SigOpenPGP:
		var el openpgp.EntityList
		var err error
		if bytes.Contains(key, []byte("-----BEGIN PGP")) {
			el, err = openpgp.ReadArmoredKeyRing(bytes.NewReader(key))
		} else {
			el, err = openpgp.ReadKeyRing(bytes.NewReader(key))
		}
		if err != nil {
			return sigKey{}, fmt.Errorf("OpenPGP public key: %w (want an armored key or gpg --export output; a GnuPG keybox .kbx is not read)", err)
		}
		if len(el) == 0 {
			return sigKey{}, errors.New("OpenPGP public key: no key in it")
		}
		return sigKey{kind: kind, keyring: el}, nil
	}
	return sigKey{}, fmt.Errorf("signature kind %q: want minisign or openpgp", kind)
}

func parseMinisignSig(data []byte) (minisign.Signature, error) {
	var s minisign.Signature
	if err := s.UnmarshalText(bytes.TrimSpace(data)); err != nil {
		return s, fmt.Errorf("minisign signature (truncated or not one): %s", strings.TrimPrefix(err.Error(), "minisign: "))
	}
	if s.Algorithm != minisign.HashEdDSA {
		// A legacy signature signs the whole message, which cannot be
		// checked while streaming it.
		return s, errors.New("minisign signature: legacy (not prehashed); sign again with minisign 0.8 or later without -l")
	}
	return s, nil
}

// parseOpenPGPSig reads every packet of a detached signature, armored or
// binary: a truncated or foreign one fails here, before any download.
func parseOpenPGPSig(data []byte) ([]*packet.Signature, error) {
	r := io.Reader(bytes.NewReader(data))
	if bytes.Contains(data, []byte("-----BEGIN PGP")) {
		block, err := armor.Decode(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("OpenPGP signature (truncated or not one): %w", err)
		}
		if block.Type != openpgp.SignatureType {
			return nil, fmt.Errorf("OpenPGP signature: armored %q, want %q", block.Type, openpgp.SignatureType)
		}
		r = block.Body
	}
	var sigs []*packet.Signature
	pr := packet.NewReader(r)
	for {
		p, err := pr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("OpenPGP signature (truncated or not one): %w", err)
		}
		s, ok := p.(*packet.Signature)
		if !ok {
			return nil, fmt.Errorf("OpenPGP signature: a %T packet in it, want signatures only", p)
		}
		sigs = append(sigs, s)
	}
	if len(sigs) == 0 {
		return nil, errors.New("OpenPGP signature: empty")
	}
	return sigs, nil
}

// sigCheck is a signature ready to verify: key and signature parsed.
type sigCheck struct {
	key  sigKey
	data []byte // the signature, as fetched or given
	// id names (key, signature): the cache's index of what it verified.
	id string
}

func newSigCheck(kind string, key, data []byte) (*sigCheck, error) {
	// Both are answers, not passing failures: fetching again would give
	// the same key and the same signature.
	k, err := parseSigKey(kind, key)
	if err != nil {
		return nil, &localError{err}
	}
	if err := CheckSignatureData(kind, data); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSignature, err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00", kind, len(key))
	h.Write(key)
	h.Write(data)
	return &sigCheck{key: k, data: data, id: hex.EncodeToString(h.Sum(nil))}, nil
}

// signer describes the key that verified, for the record.
func (c *sigCheck) signer(e *openpgp.Entity) string {
	if c.key.kind == SigMinisign {
		return fmt.Sprintf("minisign key %016X", c.key.minisign.ID())
	}
	if e != nil && e.PrimaryKey != nil {
		return "openpgp key " + strings.ToUpper(hex.EncodeToString(e.PrimaryKey.Fingerprint))
	}
	return "openpgp"
}

// verifier is fed the artifact's bytes as they are written and says at
// the end whether the signature holds over them.
type verifier interface {
	io.Writer
	// finish ends the stream and verifies, returning the signer.
	finish() (string, error)
	// close abandons a stream (a reset, or a failed download).
	close()
}

func (c *sigCheck) newVerifier() verifier {
	if c.key.kind == SigMinisign {
		return &minisignVerifier{c: c, r: minisign.NewReader(passThrough{})}
	}
	return newOpenPGPVerifier(c)
}

// passThrough "reads" by leaving the caller's buffer as it is: a
// minisign.Reader over it hashes whatever buffer it is handed, so the
// verifier hashes the download's own chunks without copying them.
type passThrough struct{}

func (passThrough) Read(p []byte) (int, error) { return len(p), nil }

type minisignVerifier struct {
	c *sigCheck
	r *minisign.Reader
}

func (v *minisignVerifier) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return v.r.Read(p)
}

func (v *minisignVerifier) finish() (string, error) {
	sig, _ := parseMinisignSig(v.c.data)
	if sig.KeyID != v.c.key.minisign.ID() {
		return "", fmt.Errorf("%w: minisign signature by key %016X, the trusted key is %016X", ErrSignature, sig.KeyID, v.c.key.minisign.ID())
	}
	if !v.r.Verify(v.c.key.minisign, v.c.data) {
		return "", fmt.Errorf("%w: minisign signature does not match the artifact's bytes", ErrSignature)
	}
	return v.c.signer(nil), nil
}

func (v *minisignVerifier) close() {}

// openPGPVerifier runs the library's detached-signature check in a
// goroutine reading the bytes written to it through a pipe: the library
// picks the hash (per signature) and checks the key's validity.
type openPGPVerifier struct {
	c    *sigCheck
	pw   *io.PipeWriter
	done chan struct{}
	who  *openpgp.Entity
	err  error
}

func newOpenPGPVerifier(c *sigCheck) *openPGPVerifier {
	pr, pw := io.Pipe()
	v := &openPGPVerifier{c: c, pw: pw, done: make(chan struct{})}
	go func() {
		defer close(v.done)
		sig := io.Reader(bytes.NewReader(c.data))
		if bytes.Contains(c.data, []byte("-----BEGIN PGP")) {
			block, err := armor.Decode(sig)
			if err != nil {
				v.err = err
				pr.CloseWithError(err)
				return
			}
			sig = block.Body
		}
		v.who, v.err = openpgp.CheckDetachedSignature(c.key.keyring, pr, sig, nil)
		// An early return (an unknown issuer) must not block the writer.
		_, _ = io.Copy(io.Discard, pr)
	}()
	return v
}

func (v *openPGPVerifier) Write(p []byte) (int, error) {
	n, err := v.pw.Write(p)
	if err != nil {
		// The checker gave up; finish reports why. The download goes on.
		return len(p), nil
	}
	return n, nil
}

func (v *openPGPVerifier) finish() (string, error) {
	v.pw.Close()
	<-v.done
	if v.err != nil {
		return "", fmt.Errorf("%w: %s", ErrSignature, openPGPMessage(v.err))
	}
	return v.c.signer(v.who), nil
}

func (v *openPGPVerifier) close() {
	v.pw.CloseWithError(errRestart)
	<-v.done
}

func openPGPMessage(err error) string {
	switch {
	case errors.Is(err, pgperrors.ErrKeyExpired):
		return "OpenPGP: the signing key has expired"
	case errors.Is(err, pgperrors.ErrSignatureExpired):
		return "OpenPGP: the signature has expired"
	case errors.Is(err, pgperrors.ErrKeyRevoked):
		return "OpenPGP: the signing key is revoked"
	case errors.Is(err, pgperrors.ErrUnknownIssuer):
		return "OpenPGP: signed by a key that is not among the trusted keys"
	}
	return "OpenPGP: " + strings.TrimPrefix(err.Error(), "openpgp: ")
}

// prepareSignature fetches the signature when it is a URL and parses it
// with the key.
func (f *ArtifactFetcher) prepareSignature(ctx context.Context, name string, src Source) (*sigCheck, error) {
	s := src.Signature
	if s == nil {
		return nil, nil
	}
	if (s.URL == "") == (s.Data == nil) {
		return nil, errors.New("signature: exactly one of its data and its URL is required")
	}
	data := s.Data
	if s.URL != "" {
		u, rem, err := f.resolve(s.URL, src.AllowInsecure)
		if err != nil {
			return nil, fmt.Errorf("signature URL: %w", err)
		}
		body, err := f.getSmallCapped(ctx, name, u, rem, maxSignatureBytes)
		if err != nil {
			return nil, fmt.Errorf("signature: %w", err)
		}
		data = body
	}
	c, err := newSigCheck(s.Kind, s.Key, data)
	if err != nil {
		if s.URL != "" {
			return nil, fmt.Errorf("%s: %w", redact.URL(s.URL), err)
		}
		return nil, err
	}
	return c, nil
}

// verifyFile checks the signature over a cached file.
func (c *sigCheck) verifyFile(p string) (string, error) {
	file, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer file.Close()
	v := c.newVerifier()
	if _, err := io.Copy(v, file); err != nil {
		v.close()
		return "", err
	}
	return v.finish()
}

// The signed index: cacheDir/signed/<id> holds "algo:sum" of the content a
// (key, signature) pair verified, written only after it did. It lets a
// signature-only artifact be found in the cache without a download.
const signedDir = "signed"

func (f *ArtifactFetcher) signedPath(c *sigCheck) string {
	return filepath.Join(f.opts.CacheDir, signedDir, c.id)
}

func (f *ArtifactFetcher) signedLookup(c *sigCheck) (expected, string, bool) {
	b, err := os.ReadFile(f.signedPath(c))
	if err != nil {
		return expected{}, "", false
	}
	first, signer, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	algo, sum, ok := strings.Cut(first, ":")
	if !ok {
		return expected{}, "", false
	}
	e, err := parseDigest(algo, sum)
	if err != nil {
		return expected{}, "", false
	}
	return e, signer, true
}

// signedRecord notes that c verified the content e, and who signed it.
func (f *ArtifactFetcher) signedRecord(c *sigCheck, e expected, signer string) error {
	dir := filepath.Join(f.opts.CacheDir, signedDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("artifact cache: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".tmp-")
	if err != nil {
		return fmt.Errorf("artifact cache: %w", err)
	}
	_, werr := tmp.WriteString(e.algo + ":" + e.sum + "\n" + signer + "\n")
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("artifact cache: %w", err)
	}
	if err := os.Rename(tmp.Name(), f.signedPath(c)); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("artifact cache: %w", err)
	}
	return nil
}
