package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkArtifactFetch256MiB fetches and verifies a 256 MiB file from a
// loopback HTTPS server (a private CA, as a VPC origin) into a fresh cache
// each iteration: TLS, the hash computed while writing, fsync and rename.
// bench/fetch-vs-curl.sh sets it against curl on the same kind of server.
func BenchmarkArtifactFetch256MiB(b *testing.B) {
	const size = 256 << 20
	dir := b.TempDir()
	src := filepath.Join(dir, "artifact.bin")
	file, err := os.Create(src)
	if err != nil {
		b.Fatal(err)
	}
	h := sha256.New()
	chunk := payload(1 << 20)
	for i := 0; i < size/len(chunk); i++ {
		chunk[0] = byte(i) // no two MiB alike
		if _, err := io.MultiWriter(file, h).Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	if err := file.Close(); err != nil {
		b.Fatal(err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	ca := newTestCA(b)
	srv := ca.serveTLS(b, http.FileServer(http.Dir(dir)))
	f := newTestFetcher(b, ArtifactOptions{CAFile: ca.pemPath, CacheDir: filepath.Join(dir, "cache")})
	srcSpec := Source{URL: srv.URL + "/artifact.bin", SHA256: sum}
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		a, err := f.Fetch(context.Background(), "bench", srcSpec)
		if err != nil {
			b.Fatal(err)
		}
		if a.Cached || a.Size != size {
			b.Fatalf("artifact %+v", a)
		}
		b.StopTimer()
		if err := os.Remove(a.Path); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
