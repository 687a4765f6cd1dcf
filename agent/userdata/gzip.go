package userdata

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"strings"
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

// gunzip decompresses b, reading at most limit bytes of output so a gzip bomb
// costs limit bytes of memory and a clear error; maxSize is the configured cap
// named in that error.
func gunzip(b []byte, limit, maxSize int64) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, gzipErr(err)
	}
	out, err := io.ReadAll(io.LimitReader(zr, limit+1))
	if err != nil {
		return nil, gzipErr(err)
	}
	if int64(len(out)) > limit {
		return nil, fmt.Errorf("gzip: %w", &limitError{what: "decompressed size", limit: maxSize})
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
