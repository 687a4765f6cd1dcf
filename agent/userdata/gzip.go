package userdata

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"strings"

	"github.com/ec2init/ec2init/agent/bounded"
)

// isGzip reports whether b starts with the gzip magic bytes.
func isGzip(b []byte) bool { return len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b }

// decompTypes are the content types cloud-init gunzips inside MIME messages.
var decompTypes = map[string]bool{
	"application/gzip":              true,
	"application/gzip-compressed":   true,
	"application/gzipped":           true,
	"application/x-compress":        true,
	"application/x-compressed":      true,
	"application/x-gunzip":          true,
	"application/x-gzip":            true,
	"application/x-gzip-compressed": true,
}

// gunzip decompresses b through agent/bounded, reading at most limit bytes
// of output (and never more than bounded.MaxInMemory, however large the
// configured budget), so a gzip bomb costs that much memory and a clear
// error; maxSize is the configured cap named in that error.
func gunzip(b []byte, limit, maxSize int64) ([]byte, error) {
	named := maxSize
	if limit > bounded.MaxInMemory {
		limit = bounded.MaxInMemory
		named = min(maxSize, bounded.MaxInMemory)
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, gzipErr(err)
	}
	out, err := bounded.ReadAll(zr, limit, "decompressed user data")
	if errors.Is(err, bounded.ErrTooLarge) {
		return nil, fmt.Errorf("gzip: %w", &limitError{what: "decompressed size", limit: named, cause: err})
	}
	if err != nil {
		return nil, gzipErr(err)
	}
	return out, nil
}

// gzipErr prefixes "gzip: " unless compress/gzip already did (ErrHeader, ErrChecksum).
func gzipErr(err error) error {
	if strings.HasPrefix(err.Error(), "gzip: ") {
		return err
	}
	return fmt.Errorf("gzip: %w", err)
}
