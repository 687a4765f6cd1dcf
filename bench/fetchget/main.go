// Command fetchget fetches one artifact with ec2init's fetcher into an
// empty cache and prints the throughput in bytes per second, for
// bench/fetch-vs-curl.sh.
//
// Usage: fetchget -url URL -sha256 HEX -ca CA.pem -cache DIR
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"runtime/pprof"
	"time"

	"github.com/ec2init/ec2init/agent/fetch"
)

func main() {
	url := flag.String("url", "", "artifact URL")
	sum := flag.String("sha256", "", "expected SHA-256 (hex)")
	ca := flag.String("ca", "", "CA file (PEM)")
	cache := flag.String("cache", "", "cache directory (must not hold the artifact)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the fetch here")
	flag.Parse()
	if *cpuProfile != "" {
		pf, err := os.Create(*cpuProfile)
		if err != nil {
			log.Fatalf("fetchget: %v", err)
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			log.Fatalf("fetchget: %v", err)
		}
		defer pprof.StopCPUProfile()
	}
	f, err := fetch.NewArtifactFetcher(fetch.ArtifactOptions{CacheDir: *cache, CAFile: *ca})
	if err != nil {
		log.Fatalf("fetchget: %v", err)
	}
	start := time.Now()
	a, err := f.Fetch(context.Background(), "bench", fetch.Source{URL: *url, SHA256: *sum})
	if err != nil {
		log.Fatalf("fetchget: %v", err)
	}
	elapsed := time.Since(start)
	if a.Cached {
		log.Fatal("fetchget: the artifact was already cached; nothing measured")
	}
	fmt.Printf("%.0f\n", float64(a.Size)/elapsed.Seconds())
}
