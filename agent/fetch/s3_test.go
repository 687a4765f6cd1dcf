package fetch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/build"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/imds/imdssim"
)

const (
	s3AccessKey = "EC2INITTESTACCESSKEY"
	s3SecretKey = "ec2init/test/SECRETxKEYxNOTxREAL0123456"
	s3Region    = "eu-west-3"
)

// versitygw runs a real S3 server (versitygw's posix backend) on loopback
// HTTPS for the test, with its root user's keys as the instance role's.
type versitygw struct {
	endpoint string
	ca       testCA
	admin    *s3.Client // static credentials, to set up buckets and objects
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
	ca := newTestCA(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	cmd := exec.Command(bin, "--access", s3AccessKey, "--secret", s3SecretKey, "--region", s3Region,
		"--port", addr, "--cert", ca.certPath, "--key", ca.keyPath, "--quiet",
		"posix", filepath.Join(dir))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("versitygw did not listen on %s: %s", addr, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	tlsConf, err := tlsConfig(ca.pemPath)
	if err != nil {
		t.Fatal(err)
	}
	admin := s3.New(s3.Options{
		Region:       s3Region,
		BaseEndpoint: aws.String("https://" + addr),
		UsePathStyle: true,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: s3AccessKey, SecretAccessKey: s3SecretKey}, nil
		}),
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf}},
	})
	return &versitygw{endpoint: "https://" + addr, ca: ca, admin: admin}
}

func (g *versitygw) put(t *testing.T, bucket, key string, body []byte) {
	t.Helper()
	ctx := context.Background()
	if _, err := g.admin.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)}); err != nil {
		if _, err := g.admin.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
			t.Fatalf("create bucket %s: %v", bucket, err)
		}
	}
	if _, err := g.admin.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
		t.Fatalf("put s3://%s/%s: %v", bucket, key, err)
	}
}

// roleIMDS serves the instance role's credentials and the region, as EC2
// does for an instance with an instance profile.
func roleIMDS(t *testing.T, role string) (*imdssim.Server, *imds.Client) {
	t.Helper()
	sim, url := imdssim.Start(t, imdssim.Options{Tree: &imdssim.Tree{}})
	sim.Set("meta-data/placement/region", s3Region)
	if role != "" {
		sim.Set("meta-data/iam/security-credentials/"+role, fmt.Sprintf(`{
  "Code" : "Success",
  "LastUpdated" : "2026-11-28T09:00:00Z",
  "Type" : "AWS-HMAC",
  "AccessKeyId" : %q,
  "SecretAccessKey" : %q,
  "Token" : "",
  "Expiration" : %q
}`, s3AccessKey, s3SecretKey, time.Now().Add(6*time.Hour).UTC().Format(time.RFC3339)))
	}
	client, err := imds.New(imds.Config{Endpoint: url, MaxAttempts: 2, BaseBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return sim, client
}

func TestS3(t *testing.T) {
	gw := startVersitygw(t)
	body := payload(3<<20 + 17)
	sum := sha256Hex(body)
	gw.put(t, "artifacts", "app/app-1.2.3.rpm", body)
	gw.put(t, "artifacts", "app/app-latest.rpm.sha256", []byte(sum+"  app-1.2.3.rpm\n"))
	sim, client := roleIMDS(t, "test-role")

	tests := []struct {
		name    string
		src     Source
		env     map[string]string // instead of S3Endpoint
		noRole  bool
		seed    int // bytes of the object already in the partial file
		wantErr []string
		wantIs  error
	}{
		{name: "object", src: Source{URL: "s3://artifacts/app/app-1.2.3.rpm", SHA256: sum}},
		{name: "checksum file in S3", src: Source{URL: "s3://artifacts/app/app-1.2.3.rpm", ChecksumURL: "s3://artifacts/app/app-latest.rpm.sha256"}},
		{name: "endpoint from AWS_ENDPOINT_URL_S3", src: Source{URL: "s3://artifacts/app/app-1.2.3.rpm", SHA256: sum},
			env: map[string]string{S3EndpointEnv: gw.endpoint}},
		{name: "resumed with a ranged GET", src: Source{URL: "s3://artifacts/app/app-1.2.3.rpm", SHA256: sum}, seed: 1<<20 + 3},
		{name: "missing key", src: Source{URL: "s3://artifacts/app/app-9.9.9.rpm", SHA256: sum},
			wantIs: ErrNotFound, wantErr: []string{`bucket "artifacts"`, `key "app/app-9.9.9.rpm"`, "not found (NoSuchKey)", "after 1 attempts"}},
		{name: "missing bucket", src: Source{URL: "s3://no-such-bucket/app.rpm", SHA256: sum},
			wantIs: ErrNotFound, wantErr: []string{`bucket "no-such-bucket"`, `key "app.rpm"`, "not found (NoSuchBucket)"}},
		{name: "wrong checksum", src: Source{URL: "s3://artifacts/app/app-1.2.3.rpm", SHA256: sha256Hex(nil)}, wantIs: ErrChecksum},
		{name: "no instance role", src: Source{URL: "s3://artifacts/app/app-1.2.3.rpm", SHA256: sum}, noRole: true,
			wantErr: []string{"no IAM role", "after 1 attempts"}},
		{name: "http endpoint needs allow_insecure", src: Source{URL: "s3://artifacts/app/app-1.2.3.rpm", SHA256: sum},
			env: map[string]string{S3EndpointEnv: strings.Replace(gw.endpoint, "https", "http", 1)}, wantErr: []string{"http:// needs allow_insecure"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			imdsClient := client
			if tt.noRole {
				_, imdsClient = roleIMDS(t, "")
			}
			log, logs := observed()
			opts := ArtifactOptions{
				CAFile: gw.ca.pemPath, S3PathStyle: true, IMDS: imdsClient, Log: log,
				S3Endpoint: gw.endpoint, Env: func(k string) string { return tt.env[k] },
			}
			if tt.env != nil {
				opts.S3Endpoint = ""
			}
			f := newTestFetcher(t, opts)
			if tt.seed > 0 {
				e, _ := parseDigest("sha256", tt.src.SHA256)
				p := filepath.Join(f.opts.CacheDir, partialDir, partialKey(tt.src.URL, e))
				if err := os.WriteFile(p, body[:tt.seed], 0o600); err != nil {
					t.Fatal(err)
				}
			}
			sim.ResetStats()
			a, err := f.Fetch(context.Background(), tt.name, tt.src)
			for _, entry := range logs.All() {
				line := fmt.Sprint(entry.Message, entry.ContextMap())
				if strings.Contains(line, s3SecretKey) || strings.Contains(line, s3AccessKey) {
					t.Errorf("log leaks the role's credentials: %s", line)
				}
			}
			if err != nil && (strings.Contains(err.Error(), s3SecretKey) || strings.Contains(err.Error(), s3AccessKey)) {
				t.Errorf("error leaks the role's credentials: %v", err)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("err %v, want %v", err, tt.wantIs)
			}
			for _, want := range tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("err %v, want it to say %q", err, want)
				}
			}
			if tt.wantIs != nil || tt.wantErr != nil {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(a.Path); !bytes.Equal(got, body) {
				t.Fatal("cached object differs")
			}
			if n := sim.Stats().ByPath["meta-data/iam/security-credentials/test-role"]; n != 1 {
				t.Errorf("role credentials read %d times, want once (then cached)", n)
			}
			if tt.seed > 0 {
				fetched := logs.FilterMessage("artifact fetched").All()
				if len(fetched) != 1 || fetched[0].ContextMap()["downloaded"] != int64(len(body)-tt.seed) {
					t.Errorf("fetched log %v, want %d bytes downloaded after the resume", fetched, len(body)-tt.seed)
				}
			}
		})
	}
}
