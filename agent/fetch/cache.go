// The content-addressed cache: where a verified artifact lives, finding
// it, and committing a verified download into it.

package fetch

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/ec2init/ec2init/agent/redact"
)

// cachePath is where a verified artifact with digest e lives.
func (f *ArtifactFetcher) cachePath(e expected) string {
	return filepath.Join(f.opts.CacheDir, e.algo, e.sum)
}

// lookup returns the cached artifact for e, if present.
func (f *ArtifactFetcher) lookup(e expected) (Artifact, bool, error) {
	p := f.cachePath(e)
	fi, err := os.Lstat(p)
	if errors.Is(err, os.ErrNotExist) {
		return Artifact{}, false, nil
	}
	if err != nil {
		return Artifact{}, false, fmt.Errorf("artifact cache: %w", err)
	}
	if !fi.Mode().IsRegular() {
		// Only this code writes the cache; anything else there is foreign.
		return Artifact{}, false, fmt.Errorf("artifact cache: %s is not a regular file", p)
	}
	if f.opts.VerifyCache {
		sum, err := hashFileSum(p, e)
		if err != nil {
			return Artifact{}, false, fmt.Errorf("artifact cache: %w", err)
		}
		if sum != e.sum {
			f.opts.Log.Warn("corrupt artifact cache entry removed", zap.String("path", p), zap.String("actual", sum))
			if err := os.Remove(p); err != nil {
				return Artifact{}, false, fmt.Errorf("artifact cache: %w", err)
			}
			return Artifact{}, false, nil
		}
	}
	return Artifact{Path: p, Algo: e.algo, Sum: e.sum, Size: fi.Size(), Cached: true}, true, nil
}

// partialKey names a partial download by what it is (the source) and what
// it must become (the digest), so a changed checksum never resumes bytes of
// another version.
func partialKey(rawURL string, e expected) string {
	h := sha256.Sum256([]byte(rawURL + "\x00" + e.algo + ":" + e.sum))
	return hex.EncodeToString(h[:])
}

// commit moves the verified partial file into the cache, read-only, by
// rename after fsync, so the cache only ever holds complete verified files.
func (d *download) commit() (Artifact, error) {
	dst := d.f.cachePath(d.want)
	if err := d.file.Chmod(0o400); err != nil {
		return Artifact{}, fmt.Errorf("partial file: %w", err)
	}
	if err := d.file.Sync(); err != nil {
		return Artifact{}, fmt.Errorf("partial file: %w", err)
	}
	if err := d.file.Close(); err != nil {
		return Artifact{}, fmt.Errorf("partial file: %w", err)
	}
	d.file = nil
	dir := filepath.Dir(dst)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Artifact{}, fmt.Errorf("artifact cache: %w", err)
	}
	if err := os.Rename(d.partial, dst); err != nil {
		return Artifact{}, fmt.Errorf("artifact cache: %w", err)
	}
	_ = os.Remove(d.metaPath())
	if err := syncDir(dir); err != nil {
		return Artifact{}, err
	}
	elapsed := time.Since(d.start)
	d.f.opts.Log.Info("artifact fetched",
		zap.String("name", d.name), zap.String("url", redact.URL(d.url.String())),
		zap.String(d.want.algo, d.want.sum), zap.Int64("bytes", d.w.off),
		zap.Int64("downloaded", d.fresh), zap.Int64("resumed_at", d.resumedAt),
		zap.Duration("elapsed", elapsed), zap.Float64("mib_per_s", mibPerSec(d.fresh, elapsed)))
	return Artifact{Path: dst, Algo: d.want.algo, Sum: d.want.sum, Size: d.w.off}, nil
}

func syncDir(dir string) error {
	df, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("artifact cache: %w", err)
	}
	defer df.Close()
	if err := df.Sync(); err != nil {
		return fmt.Errorf("artifact cache: sync %s: %w", dir, err)
	}
	return nil
}
