package reliability

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ec2init/ec2init/agent"
	"github.com/ec2init/ec2init/agent/fetch"
	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/imds/imdssim"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/modules/all"
)

const (
	fleetSize = 1000
	// bootingPerCPU caps the instances booting at once, per CPU of the
	// test machine. Real instances each bring their own CPUs, disk and
	// IMDS; here all share the test's few cores, and 1,000 boots at once
	// starve each other of CPU until their production IMDS timeouts (2 s a
	// request) expire, which would measure the test machine, not the
	// agent. All 1,000 are launched at once; each boots as soon as a slot
	// frees, as an Auto Scaling group's launch batches do.
	bootingPerCPU = 25
	// perClientInterval is the artifact server's limit: one request per
	// client per interval, no burst (nginx's limit_req rate=2r/s with
	// limit_req_status 429). Every instance fetches two includes back to
	// back, so the second is refused and must retry.
	perClientInterval = 500 * time.Millisecond
)

// raceEnabled reports a -race build: the detector makes 1,000 boots take
// about three times as long (2m45s against 1 min on two cores), too long for
// every `make test`; `make load` runs this test without it.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" && s.Value == "true" {
			return true
		}
	}
	return false
}

// counter tracks requests in flight and their peak.
type counter struct{ now, peak, total atomic.Int64 }

func (c *counter) enter() {
	c.total.Add(1)
	n := c.now.Add(1)
	for {
		p := c.peak.Load()
		if n <= p || c.peak.CompareAndSwap(p, n) {
			return
		}
	}
}

func (c *counter) leave() { c.now.Add(-1) }

// fleet gives every instance an IMDS of its own, as EC2 does: a
// simulator serving the default tree with the instance's id, on its own
// port (one simulator for all would need a made-up way to tell instances
// apart). It counts requests across all of them.
type fleet struct {
	userData []byte
	requests counter
	// setup, when set, changes each instance's tree (credentials).
	setup func(*imdssim.Server)
}

// serve starts the IMDS of instance id; stop closes it.
func (f *fleet) serve(id string) (url string, stop func(), err error) {
	sim := imdssim.New(imdssim.Options{})
	base, _, _ := sim.Tree().Get("meta-data/instance-id")
	doc, _, _ := sim.Tree().Get("dynamic/instance-identity/document")
	sim.Set("meta-data/instance-id", id)
	sim.Set("dynamic/instance-identity/document", strings.ReplaceAll(doc, base, id))
	sim.SetUserData(f.userData)
	if f.setup != nil {
		f.setup(sim)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.requests.enter()
		defer f.requests.leave()
		sim.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	return "http://" + l.Addr().String(), func() { srv.Close(); sim.Close() }, nil
}

// artifactServer serves the #include targets over TLS and limits each
// client (by source address) to one request per interval, answering 429
// with Retry-After beyond it. It records, for every refused request, how
// long the client waited before asking again.
type artifactServer struct {
	*httptest.Server
	interval time.Duration
	files    map[string]string
	requests counter

	mu      sync.Mutex
	nextOK  map[string]time.Time // client -> when its next request is allowed
	refused map[string]time.Time // client -> its pending refusal
	limited int
	delays  []time.Duration // refusal -> the same client's next request
	retries []time.Time     // when those next requests came
}

func (a *artifactServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.requests.enter()
	defer a.requests.leave()
	client, _, _ := net.SplitHostPort(r.RemoteAddr)
	now := time.Now()
	a.mu.Lock()
	if at, ok := a.refused[client]; ok {
		a.delays = append(a.delays, now.Sub(at))
		a.retries = append(a.retries, now)
		delete(a.refused, client)
	}
	allowed := !now.Before(a.nextOK[client])
	if allowed {
		a.nextOK[client] = now.Add(a.interval)
	} else {
		a.limited++
		a.refused[client] = now
	}
	a.mu.Unlock()
	if !allowed {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "rate limited", http.StatusTooManyRequests)
		return
	}
	body, ok := a.files[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Write([]byte(body))
}

// clientAddr gives instance i a loopback address of its own (Linux routes
// all of 127/8 to lo), so the artifact server tells instances apart the way
// a real one does: by source address.
func clientAddr(i int) net.IP { return net.IPv4(127, 1, byte(i/250), byte(i%250+1)) }

type bootResult struct {
	took time.Duration
	id   string
	err  error
}

// TestThousandInstances launches 1,000 instances at once, each a goroutine
// with its own --root and its own IMDS, all including their script and
// cloud-config from one TLS artifact server that rate-limits every client.
// All must finish with their own identity and the included parts applied;
// retries must spread out rather than come back in lock-step.
func TestThousandInstances(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 boots: not with -short")
	}
	if raceEnabled() {
		t.Skip("too slow under -race (about 3 min): make load runs it without (go test -count=1 -v -run TestThousandInstances ./test/reliability)")
	}

	owner := fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid())
	art := &artifactServer{
		interval: perClientInterval,
		files: map[string]string{
			"/boot.sh": "#!/bin/sh\n:\n",
			"/config.yaml": "#cloud-config\nwrite_files:\n  - {path: /etc/motd, content: \"fleet\\n\", owner: '" + owner + "'}\n" +
				"runcmd:\n  - [sh, -c, 'echo \"$EC2_INSTANCE_ID\" > \"$EC2INIT_ROOT/instance-id\"']\n",
		},
		nextOK:  map[string]time.Time{},
		refused: map[string]time.Time{},
	}
	art.Server = httptest.NewTLSServer(art)
	t.Cleanup(art.Close)
	fleet := &fleet{userData: []byte("#include\n" + art.URL + "/boot.sh\n" + art.URL + "/config.yaml\n")}
	roots := x509.NewCertPool()
	roots.AddCert(art.Certificate())

	parent := memDir(t)
	results := make([]bootResult, fleetSize)
	begin := time.Now()
	var wg sync.WaitGroup
	slots := make(chan struct{}, bootingPerCPU*runtime.GOMAXPROCS(0))
	var booting counter
	for i := range fleetSize {
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			booting.enter()
			defer booting.leave()
			results[i] = bootInstance(i, parent, fleet, roots)
		})
	}
	wg.Wait()
	wall := time.Since(begin)

	var failed []string
	ids := map[string]int{}
	var took []time.Duration
	for i, r := range results {
		switch {
		case r.err != nil:
			failed = append(failed, fmt.Sprintf("instance %d: %v", i, r.err))
		case ids[r.id] > 0:
			failed = append(failed, fmt.Sprintf("instance %d: identity %s served twice", i, r.id))
		}
		ids[r.id]++
		took = append(took, r.took)
	}
	slices.Sort(took)
	pct := func(p float64) time.Duration {
		return took[int(math.Ceil(p*float64(len(took))))-1].Round(time.Millisecond)
	}

	art.mu.Lock()
	delays, retries, limited := art.delays, art.retries, art.limited
	art.mu.Unlock()
	t.Logf("%d instances booted in %v, at most %d at once: boot time p50 %v, p99 %v, max %v",
		fleetSize, wall.Round(time.Millisecond), booting.peak.Load(), pct(0.50), pct(0.99), pct(1))
	t.Logf("IMDS: %d requests, at most %d concurrent; artifact server: %d requests, at most %d concurrent, %d refused (429), %d retried",
		fleet.requests.total.Load(), fleet.requests.peak.Load(), art.requests.total.Load(), art.requests.peak.Load(), limited, len(delays))
	delayBuckets, busiestDelay := buckets(delays, func(d time.Duration) int64 { return int64(d / (10 * time.Millisecond)) })
	arrivalBuckets, busiestArrival := buckets(retries, func(at time.Time) int64 { return at.UnixNano() / int64(10*time.Millisecond) })
	if len(delays) > 0 {
		t.Logf("retries: waits from %v to %v across %d buckets of 10 ms (busiest %d); arrivals across %d buckets (busiest %d)",
			slices.Min(delays).Round(time.Millisecond), slices.Max(delays).Round(time.Millisecond), delayBuckets, busiestDelay, arrivalBuckets, busiestArrival)
	}

	if len(failed) > 0 {
		t.Fatalf("%d of %d instances failed:\n%s", len(failed), fleetSize, byCause(failed))
	}
	// Every instance fetches twice back to back, so most are refused (one
	// starved of CPU for half a second between the two is not), and every
	// refusal must be followed by a retry: no instance gave up.
	if limited < fleetSize/2 || len(delays) != limited {
		t.Errorf("%d refusals, %d retries: want most instances refused, every refusal retried", limited, len(delays))
	}
	// Jittered backoff: the waits after a 429 are spread, not one value,
	// and retries do not arrive together.
	if delayBuckets < 10 || busiestDelay > len(delays)/5 {
		t.Errorf("retry waits in %d buckets of 10 ms, busiest %d of %d: not jittered", delayBuckets, busiestDelay, len(delays))
	}
	if busiestArrival > len(retries)/10 {
		t.Errorf("%d of %d retries arrived in the same 10 ms", busiestArrival, len(retries))
	}
}

// memDir is a temporary directory in memory (/dev/shm) when there is one:
// 1,000 instances have 1,000 disks, and 120,000 fsyncs queued on one
// shared disk would measure that disk, not the agent.
func memDir(t *testing.T) string {
	dir, err := os.MkdirTemp("/dev/shm", "ec2init-load-")
	if err != nil {
		t.Logf("no /dev/shm (%v): roots on the test's temporary directory", err)
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// variable matches what differs between instances in an error.
var variable = regexp.MustCompile(`127\.[0-9.]+:[0-9]+|i-[0-9a-f]{17}|instance [0-9]+`)

// buckets counts the distinct buckets of xs and the size of the largest.
func buckets[T any](xs []T, bucket func(T) int64) (n, busiest int) {
	count := map[int64]int{}
	for _, x := range xs {
		b := bucket(x)
		count[b]++
		busiest = max(busiest, count[b])
	}
	return len(count), busiest
}

// bootInstance is one instance's first boot, checked: its own identity,
// the included script and cloud-config applied.
func bootInstance(i int, parent string, fleet *fleet, roots *x509.CertPool) bootResult {
	root := filepath.Join(parent, fmt.Sprintf("i%04d", i))
	if err := os.Mkdir(root, 0o755); err != nil {
		return bootResult{err: err}
	}
	want := fmt.Sprintf("i-%017x", 0xf1ee7000+i)
	url, stop, err := fleet.serve(want)
	if err != nil {
		return bootResult{err: err}
	}
	defer stop()
	client, err := imds.New(imds.Config{Endpoint: url})
	if err != nil {
		return bootResult{err: err}
	}
	transport := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots},
		DialContext:     (&net.Dialer{LocalAddr: &net.TCPAddr{IP: clientAddr(i)}, Timeout: 10 * time.Second}).DialContext,
	}
	defer transport.CloseIdleConnections()
	fetcher := fetch.New(fetch.Options{Client: &http.Client{Transport: transport}}) // production retry policy
	start := time.Now()
	st, err := agent.Boot(context.Background(), agent.Options{Registry: all.Registry(),
		Root: root, IMDS: client, Fetch: fetcher.Get,
		BootID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i+1),
	})
	res := bootResult{took: time.Since(start), id: st.InstanceID}
	switch {
	case err == nil && st.InstanceID != want:
		res.err = fmt.Errorf("booted as %s, its IMDS says %s", st.InstanceID, want)
	case err != nil:
		res.err = err
	case st.State != state.StateDone:
		res.err = fmt.Errorf("state %s: errors %q, degraded %q", st.State, st.Errors, st.Degraded)
	}
	if res.err != nil {
		return res
	}
	seen, err := os.ReadFile(filepath.Join(root, "instance-id"))
	if err != nil || strings.TrimSpace(string(seen)) != st.InstanceID {
		res.err = fmt.Errorf("runcmd from the included cloud-config saw instance %q (%v), status says %s", seen, err, st.InstanceID)
	}
	if motd, err := os.ReadFile(filepath.Join(root, "etc/motd")); err != nil || string(motd) != "fleet\n" {
		res.err = fmt.Errorf("write_files from the included cloud-config: %q %v", motd, err)
	}
	return res
}

// byCause counts failures by cause, one line each, sorted: the same failure
// on many instances differs only in addresses and ids (variable).
func byCause(failed []string) string {
	causes := map[string]int{}
	for _, f := range failed {
		causes[variable.ReplaceAllString(f, "N")]++
	}
	var lines []string
	for c, n := range causes {
		lines = append(lines, fmt.Sprintf("%5d x %s", n, c))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}
