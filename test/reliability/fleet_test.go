package reliability

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"flag"
	"fmt"
	"go/build"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"aead.dev/minisign"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/ec2init/ec2init/agent"
	"github.com/ec2init/ec2init/agent/fetch"
	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/imds/imdssim"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/internal/testkit"
	"github.com/ec2init/ec2init/modules/all"
	"github.com/ec2init/ec2init/modules/software"
)

const (
	// fleetDefault instances boot, each once (and every rebootEvery-th a
	// second time); EC2INIT_FLEET_SIZE sets another number.
	fleetDefault = 10_000
	rebootEvery  = 100
	// fleetBootingPerCPU bounds the instances booting at once, per CPU
	// (EC2INIT_FLEET_BOOTING sets the total). The boots are CPU-bound on
	// the test machine: more at once would add queueing to every boot
	// time without booting the fleet any sooner.
	fleetBootingPerCPU = 12
	// fleetArtifactMiB is the artifact's size. The issue asks for 64 MiB:
	// 10,000 of them are 640 GiB through loopback TLS, hashed twice
	// (SHA-256 and minisign's BLAKE2b) and written to memory twice, which
	// is hours on this 2-core machine. 1 MiB keeps every step (ranged
	// resumes, the whole-file signature check, the install copy) at
	// 10 GiB, and `make load` under 10 minutes. EC2INIT_FLEET_ARTIFACT_MIB
	// sets the real size on a bigger machine.
	fleetArtifactMiB = 1
	// s3ClientInterval is the origin's per-client limit: one request per
	// client per 100 ms, no burst, beyond which it answers 503 SlowDown as
	// S3 does (no Retry-After). Every instance asks for the signature then
	// the artifact back to back, so its second request is refused.
	s3ClientInterval = 100 * time.Millisecond
	// fleetOutage is how long the origin is gone, once half the fleet has
	// booted: versitygw killed and restarted, the front holding requests.
	fleetOutage = 30 * time.Second

	s3Bucket    = "fleet"
	s3Key       = "app/app-1.4.2.bin"
	s3Region    = "us-east-1" // the simulator's placement/region
	s3AccessKey = "EC2INITFLEETACCESSKEY"
	s3SecretKey = "ec2init/fleet/SECRETxKEYxNOTxREAL01234"
)

// fleetSelected: 10,000 boots take minutes, so the test runs only when
// asked for, by -run naming it or EC2INIT_LOAD=1 (make load).
func fleetSelected() bool {
	if os.Getenv("EC2INIT_LOAD") != "" {
		return true
	}
	f := flag.Lookup("test.run")
	return f != nil && strings.Contains(f.Value.String(), "TestTenThousandInstances")
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// versitygw is a real S3 server (versitygw's posix backend) on loopback
// plain HTTP; the front before it speaks TLS to the instances. stop and
// start are the outage: the process killed, then started again on the same
// port and data.
type versitygw struct {
	bin, addr, dir string
	mu             sync.Mutex
	cmd            *exec.Cmd
	peakKiB        int64 // VmHWM of the processes so far
}

func startVersitygw(t *testing.T) *versitygw {
	t.Helper()
	bin, err := exec.LookPath("versitygw")
	if err != nil {
		bin = filepath.Join(build.Default.GOPATH, "bin", "versitygw")
		if _, err := os.Stat(bin); err != nil {
			t.Skip("versitygw not on PATH or in GOPATH/bin: go install github.com/versity/versitygw/cmd/versitygw@v1.8.0")
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &versitygw{bin: bin, addr: l.Addr().String(), dir: t.TempDir()}
	l.Close()
	if err := g.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.stop)
	return g
}

func (g *versitygw) start() error {
	cmd := exec.Command(g.bin, "--access", s3AccessKey, "--secret", s3SecretKey, "--region", s3Region,
		"--port", g.addr, "--quiet", "posix", g.dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return err
	}
	g.mu.Lock()
	g.cmd = cmd
	g.mu.Unlock()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", g.addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("versitygw did not listen on %s: %s", g.addr, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (g *versitygw) stop() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cmd == nil {
		return
	}
	g.peakKiB = max(g.peakKiB, vmHWM(g.cmd.Process.Pid))
	g.cmd.Process.Kill()
	g.cmd.Wait()
	g.cmd = nil
}

// peak is the largest VmHWM of the processes so far, the running one
// included.
func (g *versitygw) peak() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cmd != nil {
		g.peakKiB = max(g.peakKiB, vmHWM(g.cmd.Process.Pid))
	}
	return g.peakKiB
}

// vmHWM is a process's peak resident memory in KiB ("self" for this one).
func vmHWM(pid any) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%v/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

// meminfo is a /proc/meminfo field in KiB.
func meminfo(field string) int64 {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == field+":" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

func (g *versitygw) put(t *testing.T, key string, body []byte) {
	t.Helper()
	ctx := context.Background()
	admin := s3.New(s3.Options{Region: s3Region, BaseEndpoint: aws.String("http://" + g.addr), UsePathStyle: true,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: s3AccessKey, SecretAccessKey: s3SecretKey}, nil
		})})
	if _, err := admin.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s3Bucket)}); err != nil {
		if _, err := admin.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(s3Bucket)}); err != nil {
			t.Fatalf("create bucket: %v", err)
		}
	}
	if _, err := admin.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(s3Bucket), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

// s3Front is the origin as the fleet sees it: TLS, a per-client rate
// limit (by source address), and the outage switch. While the origin is
// down it holds new requests and stalls the bodies being sent, as a path
// that drops packets does; when the origin comes back, held requests go
// through and stalled bodies (whose versitygw died) end short, for the
// client to resume. It proxies to versitygw keeping the Host the client
// signed (SigV4).
type s3Front struct {
	*httptest.Server
	proxy    *httputil.ReverseProxy
	interval time.Duration

	mu      sync.Mutex
	up      chan struct{} // closed while the origin is up
	nextOK  map[string]time.Time
	byKey   map[string]int // "client key" -> requests for it
	ranged  int            // GETs with a Range (resumes)
	held    int            // requests that arrived while the origin was down
	outages []time.Duration

	// refuse: while down, cut every connection at once (an origin whose
	// server is gone) instead of holding it (a path that drops packets).
	refuse bool
	cut    atomic.Int64

	requests  counter
	throttled atomic.Int64
	bytes     atomic.Int64 // response bodies sent
	proxyErrs atomic.Int64
}

func newS3Front(target string, interval time.Duration) *s3Front {
	u := &url.URL{Scheme: "http", Host: target}
	f := &s3Front{interval: interval, up: make(chan struct{}), nextOK: map[string]time.Time{}, byKey: map[string]int{}}
	close(f.up)
	f.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host
		},
		Transport: &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true, IdleConnTimeout: 30 * time.Second},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			f.proxyErrs.Add(1)
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	f.Server = httptest.NewTLSServer(f)
	return f
}

// wait blocks while the origin is down; it says whether it did.
func (f *s3Front) wait() bool {
	f.mu.Lock()
	up := f.up
	f.mu.Unlock()
	select {
	case <-up:
		return false
	default:
	}
	<-up
	return true
}

func (f *s3Front) isDown() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.up:
		return false
	default:
		return true
	}
}

func (f *s3Front) down() {
	f.mu.Lock()
	f.up = make(chan struct{})
	f.mu.Unlock()
}

func (f *s3Front) upAgain(outage time.Duration) {
	f.mu.Lock()
	close(f.up)
	f.outages = append(f.outages, outage)
	f.mu.Unlock()
}

const slowDown = `<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`

func (f *s3Front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.requests.enter()
	defer f.requests.leave()
	if f.refuse && f.isDown() {
		// The origin's address answers nothing: the connection is cut.
		f.cut.Add(1)
		panic(http.ErrAbortHandler)
	}
	if f.wait() {
		f.mu.Lock()
		f.held++
		f.mu.Unlock()
	}
	client, _, _ := net.SplitHostPort(r.RemoteAddr)
	now := time.Now()
	f.mu.Lock()
	allowed := !now.Before(f.nextOK[client])
	if allowed {
		f.nextOK[client] = now.Add(f.interval)
		f.byKey[client+" "+r.URL.Path]++
		if r.Header.Get("Range") != "" {
			f.ranged++
		}
	}
	f.mu.Unlock()
	if !allowed {
		f.throttled.Add(1)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(slowDown))
		return
	}
	f.proxy.ServeHTTP(&gatedWriter{ResponseWriter: w, f: f}, r)
}

// gatedWriter stalls a response body while the origin is down and counts
// what is sent.
type gatedWriter struct {
	http.ResponseWriter
	f *s3Front
}

func (g *gatedWriter) Write(p []byte) (int, error) {
	if g.f.refuse && g.f.isDown() {
		g.f.cut.Add(1)
		panic(http.ErrAbortHandler)
	}
	g.f.wait()
	n, err := g.ResponseWriter.Write(p)
	g.f.bytes.Add(int64(n))
	return n, err
}

func (g *gatedWriter) Unwrap() http.ResponseWriter { return g.ResponseWriter }

// logCounter counts the agent's log lines that matter here without
// encoding any: retries of artifact fetches and installs.
type logCounter struct {
	retries, installs, fetched atomic.Int64
}

func (c *logCounter) Enabled(l zapcore.Level) bool      { return l >= zapcore.InfoLevel }
func (c *logCounter) With([]zapcore.Field) zapcore.Core { return c }
func (c *logCounter) Sync() error                       { return nil }
func (c *logCounter) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	switch e.Message {
	case "artifact fetch will retry", "software: installed", "software: fetched":
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *logCounter) Write(e zapcore.Entry, _ []zapcore.Field) error {
	switch e.Message {
	case "artifact fetch will retry":
		c.retries.Add(1)
	case "software: installed":
		c.installs.Add(1)
	case "software: fetched":
		c.fetched.Add(1)
	}
	return nil
}

type fleetResult struct {
	took    time.Duration
	end     time.Time
	err     error
	retries int64
	// reboot: the second boot of a sample instance, nothing fetched or
	// installed again.
	rebooted bool
}

// fleetBoot is one instance: first boot, checked (done, its identity, the
// item installed once, its bytes' SHA-256 the published one, the signer
// recorded), for a sample a second boot that installs nothing, then its
// root is removed (10,000 roots would not fit in memory).
type fleetBoot struct {
	parent   string
	fleet    *fleet
	roots    *x509.CertPool
	front    *s3Front
	sum      string
	signerID string
}

func (b *fleetBoot) run(i int) fleetResult {
	root := filepath.Join(b.parent, fmt.Sprintf("i%05d", i))
	if err := os.Mkdir(root, 0o755); err != nil {
		return fleetResult{err: err}
	}
	defer os.RemoveAll(root)
	want := fmt.Sprintf("i-%017x", 0xf1ee70000+i)
	url, stop, err := b.fleet.serve(want)
	if err != nil {
		return fleetResult{err: err}
	}
	defer stop()
	client, err := imds.New(imds.Config{Endpoint: url})
	if err != nil {
		return fleetResult{err: err}
	}
	transport := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: b.roots},
		DialContext:       (&net.Dialer{LocalAddr: &net.TCPAddr{IP: clientAddr(i)}, Timeout: 10 * time.Second}).DialContext,
		ForceAttemptHTTP2: true,
	}
	defer transport.CloseIdleConnections()
	fetcher := fetch.New(fetch.Options{Client: &http.Client{Transport: transport}})
	logs := &logCounter{}
	boot := func(n int) (state.Status, error) {
		return agent.Boot(context.Background(), agent.Options{Registry: all.Registry(),
			Root: root, IMDS: client, Fetch: fetcher.Get, Fetcher: fetcher, Log: zap.New(logs),
			BootID: fmt.Sprintf("00000000-0000-4000-%04d-%012d", n, i+1),
		})
	}
	start := time.Now()
	st, err := boot(1)
	res := fleetResult{took: time.Since(start), end: time.Now()}
	res.retries = logs.retries.Load()
	switch {
	case err != nil:
		res.err = err
	case st.InstanceID != want:
		res.err = fmt.Errorf("booted as %s, its IMDS says %s", st.InstanceID, want)
	case st.State != state.StateDone:
		res.err = fmt.Errorf("state %s: errors %q, degraded %q", st.State, st.Errors, st.Degraded)
	}
	if res.err == nil {
		res.err = b.check(root, want, logs)
	}
	if res.err != nil || i%rebootEvery != 0 {
		return res
	}
	st, err = boot(2)
	switch {
	case err != nil || st.State != state.StateDone:
		res.err = fmt.Errorf("reboot: %v (state %s, errors %q)", err, st.State, st.Errors)
	case logs.installs.Load() != 1 || logs.fetched.Load() != 1:
		res.err = fmt.Errorf("reboot: %d installs, %d fetches in all, want 1 of each", logs.installs.Load(), logs.fetched.Load())
	default:
		r, err := software.ReadResults(mustNewRoot(root), want)
		if err != nil || len(r) != 1 || r[0].Action != software.ActionSkipped {
			res.err = fmt.Errorf("reboot: software results %+v %v, want the item skipped", r, err)
		}
		res.rebooted = true
	}
	return res
}

// check: the item installed exactly once, its file's bytes hash to the
// published digest, the record names the signer.
func (b *fleetBoot) check(root, id string, logs *logCounter) error {
	if n := logs.installs.Load(); n != 1 {
		return fmt.Errorf("installed %d times", n)
	}
	r, err := software.ReadResults(mustNewRoot(root), id)
	if err != nil || len(r) != 1 {
		return fmt.Errorf("software results: %+v %v", r, err)
	}
	if it := r[0]; it.Action != software.ActionInstalled || it.Checksum != "sha256:"+b.sum || !strings.Contains(it.Signer, b.signerID) {
		return fmt.Errorf("software result %+v", it)
	}
	data, err := os.ReadFile(filepath.Join(root, "opt/app/app.bin"))
	if err != nil {
		return err
	}
	if s := sha256.Sum256(data); hex.EncodeToString(s[:]) != b.sum {
		return fmt.Errorf("installed file: sha256 %x, want %s", s, b.sum)
	}
	return nil
}

func mustNewRoot(dir string) *sys.Root {
	r, err := sys.NewRoot(dir)
	if err != nil {
		panic(err)
	}
	return r
}

// TestTenThousandInstances: 10,000 instances (goroutines, each with its
// own root and IMDS, at most fleetBootingPerCPU per CPU booting at once,
// more launched while the origin is down) fetch
// one signed, checksummed artifact from one real S3 server (versitygw)
// behind a per-client rate limit, which goes away for 30 s once half the
// fleet has booted. Every instance must finish done, with the artifact
// installed once and verified; a sample boots again and installs nothing.
// It prints the boot times, what the origin served, the retries, and the
// peak memory.
func TestTenThousandInstances(t *testing.T) {
	if !fleetSelected() {
		t.Skip("10,000 boots take minutes: make load (EC2INIT_LOAD=1), or -run TestTenThousandInstances")
	}
	if testing.Short() {
		t.Skip("not with -short")
	}
	if raceEnabled() {
		t.Skip("too slow under -race: make load runs it without")
	}
	size := envInt("EC2INIT_FLEET_SIZE", fleetDefault)
	mib := envInt("EC2INIT_FLEET_ARTIFACT_MIB", fleetArtifactMiB)
	var lim syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) // Go raised the soft limit to the hard one at start

	gw := startVersitygw(t)
	body := make([]byte, mib<<20)
	for i := range body {
		body[i] = byte(i*7 + i>>13)
	}
	s := sha256.Sum256(body)
	sum := hex.EncodeToString(s[:])
	key := testkit.NewMinisignKey(t)
	gw.put(t, s3Key, body)
	gw.put(t, s3Key+".minisig", key.Sign(t, body))
	pub := key.Line(t)
	front := newS3Front(gw.addr, s3ClientInterval)
	// EC2INIT_FLEET_OUTAGE=refuse cuts connections during the outage
	// instead of holding them: a measurement of the retry budget, which
	// (5 attempts, about 2 s of backoff) does not span 30 s, so instances
	// fetching then fail. Not what make load runs.
	front.refuse = os.Getenv("EC2INIT_FLEET_OUTAGE") == "refuse"
	t.Cleanup(front.Close)
	roots := x509.NewCertPool()
	roots.AddCert(front.Certificate())

	cred := fmt.Sprintf(`{"Code": "Success", "LastUpdated": "2026-11-28T09:00:00Z", "Type": "AWS-HMAC", "AccessKeyId": %q, "SecretAccessKey": %q, "Token": "", "Expiration": "2099-01-01T00:00:00Z"}`,
		s3AccessKey, s3SecretKey)
	userData := `#cloud-config
software:
  s3: {endpoint: "` + front.URL + `", path_style: true}
  items:
    - name: app
      source: s3://` + s3Bucket + "/" + s3Key + `
      sha256: ` + sum + `
      signature_url: s3://` + s3Bucket + "/" + s3Key + `.minisig
      public_key: ` + pub + `
      install: {type: file, dest: /opt/app/app.bin, mode: '0755'}
`
	fl := &fleet{userData: []byte(userData), setup: func(sim *imdssim.Server) {
		sim.Set("meta-data/iam/security-credentials/web-server-role", cred)
	}}
	b := &fleetBoot{parent: memDir(t), fleet: fl, roots: roots, front: front, sum: sum,
		signerID: "minisign key " + pubKeyID(t, pub)}

	workers := envInt("EC2INIT_FLEET_BOOTING", fleetBootingPerCPU*runtime.GOMAXPROCS(0))
	// While the origin is down, instances keep launching at the rate the
	// fleet booted until then (an Auto Scaling group does not wait for the
	// origin), up to maxWaiting more than workers: they boot up to the
	// fetch and wait there, and all reach the origin when it is back.
	// Each waiting instance holds about 37 descriptors (its IMDS and the
	// client's kept-alive connections to it, both ends, the S3 connection,
	// files), 55 goroutines and 4 MiB: at most 250, fewer under a low
	// RLIMIT_NOFILE.
	maxWaiting := max(0, min(250, (int(lim.Cur)-1000)/48))
	// The agents' garbage is short-lived and the heap small (every root is
	// removed after its checks): collecting less often leaves more of the
	// two cores to the boots.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	t.Logf("%d instances, %d booting at once (up to %d more launched while the origin is down), artifact %d MiB (the issue's 64 MiB scaled down: see fleetArtifactMiB), "+
		"origin limit 1 request per %v per client, %v outage at half the fleet; RLIMIT_NOFILE %d/%d",
		size, workers, maxWaiting, mib, s3ClientInterval, fleetOutage, lim.Cur, lim.Max)

	results := make([]fleetResult, size)
	var done atomic.Int64
	adm := newAdmission(workers)
	var outageAt, outageEnd time.Time
	var launchedInOutage atomic.Int64
	outage := make(chan struct{})
	begin := time.Now()
	go func() {
		// Half-way: versitygw killed, restarted after the outage.
		for done.Load() < int64(size/2) {
			time.Sleep(20 * time.Millisecond)
		}
		outageAt = time.Now()
		rate := float64(done.Load()) / outageAt.Sub(begin).Seconds()
		front.down()
		gw.stop()
		grow := time.NewTicker(time.Duration(float64(time.Second) / max(rate, 1)))
		for end := time.After(fleetOutage); ; {
			select {
			case <-grow.C:
				adm.setLimit(min(adm.limitNow()+1, workers+maxWaiting))
				continue
			case <-end:
			}
			break
		}
		grow.Stop()
		if err := gw.start(); err != nil {
			t.Error(err)
		}
		outageEnd = time.Now()
		adm.setLimit(workers)
		front.upAgain(outageEnd.Sub(outageAt))
		close(outage)
	}()
	// Goroutines and descriptors, sampled.
	var peakG, peakFD atomic.Int64
	memTotal := meminfo("MemTotal")
	var lowestAvail atomic.Int64
	lowestAvail.Store(meminfo("MemAvailable"))
	sampleDone := make(chan struct{})
	go func() {
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			peakG.Store(max(peakG.Load(), int64(runtime.NumGoroutine())))
			if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
				peakFD.Store(max(peakFD.Load(), int64(len(fds))))
			}
			if a := meminfo("MemAvailable"); a > 0 {
				lowestAvail.Store(min(lowestAvail.Load(), a))
			}
			select {
			case <-tick.C:
			case <-sampleDone:
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for i := range size {
		adm.acquire()
		if front.isDown() {
			launchedInOutage.Add(1)
		}
		wg.Go(func() {
			defer adm.release()
			results[i] = b.run(i)
			done.Add(1)
		})
	}
	wg.Wait()
	wall := time.Since(begin)
	close(sampleDone)
	select {
	case <-outage:
	case <-time.After(2 * fleetOutage):
		t.Fatal("the outage never ended")
	}

	var failed []string
	var took, tookOutage []time.Duration
	var retries int64
	rebooted := 0
	for i, r := range results {
		if r.err != nil {
			failed = append(failed, fmt.Sprintf("instance %d: %v", i, r.err))
			continue
		}
		took = append(took, r.took)
		if r.end.After(outageAt) && r.end.Add(-r.took).Before(outageEnd) {
			tookOutage = append(tookOutage, r.took)
		}
		retries += r.retries
		if r.rebooted {
			rebooted++
		}
	}
	front.mu.Lock()
	refetched, maxPerKey := 0, 0
	for k, n := range front.byKey {
		if strings.HasSuffix(k, "/"+s3Key) {
			refetched += n - 1
			maxPerKey = max(maxPerKey, n)
		}
	}
	ranged, held := front.ranged, front.held
	front.mu.Unlock()
	pct := func(d []time.Duration, p float64) time.Duration {
		if len(d) == 0 {
			return 0
		}
		slices.Sort(d)
		return d[int(math.Ceil(p*float64(len(d))))-1].Round(time.Millisecond)
	}
	served := front.bytes.Load()
	t.Logf("%d instances booted in %v: boot time p50 %v, p99 %v, max %v; %d booting during the %v outage (%d of them launched in it): p50 %v, max %v",
		len(took), wall.Round(time.Second), pct(took, .5), pct(took, .99), pct(took, 1),
		len(tookOutage), outageEnd.Sub(outageAt).Round(time.Millisecond), launchedInOutage.Load(), pct(tookOutage, .5), pct(tookOutage, 1))
	t.Logf("origin: %d requests (at most %d at once), %.2f GiB served (%.2f x the fleet's %d MiB artifacts), "+
		"%d refused by the per-client limit (503 SlowDown), %d held by the outage, %d artifact GETs beyond one per instance (%d ranged resumes), %d proxy errors",
		front.requests.total.Load(), front.requests.peak.Load(), float64(served)/(1<<30), float64(served)/float64(int64(size)*int64(len(body))), size*mib,
		front.throttled.Load(), held, refetched, ranged, front.proxyErrs.Load())
	if front.refuse {
		t.Logf("outage by refusal: %d connections cut", front.cut.Load())
	}
	t.Logf("retries (the agents' \"artifact fetch will retry\"): %d in all, %.2f per instance; %d instances rebooted installing nothing",
		retries, float64(retries)/float64(max(len(took), 1)), rebooted)
	t.Logf("peak memory: test process (agents, IMDS simulators, front) VmHWM %d MiB, versitygw %d MiB, the machine %d of %d MiB in use "+
		"(the instances' roots on tmpfs and every other process included); at most %d goroutines, %d open files",
		vmHWM("self")>>10, gw.peak()>>10, (memTotal-lowestAvail.Load())>>10, memTotal>>10, peakG.Load(), peakFD.Load())

	if len(failed) > 0 {
		t.Fatalf("%d of %d instances failed:\n%s", len(failed), size, byCause(failed))
	}
	// An instance asks for the signature then the artifact back to back:
	// the limit refuses the second unless the instance was starved of CPU
	// in between. Every refusal must have been retried (the boot is done).
	if n := front.throttled.Load(); n < int64(size/20) || retries < n {
		t.Errorf("%d refusals, %d retries: want many instances refused, each refusal retried", n, retries)
	}
	if want := size / rebootEvery; rebooted < want {
		t.Errorf("%d rebooted, want %d", rebooted, want)
	}
}

// admission bounds the instances booting at once; the limit may change
// while they boot (the outage raises it).
type admission struct {
	mu            sync.Mutex
	cond          *sync.Cond
	active, limit int
}

func newAdmission(limit int) *admission {
	a := &admission{limit: limit}
	a.cond = sync.NewCond(&a.mu)
	return a
}

func (a *admission) acquire() {
	a.mu.Lock()
	for a.active >= a.limit {
		a.cond.Wait()
	}
	a.active++
	a.mu.Unlock()
}

func (a *admission) release() {
	a.mu.Lock()
	a.active--
	a.mu.Unlock()
	a.cond.Broadcast()
}

func (a *admission) limitNow() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.limit
}

func (a *admission) setLimit(n int) {
	a.mu.Lock()
	a.limit = n
	a.mu.Unlock()
	a.cond.Broadcast()
}

// pubKeyID is the key ID of a minisign public key line, as the signer is
// recorded.
func pubKeyID(t *testing.T, line string) string {
	t.Helper()
	var pk minisign.PublicKey
	if err := pk.UnmarshalText([]byte(line)); err != nil {
		t.Fatalf("public key %q: %v", line, err)
	}
	return fmt.Sprintf("%016X", pk.ID())
}
