package natsconn

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	flag "github.com/spf13/pflag"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/pdmflow/pdmflow/internal/broker"
	"github.com/pdmflow/pdmflow/internal/syncbuf"
)

const (
	testPassword = "pw-Zq8vX3LmT9"
	testToken    = "tok-Hn4Rb7Yc2W"
)

func bufLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func startBroker(t *testing.T, o broker.Options) *broker.Broker {
	t.Helper()
	o.Dir, o.Port = t.TempDir(), -1
	b, err := broker.Start(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Shutdown)
	return b
}

func connectOK(t *testing.T, c Config, log *slog.Logger) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	nc, err := c.Connect(ctx, log)
	if err != nil {
		t.Fatalf("connect with %s: %v", c.Redacted(), err)
	}
	defer nc.Close()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

func connectRefused(t *testing.T, c Config, log *slog.Logger) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	nc, err := c.Connect(ctx, log)
	if err == nil {
		nc.Close()
		t.Fatalf("connect with %s: no error", c.Redacted())
	}
	return err
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUserPassword(t *testing.T) {
	var logs syncbuf.Buffer
	log := bufLogger(&logs)
	b := startBroker(t, broker.Options{User: "trainer", Password: testPassword, Log: log})

	connectOK(t, Config{URL: b.ClientURL(), User: "trainer", Password: testPassword, Name: "test"}, log)

	err := connectRefused(t, Config{URL: b.ClientURL(), User: "trainer", Password: testPassword + "x"}, log)
	if !errors.Is(err, nats.ErrAuthorization) || !strings.Contains(err.Error(), "refused the credentials") {
		t.Fatalf("wrong password: %v", err)
	}
	// Credentials in the URL work, and are hidden.
	u := strings.Replace(b.ClientURL(), "nats://", "nats://trainer:"+testPassword+"@", 1)
	connectOK(t, Config{URL: u}, log)
	if r := (Config{URL: u}).Redacted(); strings.Contains(r, testPassword) || !strings.Contains(r, "trainer:xxxxx@") {
		t.Fatalf("Redacted: %s", r)
	}
	bad := strings.Replace(b.ClientURL(), "nats://", "nats://trainer:"+testPassword+"x@", 1)
	if err := connectRefused(t, Config{URL: bad}, log); strings.Contains(err.Error(), testPassword) {
		t.Fatalf("the error shows the password: %v", err)
	}
	if l := logs.String(); strings.Contains(l, testPassword) {
		t.Fatalf("the password reached the logs:\n%s", l)
	}
}

func TestToken(t *testing.T) {
	var logs syncbuf.Buffer
	log := bufLogger(&logs)
	b := startBroker(t, broker.Options{Token: testToken, Log: log})
	connectOK(t, Config{URL: b.ClientURL(), Token: testToken}, log)
	if err := connectRefused(t, Config{URL: b.ClientURL(), Token: "nope"}, log); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("wrong token: %v", err)
	}
	if err := connectRefused(t, Config{URL: b.ClientURL()}, log); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("no token: %v", err)
	}
	// A token in the URL is the user part: Redacted hides it too.
	u := strings.Replace(b.ClientURL(), "nats://", "nats://"+testToken+"@", 1)
	connectOK(t, Config{URL: u}, log)
	if r := (Config{URL: u}).Redacted(); strings.Contains(r, testToken) || !strings.Contains(r, "token in URL") {
		t.Fatalf("Redacted: %s", r)
	}
	if r := (Config{URL: b.ClientURL(), Token: testToken}).Redacted(); strings.Contains(r, testToken) || !strings.Contains(r, "auth=token") {
		t.Fatalf("Redacted: %s", r)
	}
	if l := logs.String(); strings.Contains(l, testToken) {
		t.Fatalf("the token reached the logs:\n%s", l)
	}
}

func TestNKey(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	other, _ := nkeys.CreateUser()
	otherSeed, _ := other.Seed()

	var logs syncbuf.Buffer
	log := bufLogger(&logs)
	b := startBroker(t, broker.Options{NKeys: []string{pub}, Log: log})
	c := Config{URL: b.ClientURL(), NKeySeedFile: writeFile(t, "user.nk", seed)}
	connectOK(t, c, log)
	if err := connectRefused(t, Config{URL: b.ClientURL(), NKeySeedFile: writeFile(t, "other.nk", otherSeed)}, log); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("unknown nkey: %v", err)
	}
	for _, s := range []string{c.Redacted(), logs.String()} {
		if strings.Contains(s, string(seed)) || strings.Contains(s, string(otherSeed)) {
			t.Fatalf("a seed leaked:\n%s", s)
		}
	}
}

// tlsFiles writes a self-signed CA, a server certificate for 127.0.0.1 and
// a client certificate, all PEM, and returns their paths.
type tlsFiles struct{ ca, serverCert, serverKey, clientCert, clientKey string }

func makeTLS(t *testing.T) tlsFiles {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	keyDER := func(k *ecdsa.PrivateKey) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	now := time.Now()
	caKey := newKey()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "pdmflow test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
		k := newKey()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
			DNSNames:     []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, k
	}
	sDER, sKey := leaf(2, "localhost", x509.ExtKeyUsageServerAuth)
	cDER, cKey := leaf(3, "trainer", x509.ExtKeyUsageClientAuth)
	return tlsFiles{
		ca:         write("ca.pem", "CERTIFICATE", caDER),
		serverCert: write("server.pem", "CERTIFICATE", sDER),
		serverKey:  write("server-key.pem", "PRIVATE KEY", keyDER(sKey)),
		clientCert: write("client.pem", "CERTIFICATE", cDER),
		clientKey:  write("client-key.pem", "PRIVATE KEY", keyDER(cKey)),
	}
}

func TestTLS(t *testing.T) {
	f := makeTLS(t)
	log := bufLogger(io.Discard)

	// Server TLS; the client verifies the server with the CA.
	b := startBroker(t, broker.Options{CertFile: f.serverCert, KeyFile: f.serverKey, Token: testToken})
	if !strings.HasPrefix(b.ClientURL(), "tls://127.0.0.1:") {
		t.Fatalf("ClientURL %q", b.ClientURL())
	}
	connectOK(t, Config{URL: b.ClientURL(), TLSCAFile: f.ca, Token: testToken}, log)
	// Without the CA the self-signed chain is not trusted.
	if err := connectRefused(t, Config{URL: b.ClientURL(), Token: testToken}, log); !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("unknown CA: %v", err)
	}

	// Mutual TLS: the server verifies client certificates with the CA.
	m := startBroker(t, broker.Options{CertFile: f.serverCert, KeyFile: f.serverKey, CAFile: f.ca})
	connectOK(t, Config{URL: m.ClientURL(), TLSCAFile: f.ca, TLSCertFile: f.clientCert, TLSKeyFile: f.clientKey}, log)
	connectRefused(t, Config{URL: m.ClientURL(), TLSCAFile: f.ca}, log)
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	seed := writeFile(t, "seed.nk", []byte("SU..."))
	missing := filepath.Join(dir, "missing.pem")
	for name, tc := range map[string]struct {
		c    Config
		want string // in the error; "" for no error
	}{
		"default":            {Config{}, ""},
		"several URLs":       {Config{URL: "nats://a:4222, tls://b:4222,c"}, ""},
		"user and token":     {Config{User: "u", Password: testPassword, Token: testToken}, "user/password and token"},
		"token and nkey":     {Config{Token: testToken, NKeySeedFile: seed}, "token and nkey"},
		"URL creds and user": {Config{URL: "nats://u:" + testPassword + "@h:4222", User: "v", Password: "w"}, "auth method"},
		"user no password":   {Config{User: "u"}, "no password"},
		"password no user":   {Config{Password: testPassword}, "without a user"},
		"missing nkey":       {Config{NKeySeedFile: missing}, "nkey seed file"},
		"missing creds":      {Config{CredsFile: missing}, "creds file"},
		"missing CA":         {Config{TLSCAFile: missing}, "CA file"},
		"cert no key":        {Config{TLSCertFile: seed}, "go together"},
		"dir as file":        {Config{TLSCAFile: dir}, "not a regular file"},
		"bad scheme":         {Config{URL: "http://h:80"}, "scheme"},
		"empty entry":        {Config{URL: "nats://a:1,,nats://b:2"}, "empty"},
		"bad URL":            {Config{URL: "nats://u:" + testPassword + "@h:port"}, "does not parse"},
	} {
		err := tc.c.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: got %v, want an error with %q", name, err, tc.want)
		case err != nil && (strings.Contains(err.Error(), testPassword) || strings.Contains(err.Error(), testToken)):
			t.Errorf("%s: the error shows a secret: %v", name, err)
		}
		if r := tc.c.Redacted(); strings.Contains(r, testPassword) || strings.Contains(r, testToken) {
			t.Errorf("%s: Redacted shows a secret: %s", name, r)
		}
	}
	// Connect validates first.
	if _, err := (Config{Token: testToken, User: "u", Password: "p"}).Connect(t.Context(), nil); err == nil {
		t.Error("Connect accepted two auth methods")
	}
}

func TestRedacted(t *testing.T) {
	c := Config{URL: "nats://alice:" + testPassword + "@h1:4222,tls://h2", User: "", Name: "trainer-0"}
	r := c.Redacted()
	for _, want := range []string{"nats://alice:xxxxx@h1:4222", "tls://h2", "auth=user/password in URL", "name=trainer-0"} {
		if !strings.Contains(r, want) {
			t.Errorf("Redacted %q lacks %q", r, want)
		}
	}
	if r := (Config{}).Redacted(); !strings.Contains(r, DefaultURL) || !strings.Contains(r, "auth=none") {
		t.Errorf("Redacted of the zero Config: %q", r)
	}
	if r := (Config{User: "bob", Password: testPassword}).Redacted(); strings.Contains(r, testPassword) || !strings.Contains(r, "user=bob") {
		t.Errorf("Redacted: %q", r)
	}
}

func TestFromEnvPrecedence(t *testing.T) {
	t.Setenv(EnvURL, "nats://env:4222")
	t.Setenv(EnvUser, "env-user")
	t.Setenv(EnvPassword, testPassword)
	t.Setenv(EnvToken, "")
	t.Setenv(EnvCA, "/env/ca.pem")
	t.Setenv(EnvNKey, "")
	t.Setenv(EnvCreds, "")
	t.Setenv(EnvCert, "")
	t.Setenv(EnvKey, "")

	var c Config
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	c.AddFlags(fs)
	if err := fs.Parse([]string{"--nats-url", "nats://flag:4222", "--nats-user", "flag-user"}); err != nil {
		t.Fatal(err)
	}
	got := c.FromEnv()
	want := Config{URL: "nats://flag:4222", User: "flag-user", Password: testPassword, TLSCAFile: "/env/ca.pem"}
	if got != want {
		t.Fatalf("FromEnv:\n got %+v\nwant %+v", got, want)
	}
	// Every flag is there and names its env var.
	var help strings.Builder
	fs.SetOutput(&help)
	fs.PrintDefaults()
	for _, f := range []string{"nats-url", "nats-user", "nats-password", "nats-token", "nats-nkey", "nats-creds", "nats-ca", "nats-cert", "nats-key"} {
		fl := fs.Lookup(f)
		if fl == nil {
			t.Fatalf("no --%s", f)
		}
		if !strings.Contains(fl.Usage, "PDMFLOW_NATS_") {
			t.Errorf("--%s help does not name its env var: %q", f, fl.Usage)
		}
	}
	// Nothing set anywhere: the default URL, applied at connect time.
	t.Setenv(EnvURL, "")
	if u, _ := (Config{}).FromEnv().urls(); len(u) != 1 || u[0].u.String() != DefaultURL {
		t.Fatalf("default URL: %v", u)
	}
}

func TestConnectContext(t *testing.T) {
	// Nothing listens: the connect fails without hanging.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if _, err := (Config{URL: "nats://" + addr}).Connect(ctx, nil); err == nil {
		t.Fatal("connected to nothing")
	}
	if d := time.Since(t0); d > 3*time.Second {
		t.Fatalf("took %s", d)
	}

	// A server that accepts but never speaks: ctx bounds the wait.
	l, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	ctx, cancel = context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	t0 = time.Now()
	if _, err := (Config{URL: "nats://" + l.Addr().String()}).Connect(ctx, nil); err == nil {
		t.Fatal("connected to a silent server")
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Fatalf("silent server took %s", d)
	}

	// RetryOnFailedConnect from opts returns at once and connects later.
	b := startBroker(t, broker.Options{})
	var logs syncbuf.Buffer
	nc, err := (Config{URL: b.ClientURL()}).Connect(t.Context(), bufLogger(&logs), nats.RetryOnFailedConnect(true))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for !strings.Contains(logs.String(), "nats connected") {
		if time.Now().After(deadline) {
			t.Fatalf("no connect logged:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
