package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// Transport limits of the s3 driver; see the package doc.
const (
	s3DialTimeout     = 5 * time.Second
	s3HeaderTimeout   = 30 * time.Second
	s3MaxAttempts     = 3 // minio-go's MaxRetries counts attempts
	s3MaxSinglePut    = 5 << 30
	s3PartSize        = 16 << 20
	s3ProbePrefix     = ".pdmflow-probe/"
	s3ConflictRetries = 4
)

// awsEndpoint is AWS S3's, used when no endpoint is given.
const awsEndpoint = "s3.amazonaws.com"

// s3Credentials are the static keys of cfg, or, without them, the AWS
// SDKs' chain: the AWS_* variables, the shared config and credentials files
// (cfg.Profile, else AWS_PROFILE, else default), then the ECS task's, EKS
// pod's (web identity) or EC2 instance's role.
func s3Credentials(cfg Config) (*credentials.Credentials, error) {
	if cfg.AccessKey != "" || cfg.SecretKey != "" {
		if cfg.AccessKey == "" || cfg.SecretKey == "" {
			return nil, errors.New("static credentials need both an access key and a secret key")
		}
		return credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken), nil
	}
	return credentials.NewChainCredentials([]credentials.Provider{
		&credentials.EnvAWS{},
		&credentials.FileAWSCredentials{Profile: cfg.Profile},
		&credentials.IAM{},
	}), nil
}

// s3Driver stores each object as an S3 object named prefix+key.
type s3Driver struct {
	client  *minio.Client
	core    minio.Core
	tr      *http.Transport
	bucket  string
	prefix  string // "" or ends with "/"
	timeout time.Duration

	probeMu  sync.Mutex
	probed   bool
	atomic   bool // the server honours If-None-Match: * on PUT
	noCondHd bool // the server rejects If-None-Match: do not send it
}

func openS3(ctx context.Context, rest string, cfg Config) (driver, string, error) {
	bucket, prefix, _ := strings.Cut(rest, "/")
	if strings.ContainsAny(bucket, "@:") {
		// Do not echo the URL: it may hold a secret.
		return nil, "", errors.New("store: open s3: credentials or a port in the URL are not supported; use Config or the environment")
	}
	if strings.ContainsAny(rest, "?#") {
		return nil, "", fmt.Errorf("store: open s3://%s: query or fragment in URL is not supported", bucket)
	}
	if err := s3utils.CheckValidBucketNameStrict(bucket); err != nil {
		return nil, "", fmt.Errorf("store: open s3://%s: bad bucket name: %w", bucket, err)
	}
	prefix = strings.Trim(prefix, "/")
	canon := "s3://" + bucket
	if prefix != "" {
		if problem := keyProblem(prefix); problem != "" {
			return nil, "", fmt.Errorf("store: open %s: bad prefix %q: %s", canon, prefix, problem)
		}
		canon += "/" + prefix
		prefix += "/"
	}
	fail := func(format string, args ...any) (driver, string, error) {
		return nil, "", fmt.Errorf("store: open %s: "+format, append([]any{canon}, args...)...)
	}

	endpoint := strings.TrimRight(cfg.Endpoint, "/")
	secure := !cfg.Insecure
	if e, ok := strings.CutPrefix(endpoint, "http://"); ok {
		endpoint, secure = e, false
	} else if e, ok := strings.CutPrefix(endpoint, "https://"); ok {
		endpoint, secure = e, true
	}
	if endpoint == "" {
		endpoint, secure = awsEndpoint, true
	}
	if i := strings.LastIndexByte(endpoint, '@'); i >= 0 {
		// user:secret@host: never echo the part before '@'.
		return fail("the S3 endpoint (...@%s) holds credentials: give host:port, and the keys with PDMFLOW_S3_ACCESS_KEY and PDMFLOW_S3_SECRET_KEY", endpoint[i+1:])
	}
	if strings.ContainsAny(endpoint, "/?#") {
		return fail("the S3 endpoint %q is not host:port (a path, query or fragment is not supported)", endpoint)
	}
	region := cfg.Region
	if region == "" && !strings.HasSuffix(endpoint, ".amazonaws.com") {
		region = "us-east-1" // on AWS, an empty region is found from the bucket
	}
	creds, err := s3Credentials(cfg)
	if err != nil {
		return fail("%w", err)
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}

	tr, err := minio.DefaultTransport(secure)
	if err != nil {
		return fail("%w", err)
	}
	tr.DialContext = (&net.Dialer{Timeout: s3DialTimeout, KeepAlive: 30 * time.Second}).DialContext
	tr.ResponseHeaderTimeout = s3HeaderTimeout
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return fail("CA file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return fail("CA file %s holds no PEM certificate", cfg.CAFile)
		}
		if tr.TLSClientConfig == nil {
			tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	client, err := minio.New(endpoint, &minio.Options{
		Creds:      creds,
		Secure:     secure,
		Transport:  tr,
		Region:     region,
		MaxRetries: s3MaxAttempts,
	})
	if err != nil {
		return fail("endpoint %s: %w", endpoint, err)
	}
	client.SetAppInfo("pdmflow-store", "1")
	d := &s3Driver{client: client, core: minio.Core{Client: client}, tr: tr,
		bucket: bucket, prefix: prefix, timeout: timeout}

	cctx, cancel := d.bound(ctx)
	defer cancel()
	ok, err := client.BucketExists(cctx, bucket)
	if err != nil {
		tr.CloseIdleConnections()
		return fail("checking bucket %q at %s: %w", bucket, endpoint, err)
	}
	if !ok {
		// HEAD has no body, so a 404 is all minio-go sees, and versitygw
		// answers 404 for an unknown access key too. A listing's error body
		// says which.
		ok, err = d.bucketListable(cctx)
		if err != nil {
			tr.CloseIdleConnections()
			return fail("checking bucket %q at %s: %w", bucket, endpoint, err)
		}
	}
	if !ok {
		if !cfg.CreateBucket {
			tr.CloseIdleConnections()
			return fail("bucket %q does not exist at %s (set Config.CreateBucket to create it)", bucket, endpoint)
		}
		err := client.MakeBucket(cctx, bucket, minio.MakeBucketOptions{Region: region})
		if code := minio.ToErrorResponse(err).Code; code == "BucketAlreadyOwnedByYou" || code == "BucketAlreadyExists" {
			err = nil // created concurrently
		}
		if err != nil {
			tr.CloseIdleConnections()
			return fail("creating bucket %q at %s: %w", bucket, endpoint, err)
		}
	}
	return d, canon, nil
}

// bucketListable lists at most one key: true if that works, false if the
// bucket does not exist, and the error otherwise.
func (d *s3Driver) bucketListable(ctx context.Context) (bool, error) {
	for obj := range d.client.ListObjectsIter(ctx, d.bucket, minio.ListObjectsOptions{MaxKeys: 1}) {
		if obj.Err != nil {
			if minio.ToErrorResponse(obj.Err).Code == minio.NoSuchBucket {
				return false, nil
			}
			return false, obj.Err
		}
		break
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	return true, nil
}

// bound applies the per-call timeout to ctx.
func (d *s3Driver) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if d.timeout < 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d.timeout)
}

func (d *s3Driver) close() error {
	d.tr.CloseIdleConnections()
	return nil
}

// s3NotFound reports whether err says that the object does not exist (but
// not that the bucket does not).
func s3NotFound(err error) bool {
	r := minio.ToErrorResponse(err)
	return r.Code == minio.NoSuchKey || (r.StatusCode == http.StatusNotFound && r.Code != minio.NoSuchBucket)
}

func (d *s3Driver) put(ctx context.Context, key string, r io.Reader, size int64, o putOpts) error {
	if !o.stream {
		var cancel context.CancelFunc
		ctx, cancel = d.bound(ctx)
		defer cancel()
	}
	opts := minio.PutObjectOptions{
		ContentType: "application/octet-stream",
		PartSize:    s3PartSize,
		NumThreads:  2,
	}
	if o.ifAbsent {
		atomic, sendHeader, err := d.probe(ctx)
		if err != nil {
			return fmt.Errorf("probing conditional put: %w", err)
		}
		if !atomic {
			// Not atomic: two writers can both get here. See PutIfAbsent.
			_, err := d.stat(ctx, key)
			if err == nil {
				return ErrExists
			}
			if !errors.Is(err, ErrNotFound) {
				return err
			}
		}
		if sendHeader {
			opts.SetMatchETagExcept("*")
		}
	}
	// In-memory objects (and empty files) go up in one PUT signed with their
	// SHA-256, against which the server checks the body. Files go up as minio-go chooses:
	// multipart above one part, each part aws-chunked ("streaming") signed
	// over plain http. Besides saving a pass, the single signed PUT avoids a
	// versitygw bug: with keep-alive it does not drain the aws-chunked body
	// of an empty object, and answers the leftover bytes with a spurious
	// 400 on the next request of that connection.
	var shaHex string
	rs, seekable := r.(io.ReadSeeker)
	if (!o.stream || size == 0) && seekable && size >= 0 && size <= s3MaxSinglePut {
		h := sha256.New()
		if _, err := io.Copy(h, rs); err != nil {
			return err
		}
		if _, err := rs.Seek(0, io.SeekStart); err != nil {
			return err
		}
		shaHex = hex.EncodeToString(h.Sum(nil))
		opts.DisableContentSha256 = true
	}
	for attempt := 0; ; attempt++ {
		var err error
		if shaHex != "" {
			_, err = d.core.PutObject(ctx, d.bucket, d.prefix+key, r, size, "", shaHex, opts)
		} else {
			_, err = d.client.PutObject(ctx, d.bucket, d.prefix+key, r, size, opts)
		}
		resp := minio.ToErrorResponse(err)
		switch {
		case err == nil:
			return nil
		case o.ifAbsent && (resp.StatusCode == http.StatusPreconditionFailed || resp.Code == "PreconditionFailed"):
			return ErrExists
		case o.ifAbsent && resp.StatusCode == http.StatusConflict && attempt < s3ConflictRetries:
			// ConditionalRequestConflict: a concurrent write to the key is
			// in flight; try again once it has settled.
			if !seekable {
				return err
			}
			if _, serr := rs.Seek(0, io.SeekStart); serr != nil {
				return err
			}
			select {
			case <-time.After(time.Duration(attempt+1) * 100 * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
		default:
			return err
		}
	}
}

// probe finds out, once per driver, whether the server honours
// If-None-Match: * on PUT (atomic), and whether to send it at all
// (sendHeader: not to a server that rejects it), with a scratch object under
// s3ProbePrefix. An error is not remembered: the next call probes again.
func (d *s3Driver) probe(ctx context.Context) (atomic, sendHeader bool, err error) {
	d.probeMu.Lock()
	defer d.probeMu.Unlock()
	if d.probed {
		return d.atomic, !d.noCondHd, nil
	}
	key := d.prefix + s3ProbePrefix + rand.Text()
	put := func(cond bool) error {
		opts := minio.PutObjectOptions{DisableContentSha256: true}
		if cond {
			opts.SetMatchETagExcept("*")
		}
		const body = "probe"
		sum := sha256.Sum256([]byte(body))
		_, err := d.core.PutObject(ctx, d.bucket, key, strings.NewReader(body), int64(len(body)), "", hex.EncodeToString(sum[:]), opts)
		return err
	}
	if err := put(false); err != nil {
		return false, false, err
	}
	defer func() {
		// Best effort, and even if ctx is done.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = d.client.RemoveObject(rctx, d.bucket, key, minio.RemoveObjectOptions{})
	}()
	err = put(true)
	resp := minio.ToErrorResponse(err)
	switch {
	case err == nil:
		d.atomic = false // header ignored: the second PUT overwrote
	case resp.StatusCode == http.StatusPreconditionFailed:
		d.atomic = true
	case resp.StatusCode == http.StatusNotImplemented || resp.Code == "NotImplemented":
		d.atomic, d.noCondHd = false, true
	default:
		return false, false, err
	}
	d.probed = true
	return d.atomic, !d.noCondHd, nil
}

func (d *s3Driver) atomicPutIfAbsent(ctx context.Context) (bool, error) {
	ctx, cancel := d.bound(ctx)
	defer cancel()
	atomic, _, err := d.probe(ctx)
	return atomic, err
}

func (d *s3Driver) get(ctx context.Context, key string, stream bool) (io.ReadCloser, int64, error) {
	cancel := context.CancelFunc(func() {})
	if !stream {
		ctx, cancel = d.bound(ctx)
	}
	body, info, _, err := d.core.GetObject(ctx, d.bucket, d.prefix+key, minio.GetObjectOptions{})
	if err != nil {
		cancel()
		if s3NotFound(err) {
			return nil, 0, ErrNotFound
		}
		return nil, 0, err
	}
	return &cancelCloser{ReadCloser: body, cancel: cancel}, info.Size, nil
}

// cancelCloser releases the call's context when the body is closed.
type cancelCloser struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelCloser) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

func (d *s3Driver) stat(ctx context.Context, key string) (Attrs, error) {
	ctx, cancel := d.bound(ctx)
	defer cancel()
	info, err := d.client.StatObject(ctx, d.bucket, d.prefix+key, minio.StatObjectOptions{})
	if err != nil {
		if s3NotFound(err) {
			return Attrs{}, ErrNotFound
		}
		return Attrs{}, err
	}
	return Attrs{Size: info.Size, ModTime: info.LastModified, ETag: strings.Trim(info.ETag, `"`)}, nil
}

func (d *s3Driver) list(ctx context.Context, prefix string) ([]string, error) {
	ctx, cancel := d.bound(ctx)
	defer cancel() // also stops minio-go's listing goroutine on early return
	keys := []string{}
	for obj := range d.client.ListObjectsIter(ctx, d.bucket, minio.ListObjectsOptions{
		Prefix:    d.prefix + prefix,
		Recursive: true,
	}) {
		if obj.Err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, obj.Err
		}
		key, ok := strings.CutPrefix(obj.Key, d.prefix)
		if ok && ValidKey(key) && strings.HasPrefix(key, prefix) && !strings.HasPrefix(key, s3ProbePrefix) {
			keys = append(keys, key)
		}
	}
	// The listing may end early, without an error, when ctx is done.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return keys, nil
}

func (d *s3Driver) delete(ctx context.Context, key string) error {
	ctx, cancel := d.bound(ctx)
	defer cancel()
	err := d.client.RemoveObject(ctx, d.bucket, d.prefix+key, minio.RemoveObjectOptions{})
	if err != nil && s3NotFound(err) {
		return nil
	}
	return err
}
