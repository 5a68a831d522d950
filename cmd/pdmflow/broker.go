package main

import (
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/pdmflow/pdmflow/internal/broker"
)

// Environment variables for the broker's secrets, so that they need not be
// on the command line (visible to every user in the process list).
const (
	envBrokerPassword = "PDMFLOW_BROKER_PASSWORD"
	envBrokerToken    = "PDMFLOW_BROKER_TOKEN"
)

// defaultBrokerAddr is where the broker listens unless --addr says
// otherwise: this host only.
const defaultBrokerAddr = "127.0.0.1:4222"

func cmdBroker(ctx context.Context, e *env, args []string) error {
	fs, c := newFlags(e, "broker", "broker --dir DIR [--addr HOST:PORT] [--monitor [HOST:]PORT] [--user U --password P | --token T | --nkeys KEYS | --auth FILE | --insecure] [--tls-cert F --tls-key F [--tls-ca F]] [--cluster-name N --cluster-addr HOST:PORT --routes URLS --name N]\n\n"+
		"It listens on 127.0.0.1 unless --addr says otherwise, and on any other address only with client\n"+
		"credentials (or --insecure).")
	o := broker.Options{}
	fs.StringVar(&o.Dir, "dir", "", "JetStream store directory (created if missing; keep it across restarts)")
	addr := fs.String("addr", defaultBrokerAddr, "client listen address HOST:PORT (port 0: any free port)")
	monitor := fs.String("monitor", "", "HTTP monitoring (/healthz, /varz, /jsz) on PORT or HOST:PORT; off when empty")
	maxPayload := byteSize(broker.DefaultMaxPayload)
	fs.Var(&maxPayload, "max-payload", "largest message in bytes (suffixes KiB, MiB, GiB allowed)")
	var maxStore, maxMemory byteSize
	fs.Var(&maxStore, "max-store", "JetStream file storage limit in bytes (0: a share of the disk)")
	fs.Var(&maxMemory, "max-memory", "JetStream memory storage limit in bytes (0: a share of RAM)")
	fs.StringVar(&o.User, "user", "", "user clients must authenticate as (with --password)")
	fs.StringVar(&o.Password, "password", "", "password of --user (or env "+envBrokerPassword+", which keeps it off the command line)")
	fs.StringVar(&o.Token, "token", "", "token clients must present (or env "+envBrokerToken+")")
	nkeyList := fs.String("nkeys", "", "comma-separated public user nkeys (U...) allowed to connect")
	fs.StringVar(&o.CertFile, "tls-cert", "", "PEM server certificate: clients must use TLS (tls://)")
	fs.StringVar(&o.KeyFile, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&o.CAFile, "tls-ca", "", "PEM CA: clients must present a certificate it signed")
	fs.StringVar(&o.ClusterName, "cluster-name", "", "cluster name, the same on every node")
	clusterAddr := fs.String("cluster-addr", "", "route listen address HOST:PORT for the other nodes (enables clustering)")
	routes := fs.String("routes", "", "comma-separated route URLs of all nodes, this one included (nats-route://host:port)")
	fs.StringVar(&o.ServerName, "name", "", "server name; required in a cluster, unique and the same across restarts")
	fs.StringVar(&o.AuthFile, "auth", "", "nats-server config file with an authorization block: users with their passwords ($VAR from the environment) and permissions (deploy/compose/nats/permissions.conf)")
	insecure := fs.Bool("insecure", false, "allow clients without credentials on a non-loopback --addr (anyone who reaches the port can read and write every stream)")
	if err := parse(fs, c, e, args); err != nil {
		return err
	}
	if err := required(map[string]string{"dir": o.Dir}); err != nil {
		return err
	}
	if o.Password == "" {
		o.Password = os.Getenv(envBrokerPassword)
	}
	if o.Token == "" {
		o.Token = os.Getenv(envBrokerToken)
	}

	var err error
	if o.Host, o.Port, err = splitAddr("addr", *addr); err != nil {
		return err
	}
	switch m := *monitor; {
	case m == "":
	case !strings.Contains(m, ":"): // a bare port: on the client host
		if _, o.MonitorPort, err = splitAddr("monitor", "127.0.0.1:"+m); err != nil {
			return err
		}
	default:
		if o.MonitorHost, o.MonitorPort, err = splitAddr("monitor", m); err != nil {
			return err
		}
	}
	if maxPayload < 1 || maxPayload > math.MaxInt32 {
		return fmt.Errorf("%w: --max-payload must be between 1 and %d bytes", errUsage, math.MaxInt32)
	}
	o.MaxPayload, o.MaxStore, o.MaxMemory = int32(maxPayload), int64(maxStore), int64(maxMemory)

	auth := "none"
	methods := 0
	if o.User != "" || o.Password != "" {
		if o.User == "" || o.Password == "" {
			return fmt.Errorf("%w: --user needs --password (or %s), and --password needs --user", errUsage, envBrokerPassword)
		}
		methods++
		auth = "user/password"
	}
	if o.Token != "" {
		methods++
		auth = "token"
	}
	for _, k := range strings.Split(*nkeyList, ",") {
		if k = strings.TrimSpace(k); k != "" {
			o.NKeys = append(o.NKeys, k)
		}
	}
	if len(o.NKeys) > 0 {
		methods++
		auth = "nkeys"
	}
	if o.AuthFile != "" {
		methods++
		auth = "users of " + o.AuthFile
	}
	if methods > 1 {
		return fmt.Errorf("%w: give one of --user/--password, --token, --nkeys or --auth (%s and %s count too)", errUsage, envBrokerPassword, envBrokerToken)
	}
	if methods == 0 && !isLoopback(o.Host) && !*insecure {
		return fmt.Errorf("%w: --addr %s is reachable from other hosts and clients would need no credentials: give --user (password in %s), --token, --nkeys or --auth, or --insecure to run without",
			errUsage, *addr, envBrokerPassword)
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return fmt.Errorf("%w: --tls-cert and --tls-key go together", errUsage)
	}
	if o.CAFile != "" && o.CertFile == "" {
		return fmt.Errorf("%w: --tls-ca needs --tls-cert and --tls-key", errUsage)
	}

	if *clusterAddr != "" {
		if o.ClusterHost, o.ClusterPort, err = splitAddr("cluster-addr", *clusterAddr); err != nil {
			return err
		}
		if o.ClusterName == "" || o.ServerName == "" || *routes == "" {
			return fmt.Errorf("%w: a cluster needs --cluster-name, --name (unique per node) and --routes (every node's route URL, this one's included)", errUsage)
		}
		for _, r := range strings.Split(*routes, ",") {
			if r = strings.TrimSpace(r); r != "" {
				o.Routes = append(o.Routes, r)
			}
		}
	} else if o.ClusterName != "" || *routes != "" {
		return fmt.Errorf("%w: --cluster-name and --routes need --cluster-addr", errUsage)
	}

	o.Log = e.log
	b, err := broker.Start(ctx, o)
	if err != nil {
		return err
	}
	defer b.Shutdown()

	attrs := []any{
		"url", b.ClientURL(),
		"listen", net.JoinHostPort(o.Host, strconv.Itoa(b.Server().Addr().(*net.TCPAddr).Port)),
		"store", o.Dir,
		"auth", auth,
		"tls", o.CertFile != "",
		"max_payload", int64(o.MaxPayload),
	}
	if u := b.MonitorURL(); u != "" {
		attrs = append(attrs, "monitor", u)
	}
	if u := b.ClusterURL(); u != "" {
		attrs = append(attrs, "cluster", o.ClusterName, "route", u)
	}
	e.log.Info("broker ready", attrs...)
	if auth == "none" && !isLoopback(o.Host) {
		e.log.Warn("clients need no credentials: anyone who reaches this port can read and write every stream; use --user/--password, --token or --nkeys", "listen", o.Host)
	}
	if len(o.Routes) > 0 {
		e.log.Warn("cluster routes are neither authenticated nor encrypted: keep the cluster port on a private network")
	}

	<-ctx.Done()
	e.log.Info("broker shutting down")
	b.Shutdown()
	e.log.Info("broker stopped")
	return nil
}

// splitAddr parses HOST:PORT for a listener: an empty host is every
// interface, port 0 any free port.
func splitAddr(flagName, s string) (string, int, error) {
	host, ps, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, fmt.Errorf("%w: --%s %q: want HOST:PORT", errUsage, flagName, s)
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("%w: --%s %q: bad port", errUsage, flagName, s)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	if port == 0 {
		port = -1 // broker.Options: -1 is a free port, 0 the default
	}
	return host, port, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// byteSize is a flag of bytes: an integer, optionally with a KiB, MiB,
// GiB or TiB suffix.
type byteSize int64

func (b *byteSize) String() string { return strconv.FormatInt(int64(*b), 10) }

// Type names the value in help.
func (b *byteSize) Type() string { return "bytes" }

func (b *byteSize) Set(s string) error {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40}, {"b", 1}} {
		if strings.HasSuffix(strings.ToLower(s), u.suffix) {
			s, mult = strings.TrimSpace(s[:len(s)-len(u.suffix)]), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return fmt.Errorf("want a number of bytes, e.g. 8388608 or 8MiB")
	}
	*b = byteSize(n * mult)
	return nil
}
