package fetch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
	"go.uber.org/zap"

	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/redact"
)

// S3EndpointEnv is the environment variable the AWS SDKs and CLI read for
// an S3 endpoint; it applies when ArtifactOptions.S3Endpoint is empty.
const S3EndpointEnv = "AWS_ENDPOINT_URL_S3"

// errNoRole is an instance without an instance profile.
var errNoRole = errors.New("the instance has no IAM role (instance profile) in its metadata; s3:// sources need one")

type s3Remote struct {
	f             *ArtifactFetcher
	allowInsecure bool
}

func (r s3Remote) open(ctx context.Context, u *url.URL, offset int64, v validator) (*response, error) {
	bucket, key := u.Host, strings.TrimPrefix(u.Path, "/")
	in := &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}
	if offset > 0 {
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", offset))
		// If-Match turns a replaced object into 412, so its new bytes are
		// never appended to the old ones.
		if v.ETag != "" {
			in.IfMatch = aws.String(v.ETag)
		}
	}
	var out *s3.GetObjectOutput
	err := r.f.withS3(ctx, r.allowInsecure, bucket, func(c *s3.Client) error {
		var err error
		out, err = c.GetObject(ctx, in)
		return err
	})
	if err != nil {
		return nil, s3Error(bucket, key, err)
	}
	resp := &response{body: out.Body, total: -1, v: validator{ETag: aws.ToString(out.ETag)}}
	if out.LastModified != nil {
		resp.v.LastModified = out.LastModified.UTC().Format(http.TimeFormat)
	}
	if cr := aws.ToString(out.ContentRange); cr != "" {
		start, total, err := parseContentRange(cr)
		if err != nil {
			out.Body.Close()
			return nil, fmt.Errorf("s3 bucket %q, key %q: %w", bucket, key, err)
		}
		resp.start, resp.total = start, total
	} else if out.ContentLength != nil {
		resp.total = *out.ContentLength
	}
	return resp, nil
}

// s3Error names the bucket and key and classifies the SDK's error. The
// endpoint's own text (an error document's Message, which a hostile or
// misconfigured endpoint controls and which can echo request details) is
// never copied: only the error code and the HTTP status are.
func s3Error(bucket, key string, err error) error {
	status := 0
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	code := ""
	var api smithy.APIError
	if errors.As(err, &api) {
		code = api.ErrorCode()
	}
	switch {
	case code == "NoSuchKey" || code == "NoSuchBucket" || code == "NotFound" || status == http.StatusNotFound:
		return fmt.Errorf("s3 bucket %q, key %q: %w (%s)", bucket, key, ErrNotFound, codeOr(code, status))
	case status == http.StatusPreconditionFailed:
		return errChanged
	case status == http.StatusRequestedRangeNotSatisfiable || code == "InvalidRange":
		return &rangeError{total: -1}
	}
	if code != "" || status != 0 {
		return &s3APIError{bucket: bucket, key: key, code: code, status: status, err: err}
	}
	// No answer from the endpoint (a connection error, credentials): the
	// SDK's text is ours to show, but it quotes the request URL.
	return fmt.Errorf("s3 bucket %q, key %q: %w", bucket, key, redact.Error(err))
}

// s3APIError is an endpoint's error answer, shown as its code and status;
// the SDK's error stays in the chain for errors.As (retries read the status).
type s3APIError struct {
	bucket, key string
	code        string
	status      int
	err         error
}

func (e *s3APIError) Error() string {
	s := fmt.Sprintf("s3 bucket %q, key %q: ", e.bucket, e.key)
	switch {
	case e.code != "" && e.status != 0:
		return s + fmt.Sprintf("%s (HTTP %d %s)", safeCode(e.code), e.status, http.StatusText(e.status))
	case e.code != "":
		return s + safeCode(e.code)
	}
	return s + fmt.Sprintf("HTTP %d %s", e.status, http.StatusText(e.status))
}

func (e *s3APIError) Unwrap() error { return e.err }

// safeCode is an error code as shown: S3 codes are short identifiers
// ("AccessDenied"); anything else from the endpoint is not repeated.
func safeCode(code string) string {
	if len(code) > 64 {
		return "an unrecognised error code"
	}
	for _, r := range code {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return "an unrecognised error code"
		}
	}
	return code
}

func codeOr(code string, status int) string {
	if code != "" {
		return code
	}
	return fmt.Sprintf("HTTP %d", status)
}

// s3Client builds the S3 client on first use: region and credentials come
// from instance metadata, which a fetcher of https artifacts alone never
// needs to ask.
func (f *ArtifactFetcher) s3Client(ctx context.Context, allowInsecure bool) (*s3.Client, error) {
	endpoint := f.opts.S3Endpoint
	if endpoint == "" {
		endpoint = f.opts.Env(S3EndpointEnv)
	}
	if endpoint != "" {
		eu, err := url.Parse(endpoint)
		switch {
		case err != nil || eu.Host == "" || (eu.Scheme != "https" && eu.Scheme != "http"):
			return nil, fmt.Errorf("s3 endpoint %s: %w: want an https:// URL", redact.URL(endpoint), errNotAllowed)
		case eu.Scheme == "http" && !allowInsecure:
			return nil, fmt.Errorf("s3 endpoint %s: %w: http:// needs allow_insecure", redact.URL(eu.String()), errNotAllowed)
		}
	}
	f.s3mu.Lock()
	defer f.s3mu.Unlock()
	if f.s3 != nil {
		return f.s3, nil
	}
	if f.opts.IMDS == nil {
		return nil, fmt.Errorf("s3:// sources need instance metadata for the role's credentials: %w", errNotAllowed)
	}
	region, err := f.opts.IMDS.Get(ctx, "placement/region")
	if err != nil {
		if region = f.opts.Env("AWS_REGION"); region == "" {
			return nil, fmt.Errorf("s3: region: %w", err)
		}
	}
	o := s3.Options{
		Region: strings.TrimSpace(region),
		Credentials: aws.NewCredentialsCache(imdsCredentials{c: f.opts.IMDS}, func(o *aws.CredentialsCacheOptions) {
			// Renew ahead of expiry, spread so a fleet does not renew at once.
			o.ExpiryWindow = 5 * time.Minute
			o.ExpiryWindowJitterFrac = 0.5
		}),
		UsePathStyle: f.opts.S3PathStyle,
		HTTPClient:   f.s3HTTP,
		// Retries are ours, the same for every scheme (and resuming).
		Retryer: aws.NopRetryer{},
		// The artifact's own digest is verified; the SDK's would be a
		// second pass over every byte.
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
		Logger:                     logging.Nop{},
	}
	if endpoint != "" {
		o.BaseEndpoint = aws.String(endpoint)
	}
	f.s3 = s3.New(o)
	return f.s3, nil
}

// withS3 runs op with the client for bucket's region: the instance's
// region at first; when S3 answers that the bucket is in another (a 301
// PermanentRedirect, or a 400 for the wrong signing region, carrying
// x-amz-bucket-region), op runs again in that region and the bucket's
// region is remembered. The endpoint (a VPC or S3-compatible one) stays
// the configured one: only the signing region and the default endpoint's
// region change.
func (f *ArtifactFetcher) withS3(ctx context.Context, allowInsecure bool, bucket string, op func(*s3.Client) error) error {
	client, err := f.s3Client(ctx, allowInsecure)
	if err != nil {
		return err
	}
	f.s3mu.Lock()
	if r, ok := f.s3BucketRegion[bucket]; ok {
		client = f.s3InRegion(client, r)
	}
	f.s3mu.Unlock()
	err = op(client)
	region := bucketRegionHint(err)
	if region == "" || region == client.Options().Region {
		return err
	}
	f.opts.Log.Info("s3 bucket is in another region; following it",
		zap.String("bucket", bucket), zap.String("from", client.Options().Region), zap.String("region", region))
	f.s3mu.Lock()
	client = f.s3InRegion(client, region)
	f.s3BucketRegion[bucket] = region
	f.s3mu.Unlock()
	return op(client)
}

// s3InRegion is base's client for region, made once; f.s3mu is held.
func (f *ArtifactFetcher) s3InRegion(base *s3.Client, region string) *s3.Client {
	if c, ok := f.s3Regional[region]; ok {
		return c
	}
	c := s3.New(base.Options(), func(o *s3.Options) { o.Region = region })
	f.s3Regional[region] = c
	return c
}

// bucketRegionHint is the region an S3 error answer names for its bucket
// (x-amz-bucket-region), when it looks like one.
func bucketRegionHint(err error) string {
	var re *awshttp.ResponseError
	if err == nil || !errors.As(err, &re) || re.Response == nil {
		return ""
	}
	r := re.Response.Header.Get("X-Amz-Bucket-Region")
	if r == "" || len(r) > 32 || strings.ContainsFunc(r, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-')
	}) {
		return ""
	}
	return r
}

// imdsCredentials reads the instance role's temporary credentials through
// the agent's own IMDS client (its endpoint, IMDSv2 token and retries).
type imdsCredentials struct{ c *imds.Client }

func (p imdsCredentials) Retrieve(ctx context.Context) (aws.Credentials, error) {
	list, err := p.c.Get(ctx, "iam/security-credentials/")
	if errors.Is(err, imds.ErrNotFound) {
		return aws.Credentials{}, errNoRole
	}
	if err != nil {
		return aws.Credentials{}, fmt.Errorf("instance role: %w", err)
	}
	role, _, _ := strings.Cut(strings.TrimSpace(list), "\n")
	role = strings.TrimSpace(role)
	if role == "" {
		return aws.Credentials{}, errNoRole
	}
	body, err := p.c.Get(ctx, "iam/security-credentials/"+role)
	if err != nil {
		return aws.Credentials{}, fmt.Errorf("instance role %q credentials: %w", role, err)
	}
	var doc struct {
		Code            string
		AccessKeyID     string `json:"AccessKeyId"`
		SecretAccessKey string
		Token           string
		Expiration      time.Time
	}
	// The body is a secret: errors describe it, never quote it.
	if json.Unmarshal([]byte(body), &doc) != nil {
		return aws.Credentials{}, fmt.Errorf("instance role %q credentials: not a JSON document", role)
	}
	if doc.Code != "" && doc.Code != "Success" {
		return aws.Credentials{}, fmt.Errorf("instance role %q credentials: metadata says %q", role, doc.Code)
	}
	if doc.AccessKeyID == "" || doc.SecretAccessKey == "" {
		return aws.Credentials{}, fmt.Errorf("instance role %q credentials: no AccessKeyId or SecretAccessKey", role)
	}
	return aws.Credentials{
		AccessKeyID:     doc.AccessKeyID,
		SecretAccessKey: doc.SecretAccessKey,
		SessionToken:    doc.Token,
		Source:          "ec2init instance metadata, role " + role,
		CanExpire:       !doc.Expiration.IsZero(),
		Expires:         doc.Expiration,
	}, nil
}
