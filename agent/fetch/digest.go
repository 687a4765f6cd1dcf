// Digests: what an artifact must hash to, and hashing it.

package fetch

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/url"
	"os"
	"path"
	"strings"
	"time"

	"github.com/ec2init/ec2init/agent/redact"
)

// expected is the digest an artifact must have.
type expected struct {
	algo string
	sum  string
}

func (e expected) newHash() hash.Hash {
	if e.algo == "sha512" {
		return sha512.New()
	}
	return sha256.New()
}

func hexLen(algo string) int {
	switch algo {
	case "sha256":
		return sha256.Size * 2
	case "sha512":
		return sha512.Size * 2
	}
	return 0
}

func parseDigest(algo, s string) (expected, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) != hexLen(algo) {
		return expected{}, fmt.Errorf("%s %q: want %d hex digits, got %d", algo, s, hexLen(algo), len(s))
	}
	if _, err := hex.DecodeString(s); err != nil {
		return expected{}, fmt.Errorf("%s %q: not hex", algo, s)
	}
	return expected{algo: algo, sum: s}, nil
}

func hashFileSum(p string, e expected) (string, error) {
	file, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer file.Close()
	h := e.newHash()
	if _, err := io.Copy(h, file); err != nil {
		return "", fmt.Errorf("hash %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// expectedDigest returns the source's digest: inline, or read from its
// checksum file.
func (f *ArtifactFetcher) expectedDigest(ctx context.Context, name string, src Source, u *url.URL) (expected, error) {
	n := 0
	for _, s := range []string{src.SHA256, src.SHA512, src.ChecksumURL} {
		if s != "" {
			n++
		}
	}
	switch {
	case n == 0 && src.Signature != nil:
		// The signature alone: the digest is the one computed.
		return expected{algo: "sha256"}, nil
	case n != 1:
		return expected{}, errors.New("exactly one of sha256, sha512 and a checksum URL (or a signature) is required")
	}
	switch {
	case src.SHA256 != "":
		return parseDigest("sha256", src.SHA256)
	case src.SHA512 != "":
		return parseDigest("sha512", src.SHA512)
	}
	switch src.ChecksumAlgo {
	case "", "sha256", "sha512":
	default:
		return expected{}, fmt.Errorf("checksum algorithm %q: want sha256 or sha512", src.ChecksumAlgo)
	}
	cu, rem, err := f.resolve(src.ChecksumURL, src.AllowInsecure)
	if err != nil {
		return expected{}, fmt.Errorf("checksum URL: %w", err)
	}
	body, err := f.getSmallCapped(ctx, name, cu, rem, maxChecksumBytes)
	if err != nil {
		return expected{}, fmt.Errorf("checksum file: %w", err)
	}
	e, err := parseChecksumFile(body, src.ChecksumAlgo, path.Base(u.Path))
	if err != nil {
		return expected{}, fmt.Errorf("checksum file %s: %w", redact.URL(cu.String()), err)
	}
	return e, nil
}

// getSmallCapped reads a small object whole (a checksum file, a
// signature, a version manifest), at most max bytes, with retries.
func (f *ArtifactFetcher) getSmallCapped(ctx context.Context, name string, u *url.URL, rem remote, max int64) ([]byte, error) {
	var body []byte
	attempts, err := f.retry.run(ctx, name, u, func(ctx context.Context, cancel context.CancelCauseFunc) (bool, error) {
		// The idle timeout, as for artifacts; a checksum file is small
		// enough for it to bound the whole transfer.
		timer := time.AfterFunc(f.opts.Timeout, func() { cancel(errIdle) })
		defer timer.Stop()
		resp, err := rem.open(ctx, u, 0, validator{})
		if err != nil {
			return false, err
		}
		defer resp.body.Close()
		body, err = readCapped(resp.body, max)
		return false, err
	})
	if err != nil {
		return nil, &Error{URL: redact.URL(u.String()), Attempts: attempts, Err: err}
	}
	return body, nil
}

// hashWriter writes at off into the partial file, into h and into the
// signature's verifier (when there is a signature), so the bytes on disk
// before off, the bytes hashed and the bytes verified are always the same.
type hashWriter struct {
	file *os.File
	h    hash.Hash
	off  int64
	sig  *sigCheck
	v    verifier
}

func (w *hashWriter) Write(p []byte) (int, error) {
	n, err := w.file.WriteAt(p, w.off)
	w.hashes().Write(p[:n])
	w.off += int64(n)
	return n, err
}

// hashes is where written bytes go besides the file: the hash and the
// verifier, started on first use.
func (w *hashWriter) hashes() io.Writer {
	if w.sig == nil {
		return w.h
	}
	if w.v == nil {
		w.v = w.sig.newVerifier()
	}
	return hashAndVerify{w.h, w.v}
}

type hashAndVerify struct {
	h hash.Hash
	v verifier
}

func (hv hashAndVerify) Write(p []byte) (int, error) {
	hv.h.Write(p)
	hv.v.Write(p)
	return len(p), nil
}

// resetHash starts the hash and the verifier over.
func (w *hashWriter) resetHash() {
	w.h.Reset()
	w.closeVerifier()
}

func (w *hashWriter) closeVerifier() {
	if w.v != nil {
		w.v.close()
		w.v = nil
	}
}
