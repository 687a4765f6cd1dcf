package imds_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/imds/imdssim"
)

func TestCrawl(t *testing.T) {
	sim, c := start(t, imdssim.Options{Latency: 2 * time.Millisecond})
	tree, err := c.Crawl(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	entries := tree.Entries()
	if len(entries) < 50 {
		t.Fatalf("only %d entries crawled", len(entries))
	}
	for i := 1; i < len(entries); i++ {
		if entries[i-1].Path >= entries[i].Path {
			t.Fatalf("entries not sorted at %q, %q", entries[i-1].Path, entries[i].Path)
		}
	}
	if v, _ := tree.Value("meta-data/instance-id"); v != "i-0123456789abcdef0" {
		t.Errorf("instance-id = %q", v)
	}
	if _, ok := tree.Value("dynamic/instance-identity/document"); !ok {
		t.Error("identity document missing")
	}
	// Credentials are listed, never fetched.
	redacted := 0
	for _, e := range entries {
		if strings.Contains(e.Value, "SecretAccessKey") || strings.Contains(e.Value, "\"Token\"") {
			t.Errorf("%s: credentials fetched", e.Path)
		}
		if e.Redacted {
			redacted++
		}
	}
	if redacted == 0 {
		t.Error("no redacted credential entries")
	}
	if mc := sim.Stats().MaxConcurrent; mc < 4 {
		t.Errorf("peak concurrency %d: the crawl is not parallel", mc)
	}

	// A second crawl gives the same tree.
	again, err := c.Crawl(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again.Entries(), entries) {
		t.Error("two crawls of the same tree differ")
	}
}

func TestCrawlBoundedConcurrency(t *testing.T) {
	sim, url := imdssim.Start(t, imdssim.Options{Latency: 2 * time.Millisecond})
	cfg := fast(url)
	cfg.Concurrency = 3
	c, err := imds.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Crawl(context.Background()); err != nil {
		t.Fatal(err)
	}
	if mc := sim.Stats().MaxConcurrent; mc > 3 {
		t.Errorf("peak concurrency %d, limit 3", mc)
	}
}

func TestCrawlSurvivesFaults(t *testing.T) {
	sim, c := start(t, imdssim.Options{})
	sim.FailNext(3, 503)
	if _, err := c.Crawl(context.Background()); err != nil {
		t.Fatalf("crawl with transient 503s: %v", err)
	}
	sim.ExpireTokens()
	if _, err := c.Crawl(context.Background()); err != nil {
		t.Fatalf("crawl across a token expiry: %v", err)
	}
}

func TestCrawlFailsClearly(t *testing.T) {
	sim, c := start(t, imdssim.Options{})
	sim.FailNext(1000, 500)
	_, err := c.Crawl(context.Background())
	if err == nil || !strings.Contains(err.Error(), "HTTP 500") {
		t.Fatalf("err = %v, want HTTP 500", err)
	}
}

// BenchmarkCrawl compares the parallel crawl with a sequential one against
// a simulator adding 1 ms to every request, roughly a real IMDS round trip.
func BenchmarkCrawl(b *testing.B) {
	for _, bc := range []struct {
		name        string
		concurrency int
	}{{"sequential", 1}, {"parallel", 16}} {
		b.Run(bc.name, func(b *testing.B) {
			_, url := imdssim.Start(b, imdssim.Options{Latency: time.Millisecond})
			cfg := fast(url)
			cfg.Concurrency = bc.concurrency
			c, err := imds.New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.Crawl(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
