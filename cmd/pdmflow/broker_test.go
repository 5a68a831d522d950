package main

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pdmflow/pdmflow/internal/syncbuf"
)

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestBrokerCommand(t *testing.T) {
	const password = "cmd-S3cret-pw"
	t.Setenv(envBrokerPassword, password)
	port := freeTCPPort(t)
	url := "nats://127.0.0.1:" + strconv.Itoa(port)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout, stderr syncbuf.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"broker", "--dir", t.TempDir(), "--addr", "127.0.0.1:" + strconv.Itoa(port), "--user", "trainer"}, &stdout, &stderr)
	}()

	// Wait for the server, then use it.
	var nc *nats.Conn
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		nc, err = nats.Connect(url, nats.UserInfo("trainer", password))
		if err == nil {
			break
		}
		select {
		case code := <-done:
			t.Fatalf("broker exited with %d:\n%s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no broker at %s: %v\n%s", url, err, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := nc.Publish("x", []byte("pair")); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	nc.Close()

	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Fatalf("exit code %d:\n%s", code, stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("broker did not stop within 5s of the cancel")
	}
	logs := stderr.String()
	if !strings.Contains(logs, "broker ready") || !strings.Contains(logs, url) {
		t.Errorf("no ready line with the URL:\n%s", logs)
	}
	if strings.Contains(logs, password) {
		t.Errorf("the password reached the logs:\n%s", logs)
	}
}

func TestBrokerHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"broker", "--help"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit code %d:\n%s", code, stderr.String())
	}
	help := stdout.String() + stderr.String()
	for _, f := range []string{"dir", "addr", "monitor", "max-payload", "max-store", "max-memory", "user", "password", "token", "nkeys",
		"tls-cert", "tls-key", "tls-ca", "cluster-name", "cluster-addr", "routes", "name", envBrokerPassword, envBrokerToken} {
		if !strings.Contains(help, f) {
			t.Errorf("help lacks %q", f)
		}
	}
}

func TestBrokerUsage(t *testing.T) {
	for _, args := range [][]string{
		{"broker"}, // no --dir
		{"broker", "--dir", t.TempDir(), "--addr", "nohost"},
		{"broker", "--dir", t.TempDir(), "--user", "u", "--password", "p", "--token", "t"},
		{"broker", "--dir", t.TempDir(), "--max-payload", "lots"},
		{"broker", "--dir", t.TempDir(), "--cluster-addr", "127.0.0.1:0"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(t.Context(), args, &stdout, &stderr); code != exitUsage {
			t.Errorf("%q: exit code %d, want %d:\n%s", args, code, exitUsage, stderr.String())
		}
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]int64{"8388608": 8 << 20, "8MiB": 8 << 20, "512 KiB": 512 << 10, "1gib": 1 << 30, "100B": 100} {
		var b byteSize
		if err := b.Set(in); err != nil || int64(b) != want {
			t.Errorf("%q: %d, %v; want %d", in, b, err, want)
		}
	}
	var b byteSize
	if b.Set("8MB") == nil || b.Set("-1") == nil {
		t.Error("bad sizes accepted")
	}
}

// TestBrokerSecureByDefault: without --addr the broker listens on the
// loopback interface only; on any other address it refuses to run without
// client authentication unless --insecure says so.
func TestBrokerSecureByDefault(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.10:0"} {
		var stdout, stderr syncbuf.Buffer
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second) // a broker that starts runs until then
		code := run(ctx, []string{"broker", "--dir", t.TempDir(), "--addr", addr}, &stdout, &stderr)
		cancel()
		if code != exitUsage || !strings.Contains(stderr.String(), "--insecure") || !strings.Contains(stderr.String(), "--user") {
			t.Errorf("--addr %s without auth: exit %d, want %d and a message naming --insecure and the auth flags:\n%s", addr, code, exitUsage, stderr.String())
		}
	}
	start := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var stdout, stderr syncbuf.Buffer
		done := make(chan int, 1)
		go func() { done <- run(ctx, append([]string{"broker", "--dir", t.TempDir()}, args...), &stdout, &stderr) }()
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(stderr.String(), "broker ready") {
			select {
			case code := <-done:
				t.Fatalf("%q exited with %d:\n%s", args, code, stderr.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("%q: not ready:\n%s", args, stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
		<-done
		return stderr.String()
	}
	// The default address is loopback (port 4222 may be taken here: the
	// listen address is what matters, so a free port is given alone).
	if logs := start("--addr", "127.0.0.1:0"); !strings.Contains(logs, "listen=127.0.0.1:") {
		t.Errorf("no loopback listen address in:\n%s", logs)
	}
	if got := defaultBrokerAddr; !strings.HasPrefix(got, "127.0.0.1:") {
		t.Errorf("the default --addr is %s, want the loopback interface", got)
	}
	logs := start("--addr", "0.0.0.0:0", "--insecure")
	if !strings.Contains(logs, "listen=0.0.0.0:") || !strings.Contains(logs, "no credentials") {
		t.Errorf("--insecure on every interface: no warning in:\n%s", logs)
	}
}
