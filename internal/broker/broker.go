// Package broker runs an embedded, in-process NATS server with JetStream, so
// that pdmflow can stream training pairs without an external NATS install:
// in tests (random ports, a temporary store), on one machine, or as the
// `pdmflow broker` command for several hosts.
//
// The server never installs signal handlers (nats-server's own handlers
// would call os.Exit on SIGINT/SIGTERM) and never writes to stderr: its log
// lines go to the slog.Logger in Options, or nowhere.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// DefaultMaxPayload is the default largest message: pdmflow messages are
// Arrow batches of 1 to 4 MiB. nats-server's own default is 1 MiB, and it
// warns above 8 MiB.
const DefaultMaxPayload = 8 << 20

// DefaultStartTimeout bounds how long Start waits for the server to accept
// clients (this includes recovering an existing JetStream store).
const DefaultStartTimeout = 60 * time.Second

// abandonAfter is how long a failed Start waits for the server's own start
// to return before leaving it to stop in the background.
const abandonAfter = 10 * time.Second

// Options configure an embedded server. Only Dir is required.
//
// Ports: -1 picks a free port (tests); 0 means the NATS default (4222) for
// Port and "off" for MonitorPort and ClusterPort.
type Options struct {
	Dir         string // JetStream file store directory (required); created if missing
	Host        string // client listen host; default "127.0.0.1" ("0.0.0.0" for all interfaces)
	Port        int    // client port: -1 random, 0 → 4222
	MonitorHost string // HTTP monitoring host; default Host
	MonitorPort int    // HTTP monitoring (/varz, /jsz, /healthz): 0 off, -1 random
	MaxPayload  int32  // largest message in bytes; default DefaultMaxPayload
	MaxStore    int64  // JetStream file storage limit in bytes; 0 → server default (a share of the disk)
	MaxMemory   int64  // JetStream memory storage limit in bytes; 0 → server default (a share of RAM)
	ServerName  string // shown to clients and in monitoring; must be unique and stable in a cluster

	// Client authentication, at most one of: User and Password; Token;
	// NKeys (public user nkeys, "U..."). None: clients need no credentials.
	User, Password string
	Token          string
	NKeys          []string
	// AuthFile is a nats-server config file holding an authorization
	// block: several users, each with its password (usually "$VAR", read
	// from the environment) and its publish and subscribe permissions, as
	// upstream NATS reads it (deploy/compose/nats/permissions.conf). Only
	// its users and nkeys are used; it excludes the other methods.
	AuthFile string

	// TLS for clients: CertFile and KeyFile (PEM); with CAFile, clients must
	// present a certificate signed by that CA.
	CertFile, KeyFile, CAFile string

	// Cluster: ClusterPort != 0 (-1 random) opens the route listener on
	// ClusterHost (default Host); Routes are the other servers' route URLs,
	// nats-route://host:port. Routes are neither authenticated nor encrypted:
	// keep the cluster port on a private network.
	ClusterName string
	ClusterHost string
	ClusterPort int
	Routes      []string

	// StartTimeout bounds Start's wait for the server to accept clients;
	// default DefaultStartTimeout. A deadline on Start's ctx also bounds it.
	StartTimeout time.Duration

	// Log receives the server's log lines (notice → info, warn, error, debug
	// when the handler is enabled for debug). nil: silent.
	Log *slog.Logger
}

// Broker is a running embedded server.
type Broker struct {
	srv  *server.Server
	tls  bool
	once sync.Once
}

// Start starts an embedded server and waits until it accepts clients with
// JetStream enabled. It returns an error, not a hang, when the server cannot
// come up in time (StartTimeout or ctx), or when it fails to start (a port in
// use, a store that cannot be opened, ...).
func Start(ctx context.Context, o Options) (*Broker, error) {
	sopts, isTLS, err := o.serverOptions()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("broker: start: %w", err)
	}
	srv, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	sl := newServerLog(o.Log)
	srv.SetLogger(sl, sl.debugEnabled(), false)

	timeout := o.StartTimeout
	if timeout <= 0 {
		timeout = DefaultStartTimeout
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()

	// Start runs the whole start-up synchronously (JetStream store recovery
	// included) and returns early, after a Fatalf, when something fails.
	started := make(chan struct{})
	go func() {
		defer close(started)
		srv.Start()
	}()
	// fail stops the server and returns err. Stopping a server whose Start
	// is still running races inside nats-server, so fail first lets Start
	// return (for up to abandonAfter); past that, the server is stopped in
	// the background, once Start returns.
	fail := func(err error) (*Broker, error) {
		select {
		case <-started:
		case <-time.After(abandonAfter):
			go func() {
				<-started
				srv.Shutdown()
				srv.WaitForShutdown()
			}()
			return nil, fmt.Errorf("%w (the server is still starting; it will be stopped when it has)", err)
		}
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, err
	}

	select {
	case <-started:
	case <-sl.fatal:
		return fail(fmt.Errorf("broker: %w", sl.err))
	case <-ctx.Done():
		return fail(fmt.Errorf("broker: start: %w", ctx.Err()))
	case <-timer.C:
		return fail(fmt.Errorf("broker: the server did not start within %s", timeout))
	}
	if err := sl.fatalErr(); err != nil {
		return fail(fmt.Errorf("broker: %w", err))
	}
	// The route listener opens in a goroutine of its own after Start.
	for !srv.ReadyForConnections(20 * time.Millisecond) {
		select {
		case <-sl.fatal:
			return fail(fmt.Errorf("broker: %w", sl.err))
		case <-ctx.Done():
			return fail(fmt.Errorf("broker: start: %w", ctx.Err()))
		case <-timer.C:
			return fail(fmt.Errorf("broker: the server did not accept connections within %s", timeout))
		default:
		}
	}
	if !srv.JetStreamEnabled() {
		return fail(errors.New("broker: the server started without JetStream"))
	}
	return &Broker{srv: srv, tls: isTLS}, nil
}

// ClientURL is the URL clients on this machine connect to:
// nats://127.0.0.1:PORT, tls://... with TLS. A server listening on all
// interfaces is reached through the loopback address. It has no credentials.
func (b *Broker) ClientURL() string {
	a, ok := b.srv.Addr().(*net.TCPAddr)
	if !ok {
		return ""
	}
	scheme := "nats"
	if b.tls {
		scheme = "tls"
	}
	return scheme + "://" + reachable(a)
}

// MonitorURL is the HTTP monitoring base URL (http://host:port), or "" when
// monitoring is off.
func (b *Broker) MonitorURL() string {
	a := b.srv.MonitorAddr()
	if a == nil {
		return ""
	}
	return "http://" + reachable(a)
}

// ClusterURL is this server's route URL (nats-route://host:port) for the
// Routes of other servers, or "" without a cluster.
func (b *Broker) ClusterURL() string {
	a := b.srv.ClusterAddr()
	if a == nil {
		return ""
	}
	return "nats-route://" + reachable(a)
}

// Server is the underlying nats-server.
func (b *Broker) Server() *server.Server { return b.srv }

// Shutdown stops the server gracefully (clients are disconnected, the
// JetStream store is flushed and closed) and waits until it is down. It may
// be called more than once and from several goroutines.
func (b *Broker) Shutdown() {
	b.once.Do(func() {
		b.srv.Shutdown()
		b.srv.WaitForShutdown()
	})
}

// reachable is host:port of a listener, with an unspecified address
// (0.0.0.0, ::) replaced by loopback.
func reachable(a *net.TCPAddr) string {
	ip := a.IP
	switch {
	case ip == nil || ip.IsUnspecified() && ip.To4() != nil:
		ip = net.IPv4(127, 0, 0, 1)
	case ip.IsUnspecified():
		ip = net.IPv6loopback
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(a.Port))
}

// serverOptions checks o and turns it into nats-server options.
func (o Options) serverOptions() (*server.Options, bool, error) {
	if o.Dir == "" {
		return nil, false, errors.New("broker: Options.Dir (the JetStream store directory) is required")
	}
	host := o.Host
	if host == "" {
		host = "127.0.0.1"
	}
	for name, p := range map[string]int{"Port": o.Port, "MonitorPort": o.MonitorPort, "ClusterPort": o.ClusterPort} {
		if p < -1 || p > 65535 {
			return nil, false, fmt.Errorf("broker: Options.%s %d out of range (-1 for a random port)", name, p)
		}
	}
	if o.MaxPayload < 0 || o.MaxStore < 0 || o.MaxMemory < 0 {
		return nil, false, errors.New("broker: MaxPayload, MaxStore and MaxMemory must not be negative")
	}
	if strings.ContainsAny(o.ServerName, " \t\n") {
		return nil, false, fmt.Errorf("broker: server name %q contains spaces", o.ServerName)
	}
	so := &server.Options{
		ServerName:             o.ServerName,
		Host:                   host,
		Port:                   o.Port,
		HTTPHost:               o.MonitorHost,
		HTTPPort:               o.MonitorPort,
		MaxPayload:             o.MaxPayload,
		JetStream:              true,
		StoreDir:               o.Dir,
		JetStreamMaxStore:      o.MaxStore,
		JetStreamMaxMemory:     o.MaxMemory,
		NoSigs:                 true, // nats-server would os.Exit on SIGINT/SIGTERM
		NoLog:                  true, // no stderr logger; Start sets ours
		DisableJetStreamBanner: true,
	}
	if so.MaxPayload == 0 {
		so.MaxPayload = DefaultMaxPayload
	}
	if int64(so.MaxPayload) > server.MAX_PENDING_SIZE {
		// The server refuses a max payload above the per-client pending limit.
		so.MaxPending = int64(so.MaxPayload)
	}

	// Authentication.
	methods := 0
	if o.User != "" || o.Password != "" {
		methods++
		if o.User == "" || o.Password == "" {
			return nil, false, errors.New("broker: User and Password go together")
		}
		so.Username, so.Password = o.User, o.Password
	}
	if o.Token != "" {
		methods++
		so.Authorization = o.Token
	}
	if len(o.NKeys) > 0 {
		methods++
		for _, k := range o.NKeys {
			if !nkeys.IsValidPublicUserKey(k) {
				if strings.HasPrefix(k, "S") {
					return nil, false, errors.New("broker: NKeys holds a seed: give the public user key (U...), never the seed")
				}
				return nil, false, fmt.Errorf("broker: %q is not a public user nkey (U...)", k)
			}
			so.Nkeys = append(so.Nkeys, &server.NkeyUser{Nkey: k})
		}
	}
	if o.AuthFile != "" {
		methods++
		users, nk, err := readAuthFile(o.AuthFile)
		if err != nil {
			return nil, false, err
		}
		so.Users, so.Nkeys = users, nk
	}
	if methods > 1 {
		return nil, false, errors.New("broker: give at most one client auth method: User and Password, Token, NKeys, or AuthFile")
	}

	// TLS.
	isTLS := o.CertFile != "" || o.KeyFile != ""
	if isTLS {
		if o.CertFile == "" || o.KeyFile == "" {
			return nil, false, errors.New("broker: TLS needs both CertFile and KeyFile")
		}
		tc := &server.TLSConfigOpts{
			CertFile: o.CertFile,
			KeyFile:  o.KeyFile,
			CaFile:   o.CAFile,
			Verify:   o.CAFile != "",
			Timeout:  2,
		}
		cfg, err := server.GenTLSConfig(tc)
		if err != nil {
			return nil, false, fmt.Errorf("broker: TLS: %w", err)
		}
		so.TLS, so.TLSVerify, so.TLSConfig, so.TLSTimeout = true, tc.Verify, cfg, tc.Timeout
		so.TLSCert, so.TLSKey, so.TLSCaCert = o.CertFile, o.KeyFile, o.CAFile
	} else if o.CAFile != "" {
		return nil, false, errors.New("broker: CAFile needs CertFile and KeyFile")
	}

	// Cluster.
	if o.ClusterPort == 0 {
		if o.ClusterName != "" || o.ClusterHost != "" || len(o.Routes) > 0 {
			return nil, false, errors.New("broker: ClusterName, ClusterHost and Routes need a ClusterPort (-1 for a random one)")
		}
	} else {
		ch := o.ClusterHost
		if ch == "" {
			ch = host
		}
		so.Cluster = server.ClusterOpts{Name: o.ClusterName, Host: ch, Port: o.ClusterPort}
		for _, r := range o.Routes {
			u, err := parseRoute(r)
			if err != nil {
				return nil, false, err
			}
			so.Routes = append(so.Routes, u)
		}
	}
	return so, isTLS, nil
}

func parseRoute(r string) (*url.URL, error) {
	r = strings.TrimSpace(r)
	u, err := url.Parse(r)
	if err != nil {
		// url.Error repeats the whole URL, credentials included.
		return nil, fmt.Errorf("broker: route %q is not a URL", redactRoute(r))
	}
	switch u.Scheme {
	case "nats-route", "nats", "tls":
	default:
		return nil, fmt.Errorf("broker: route %q: want nats-route://host:port", u.Redacted())
	}
	if u.Hostname() == "" || u.Port() == "" {
		return nil, fmt.Errorf("broker: route %q: want nats-route://host:port", u.Redacted())
	}
	return u, nil
}

// redactRoute hides the userinfo of a string that may not parse as a URL.
func redactRoute(r string) string {
	if i := strings.LastIndex(r, "@"); i >= 0 {
		if j := strings.Index(r, "://"); j >= 0 && j < i {
			return r[:j+3] + "xxxxx" + r[i:]
		}
		return "xxxxx" + r[i:]
	}
	return r
}

// readAuthFile reads the users and nkeys of a nats-server config file's
// authorization block. Every user needs a password: one whose "$VAR" is not
// set in the environment is an error, naming the user, not the variable's
// value.
func readAuthFile(path string) ([]*server.User, []*server.NkeyUser, error) {
	fo, err := server.ProcessConfigFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("broker: auth file: %w", err)
	}
	if len(fo.Users) == 0 && len(fo.Nkeys) == 0 {
		return nil, nil, fmt.Errorf("broker: auth file %s defines no users (want an authorization { users = [...] } block)", path)
	}
	if fo.Username != "" || fo.Authorization != "" {
		return nil, nil, fmt.Errorf("broker: auth file %s: use authorization { users = [...] }, not a single user or token", path)
	}
	for _, u := range fo.Users {
		if u.Password == "" {
			return nil, nil, fmt.Errorf("broker: auth file %s: user %q has no password (is its environment variable set?)", path, u.Username)
		}
	}
	return fo.Users, fo.Nkeys, nil
}
