package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pdmflow/pdmflow/internal/s3test"
	"github.com/pdmflow/pdmflow/store"
	"github.com/pdmflow/pdmflow/store/storetest"
)

func s3Config(srv s3test.Server) store.Config {
	return store.Config{
		Endpoint:  srv.Endpoint,
		AccessKey: srv.AccessKey,
		SecretKey: srv.SecretKey,
		Region:    "us-east-1",
		Insecure:  true,
	}
}

func openS3(t *testing.T, url string, cfg store.Config) *store.Bucket {
	t.Helper()
	b, err := store.Open(t.Context(), url, cfg)
	if err != nil {
		t.Fatalf("Open(%q): %v", url, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestS3Conformance(t *testing.T) {
	// Keep-alive, as real S3 servers do: connection reuse matters.
	srv := s3test.StartWith(t, s3test.Options{KeepAlive: true})
	cfg := s3Config(srv)
	var n atomic.Int64
	// Each subtest gets its own prefix of the one bucket...
	t.Run("prefix", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) *store.Bucket {
			return openS3(t, fmt.Sprintf("s3://%s/p%d/q", srv.Bucket, n.Add(1)), cfg)
		})
	})
	// ... or a bucket of its own, made by Open.
	t.Run("bucket", func(t *testing.T) {
		cfg := cfg
		cfg.CreateBucket = true
		storetest.Run(t, func(t *testing.T) *store.Bucket {
			return openS3(t, fmt.Sprintf("s3://bucket-%d", n.Add(1)), cfg)
		})
	})
}

func TestS3Open(t *testing.T) {
	srv := s3test.Start(t)
	ctx := t.Context()
	cfg := s3Config(srv)

	b := openS3(t, "s3://"+srv.Bucket+"/some/prefix/", cfg)
	if got, want := b.URL(), "s3://"+srv.Bucket+"/some/prefix"; got != want {
		t.Errorf("URL() = %q, want %q", got, want)
	}

	_, err := store.Open(ctx, "s3://no-such-bucket", cfg)
	if err == nil || !strings.Contains(err.Error(), `"no-such-bucket"`) || !strings.Contains(err.Error(), srv.Endpoint) {
		t.Errorf("Open of a missing bucket: %v, want an error naming bucket and endpoint", err)
	}

	bad := cfg
	bad.SecretKey = "wrong-secret-key"
	if _, err := store.Open(ctx, "s3://"+srv.Bucket, bad); err == nil {
		t.Error("Open with a wrong secret key succeeded")
	} else if strings.Contains(err.Error(), "wrong-secret-key") || strings.Contains(err.Error(), srv.SecretKey) {
		t.Errorf("Open error shows a secret: %v", err)
	}

	unknown := cfg
	unknown.AccessKey = "NOBODY"
	if _, err := store.Open(ctx, "s3://"+srv.Bucket, unknown); err == nil || strings.Contains(err.Error(), "does not exist") {
		t.Errorf("Open with an unknown access key: %v, want an error that is not about the bucket", err)
	}

	// The endpoint may come as a URL, and everything from the environment.
	t.Setenv("PDMFLOW_S3_ENDPOINT", "http://"+srv.Endpoint)
	t.Setenv("PDMFLOW_S3_ACCESS_KEY", srv.AccessKey)
	t.Setenv("PDMFLOW_S3_SECRET_KEY", srv.SecretKey)
	t.Setenv("PDMFLOW_S3_INSECURE", "")
	b2 := openS3(t, "s3://"+srv.Bucket+"/some/prefix", store.Config{})
	if err := b2.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(ctx, "k"); err != nil || string(got) != "v" {
		t.Errorf("Get through the other Bucket = %q, %v", got, err)
	}
}

// TestS3ConditionalPut records what versitygw does with If-None-Match: the
// driver must find it atomic, and the probe must leave nothing behind.
func TestS3ConditionalPut(t *testing.T) {
	srv := s3test.Start(t)
	ctx := t.Context()
	b := openS3(t, "s3://"+srv.Bucket, s3Config(srv))
	atomic, err := b.AtomicPutIfAbsent(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !atomic {
		t.Errorf("versitygw %s: PutIfAbsent is not atomic (If-None-Match ignored)", s3test.Version)
	}
	raw := openS3(t, "s3://"+srv.Bucket, s3Config(srv))
	if keys, err := raw.List(ctx, ""); err != nil || len(keys) != 0 {
		t.Errorf("probe left objects: %q, %v", keys, err)
	}
}

// TestS3Unreachable: with the server down, every call fails within a
// bounded time (not ErrNotFound), and the same Bucket works again once the
// server is back.
func TestS3Unreachable(t *testing.T) {
	// Keep-alive, so that the Bucket holds connections to the dead server.
	srv := s3test.StartWith(t, s3test.Options{KeepAlive: true})
	ctx := t.Context()
	cfg := s3Config(srv)
	cfg.Timeout = 5 * time.Second
	b := openS3(t, "s3://"+srv.Bucket+"/u", cfg)
	if err := b.Put(ctx, "k", []byte("before")); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	const bound = 5 * time.Second
	ops := []struct {
		name string
		fn   func() error
	}{
		{"Get", func() error { _, err := b.Get(ctx, "k"); return err }},
		{"Put", func() error { return b.Put(ctx, "k", []byte("during")) }},
		{"PutIfAbsent", func() error { return b.PutIfAbsent(ctx, "new", []byte("x")) }},
		{"Stat", func() error { _, err := b.Stat(ctx, "k"); return err }},
		{"List", func() error { _, err := b.List(ctx, ""); return err }},
		{"Delete", func() error { return b.Delete(ctx, "k") }},
		{"Open", func() error {
			b2, err := store.Open(ctx, "s3://"+srv.Bucket, cfg)
			if err == nil {
				b2.Close()
			}
			return err
		}},
	}
	for _, op := range ops {
		start := time.Now()
		err := op.fn()
		d := time.Since(start)
		if err == nil || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrExists) {
			t.Errorf("%s with the server down: %v, want a connection error", op.name, err)
		}
		if d > bound {
			t.Errorf("%s with the server down took %v, want < %v", op.name, d, bound)
		}
		t.Logf("%s with the server down: %v after %v", op.name, err, d.Round(time.Millisecond))
	}
	// A caller's deadline cuts it shorter still.
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := b.Get(short, "k"); err == nil {
		t.Error("Get with the server down succeeded")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Get with a 200ms deadline took %v", d)
	}

	srv.Restart()
	got, err := b.Get(ctx, "k")
	if err != nil || string(got) != "before" {
		t.Fatalf("Get after Restart = %q, %v", got, err)
	}
	if err := b.Put(ctx, "k", []byte("after")); err != nil {
		t.Fatalf("Put after Restart: %v", err)
	}
	if _, _, err := store.PutWeights(ctx, b, []byte("weights")); err != nil {
		t.Fatalf("PutWeights after Restart: %v", err)
	}
}

// TestS3CredentialChain: without static keys the driver finds credentials
// as the AWS SDKs do; here from a shared credentials file and a named
// profile (the same chain reads the instance, task and pod roles), and the
// endpoint from AWS_ENDPOINT_URL. One static key without the other is
// refused.
func TestS3CredentialChain(t *testing.T) {
	srv := s3test.Start(t)
	ctx := t.Context()
	for _, v := range []string{"PDMFLOW_S3_ENDPOINT", "PDMFLOW_S3_ACCESS_KEY", "PDMFLOW_S3_SECRET_KEY", "AWS_ACCESS_KEY_ID",
		"AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "PDMFLOW_S3_PROFILE", "AWS_ENDPOINT_URL_S3"} {
		t.Setenv(v, "")
	}
	creds := filepath.Join(t.TempDir(), "credentials")
	os.WriteFile(creds, []byte("[default]\naws_access_key_id = NOBODY\naws_secret_access_key = nothing\n\n[pdmflow]\naws_access_key_id = "+
		srv.AccessKey+"\naws_secret_access_key = "+srv.SecretKey+"\n"), 0o600)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", creds)
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_ENDPOINT_URL", "http://"+srv.Endpoint)
	t.Setenv("AWS_PROFILE", "pdmflow")
	b := openS3(t, "s3://"+srv.Bucket+"/chain", store.Config{})
	if err := b.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatalf("Put with the profile's credentials: %v", err)
	}
	// The default profile's keys are wrong: the profile decides.
	t.Setenv("AWS_PROFILE", "")
	if _, err := store.Open(ctx, "s3://"+srv.Bucket+"/chain", store.Config{}); err == nil {
		t.Error("the default profile's unknown keys were accepted")
	}
	cfg := store.Config{Profile: "pdmflow"}
	if b2, err := store.Open(ctx, "s3://"+srv.Bucket+"/chain", cfg); err != nil {
		t.Errorf("Config.Profile: %v", err)
	} else {
		b2.Close()
	}
	if _, err := store.Open(ctx, "s3://"+srv.Bucket, store.Config{AccessKey: srv.AccessKey}); err == nil || !strings.Contains(err.Error(), "secret key") {
		t.Errorf("an access key without a secret key: %v", err)
	}
	// Secrets never show: the session token is redacted like the secret.
	s := store.Config{AccessKey: "AKIAEXAMPLE", SecretKey: "s3cr3t", SessionToken: "t0k3n", Profile: "p"}.String()
	if strings.Contains(s, "s3cr3t") || strings.Contains(s, "t0k3n") || !strings.Contains(s, `profile="p"`) {
		t.Errorf("Config.String() = %s", s)
	}
}
