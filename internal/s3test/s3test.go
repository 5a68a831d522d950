// Package s3test runs a real S3 server for tests: versitygw
// (https://github.com/versity/versitygw) with its posix backend, on a free
// loopback port, storing into a temporary directory.
//
// Tests that call [Start] skip when the versitygw binary is missing, unless
// PDMFLOW_REQUIRE_S3=1 is set (CI sets it), in which case they fail: S3
// tests can never silently skip there.
package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"go/build"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Version is the versitygw release the tests are written against.
const Version = "v1.8.0"

// InstallCommand installs versitygw where Start looks for it.
const InstallCommand = "CGO_ENABLED=0 go install github.com/versity/versitygw/cmd/versitygw@" + Version

// RequireEnv is the environment variable that turns a missing versitygw
// from a skip into a failure when set to 1.
const RequireEnv = "PDMFLOW_REQUIRE_S3"

// Server is a running versitygw. Its bucket exists and is empty at start.
type Server struct {
	Endpoint  string // "127.0.0.1:PORT", plain http
	AccessKey string // root account
	SecretKey string
	Bucket    string
	// Stop kills the server (SIGKILL) and waits for it to exit, for tests of
	// an unreachable store. Stopping a stopped server does nothing.
	Stop func()
	// Restart starts the server again, on the same port and data directory
	// (so with the same bucket and objects), and waits until it answers.
	// Call it from the test's goroutine: it fails the test if the server
	// does not come back.
	Restart func()
}

// Options changes how StartWith runs versitygw.
type Options struct {
	// KeepAlive passes --keep-alive, so that connections are reused as with
	// AWS or MinIO; versitygw's default closes each connection after one
	// response. Beware: with it, versitygw v1.8.0 does not drain the
	// aws-chunked body of an empty object's PUT (minio-go's default over
	// plain http) and answers the leftover bytes with a spurious 400 on the
	// next request of that connection. Package store avoids such requests.
	KeepAlive bool
}

// Start launches `versitygw --port 127.0.0.1:PORT posix DIR` with random
// root keys, waits until it answers, creates a bucket, and registers a
// cleanup that stops it. Each call gets its own server, keys and data
// directory. The server's log is shown if the test fails.
func Start(t testing.TB) Server {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith is Start with options.
func StartWith(t testing.TB, opts Options) Server {
	t.Helper()
	bin := findBinary()
	if bin == "" {
		msg := "versitygw not found (looked on PATH and in $(go env GOPATH)/bin); " +
			"install it with `make tools` or `" + InstallCommand + "`"
		if os.Getenv(RequireEnv) == "1" {
			t.Fatal("s3test: " + msg + "; " + RequireEnv + "=1 forbids skipping the S3 tests")
		}
		t.Skip("s3test: SKIPPING S3 TESTS: " + msg + " (set " + RequireEnv + "=1 to make this a failure)")
	}

	dir := t.TempDir()
	g := &gateway{
		t:         t,
		bin:       bin,
		dataDir:   filepath.Join(dir, "data"),
		logPath:   filepath.Join(dir, "versitygw.log"),
		keepAlive: opts.KeepAlive,
		accessKey: "AK" + randString(18),
		secretKey: randString(40),
	}
	if err := os.Mkdir(g.dataDir, 0o755); err != nil {
		t.Fatalf("s3test: %v", err)
	}
	t.Cleanup(func() {
		g.stop()
		if t.Failed() {
			g.dumpLog()
		}
	})

	// The port is chosen free, then handed to versitygw; another process
	// can take it in between, so try a few.
	var err error
	for range 3 {
		g.addr, err = freePort()
		if err != nil {
			break
		}
		if err = g.start(); err == nil {
			break
		}
	}
	if err != nil {
		g.dumpLog()
		t.Fatalf("s3test: starting versitygw: %v", err)
	}

	const bucket = "pdmflow-test"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mc, err := minio.New(g.addr, &minio.Options{
		Creds:      credentials.NewStaticV4(g.accessKey, g.secretKey, ""),
		Region:     "us-east-1",
		MaxRetries: 3,
	})
	if err == nil {
		err = mc.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: "us-east-1"})
	}
	if err != nil {
		g.dumpLog()
		t.Fatalf("s3test: creating bucket %q on versitygw at %s: %v", bucket, g.addr, err)
	}

	return Server{
		Endpoint:  g.addr,
		AccessKey: g.accessKey,
		SecretKey: g.secretKey,
		Bucket:    bucket,
		Stop:      g.stop,
		Restart: func() {
			t.Helper()
			g.stop()
			if err := g.start(); err != nil {
				g.dumpLog()
				t.Fatalf("s3test: restarting versitygw on %s: %v", g.addr, err)
			}
		},
	}
}

type gateway struct {
	t                    testing.TB
	bin, dataDir         string
	logPath              string
	addr                 string
	accessKey, secretKey string
	keepAlive            bool

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// start runs versitygw on g.addr and waits until it answers HTTP.
func (g *gateway) start() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	logf, err := os.OpenFile(g.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own descriptor
	args := []string{"--port", g.addr}
	if g.keepAlive {
		args = append(args, "--keep-alive")
	}
	args = append(args, "posix", g.dataDir)
	fmt.Fprintf(logf, "=== s3test: %s %s\n", g.bin, strings.Join(args, " "))

	cmd := exec.Command(g.bin, args...)
	cmd.Env = append(cleanEnv(), "ROOT_ACCESS_KEY="+g.accessKey, "ROOT_SECRET_KEY="+g.secretKey)
	cmd.Stdout, cmd.Stderr = logf, logf
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	g.cmd, g.done = cmd, done

	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-done:
			g.cmd = nil
			return fmt.Errorf("versitygw exited at start (%s); see its log", cmd.ProcessState)
		default:
		}
		resp, err := client.Get("http://" + g.addr + "/")
		if err == nil {
			resp.Body.Close()
			return nil // any HTTP answer (403 without credentials) means ready
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			g.cmd = nil
			return fmt.Errorf("versitygw did not answer on %s within 15s: %v", g.addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (g *gateway) stop() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cmd == nil {
		return
	}
	_ = g.cmd.Process.Kill()
	<-g.done
	g.cmd = nil
}

func (g *gateway) dumpLog() {
	data, err := os.ReadFile(g.logPath)
	if err != nil {
		return
	}
	const max = 8 << 10
	if len(data) > max {
		data = append([]byte("...\n"), data[len(data)-max:]...)
	}
	g.t.Logf("s3test: versitygw log (%s):\n%s", g.logPath, bytes.TrimSpace(data))
}

// cleanEnv is the environment without versitygw's own settings, so that a
// developer's VGW_* or ROOT_* variables do not change the test server.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "VGW_") || strings.HasPrefix(kv, "ROOT_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

func randString(n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

var (
	binOnce sync.Once
	binPath string
)

// findBinary returns the versitygw to run, or "": the one on PATH, else
// the one in $(go env GOBIN) or a $(go env GOPATH)/bin.
func findBinary() string {
	binOnce.Do(func() {
		if p, err := exec.LookPath("versitygw"); err == nil {
			binPath = p
			return
		}
		var dirs []string
		gobin, gopath := "", build.Default.GOPATH
		if out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output(); err == nil {
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if len(lines) == 2 {
				gobin, gopath = strings.TrimSpace(lines[0]), strings.TrimSpace(lines[1])
			}
		}
		if gobin != "" {
			dirs = append(dirs, gobin)
		}
		for _, p := range filepath.SplitList(gopath) {
			dirs = append(dirs, filepath.Join(p, "bin"))
		}
		for _, d := range dirs {
			p := filepath.Join(d, "versitygw")
			if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
				binPath = p
				return
			}
		}
	})
	return binPath
}
