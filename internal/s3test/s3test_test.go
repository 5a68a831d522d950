package s3test_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/pdmflow/pdmflow/internal/s3test"
)

func client(t *testing.T, srv s3test.Server) *minio.Client {
	t.Helper()
	c, err := minio.New(srv.Endpoint, &minio.Options{
		Creds:      credentials.NewStaticV4(srv.AccessKey, srv.SecretKey, ""),
		Region:     "us-east-1",
		MaxRetries: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestStartStopRestart(t *testing.T) {
	srv := s3test.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	c := client(t, srv)
	ok, err := c.BucketExists(ctx, srv.Bucket)
	if err != nil || !ok {
		t.Fatalf("bucket %q: exists=%v, %v", srv.Bucket, ok, err)
	}
	if _, err := c.PutObject(ctx, srv.Bucket, "k", strings.NewReader("v"), 1, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	srv.Stop() // harmless
	if _, err := c.StatObject(ctx, srv.Bucket, "k", minio.StatObjectOptions{}); err == nil {
		t.Fatal("server still answers after Stop")
	}

	srv.Restart()
	info, err := c.StatObject(ctx, srv.Bucket, "k", minio.StatObjectOptions{})
	if err != nil || info.Size != 1 {
		t.Fatalf("after Restart: %+v, %v; want the object kept", info, err)
	}
	srv.Restart() // from a running server too
	if _, err := c.StatObject(ctx, srv.Bucket, "k", minio.StatObjectOptions{}); err != nil {
		t.Fatalf("after a second Restart: %v", err)
	}
}

func TestServersAreIndependent(t *testing.T) {
	a, b := s3test.Start(t), s3test.Start(t)
	if a.Endpoint == b.Endpoint || a.SecretKey == b.SecretKey {
		t.Fatalf("two servers share endpoint or keys: %s %s", a.Endpoint, b.Endpoint)
	}
	wrong := b
	wrong.AccessKey, wrong.SecretKey = a.AccessKey, a.SecretKey
	ctx := t.Context()
	_, err := client(t, wrong).PutObject(ctx, b.Bucket, "k", strings.NewReader("v"), 1, minio.PutObjectOptions{})
	if err == nil {
		t.Error("server b accepts server a's keys")
	}
}

// TestMissingBinary runs this test binary again with versitygw out of
// reach: Start must skip, or fail under PDMFLOW_REQUIRE_S3=1.
func TestMissingBinary(t *testing.T) {
	if os.Getenv("S3TEST_CHILD") == "1" {
		s3test.Start(t)
		t.Fatal("Start returned without a binary")
	}
	for _, require := range []bool{false, true} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestMissingBinary$", "-test.v")
		cmd.Env = []string{
			"S3TEST_CHILD=1",
			"PATH=" + t.TempDir(), // no versitygw, and no go
			"GOPATH=" + t.TempDir(),
			"HOME=" + t.TempDir(),
		}
		if require {
			cmd.Env = append(cmd.Env, s3test.RequireEnv+"=1")
		}
		out, err := cmd.CombinedOutput()
		switch {
		case !require && (err != nil || !strings.Contains(string(out), "SKIPPING S3 TESTS")):
			t.Errorf("without the binary: %v, want a skip; output:\n%s", err, out)
		case require && (err == nil || !strings.Contains(string(out), "forbids skipping")):
			t.Errorf("without the binary, %s=1: %v, want a failure; output:\n%s", s3test.RequireEnv, err, out)
		}
		if !strings.Contains(string(out), s3test.InstallCommand) {
			t.Errorf("message does not name the install command; output:\n%s", out)
		}
	}
}
