// Package natsconn configures and opens pdmflow's client connections to NATS
// (an external server or cluster, or `pdmflow broker`).
//
// Settings come, from highest precedence to lowest, from:
//
//  1. command-line flags (AddFlags),
//  2. environment variables PDMFLOW_NATS_*, then the nats CLI's NATS_URL,
//     NATS_CREDS, NATS_USER, NATS_PASSWORD, NATS_NKEY, NATS_CERT, NATS_KEY and
//     NATS_CA (FromEnv fills what flags left empty),
//  3. a config file (the caller fills what is still empty),
//  4. a nats CLI context (FromContext): --nats-context, $NATS_CONTEXT, or the
//     context the nats CLI has selected,
//  5. defaults (URL nats://127.0.0.1:4222, applied when connecting).
//
// So a command parses its flags, then calls FromEnv, then fills fields from
// its config file, then FromContext, then Validate and Connect. Secrets (passwords, tokens)
// are better given through the environment or files than on the command
// line, where other users can see them in the process list.
//
// Nothing this package logs or returns contains a password, a token or an
// nkey seed: use Redacted to describe a Config.
package natsconn

import (
	"context"
	"errors"
	flag "github.com/spf13/pflag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// DefaultURL is the server URL when none is configured.
const DefaultURL = "nats://127.0.0.1:4222"

// Connection defaults.
const (
	DefaultConnectTimeout   = 5 * time.Second
	DefaultReconnectWait    = 500 * time.Millisecond
	DefaultReconnectJitter  = 250 * time.Millisecond
	DefaultReconnectBufSize = 64 << 20 // room for a dozen MiB-sized messages while reconnecting
)

// Environment variables read by FromEnv.
const (
	EnvURL      = "PDMFLOW_NATS_URL"
	EnvUser     = "PDMFLOW_NATS_USER"
	EnvPassword = "PDMFLOW_NATS_PASSWORD"
	EnvToken    = "PDMFLOW_NATS_TOKEN"
	EnvNKey     = "PDMFLOW_NATS_NKEY"
	EnvCreds    = "PDMFLOW_NATS_CREDS"
	EnvCA       = "PDMFLOW_NATS_CA"
	EnvCert     = "PDMFLOW_NATS_CERT"
	EnvKey      = "PDMFLOW_NATS_KEY"
)

// Config is how to reach and authenticate to NATS.
type Config struct {
	URL            string // comma-separated server URLs; default DefaultURL
	User, Password string
	Token          string
	NKeySeedFile   string // file holding a user nkey seed (SU...)
	CredsFile      string // JWT creds file (decentralised auth)
	TLSCAFile      string // CA that signed the server certificates (PEM)
	TLSCertFile    string // client certificate (PEM), for servers that verify clients
	TLSKeyFile     string
	Name           string // client name shown by the server (connz)
	// Context names the nats CLI context FromContext reads (empty:
	// $NATS_CONTEXT, or the nats CLI's selected one); after FromContext,
	// the one it used.
	Context string
}

// AddFlags registers the --nats-* flags on fs, writing into c. The flags'
// defaults are empty so that FromEnv can tell what was not given.
func (c *Config) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.URL, "nats-url", c.URL, "NATS server URLs, comma-separated (env "+EnvURL+"; default "+DefaultURL+")")
	fs.StringVar(&c.User, "nats-user", c.User, "NATS user name (env "+EnvUser+")")
	fs.StringVar(&c.Password, "nats-password", c.Password, "NATS password; prefer the env var, the command line is visible to other users (env "+EnvPassword+")")
	fs.StringVar(&c.Token, "nats-token", c.Token, "NATS auth token; prefer the env var (env "+EnvToken+")")
	fs.StringVar(&c.NKeySeedFile, "nats-nkey", c.NKeySeedFile, "file holding a NATS user nkey seed (env "+EnvNKey+")")
	fs.StringVar(&c.CredsFile, "nats-creds", c.CredsFile, "NATS JWT credentials file (env "+EnvCreds+")")
	fs.StringVar(&c.TLSCAFile, "nats-ca", c.TLSCAFile, "PEM file of the CA that signed the NATS server certificate (env "+EnvCA+")")
	fs.StringVar(&c.TLSCertFile, "nats-cert", c.TLSCertFile, "PEM client certificate for NATS TLS (env "+EnvCert+")")
	fs.StringVar(&c.TLSKeyFile, "nats-key", c.TLSKeyFile, "PEM private key of --nats-cert (env "+EnvKey+")")
	fs.StringVar(&c.Context, "nats-context", c.Context, "nats CLI context to take what is not set otherwise from (env "+EnvContext+"; default the nats CLI's selected context)")
}

// FromEnv returns c with its empty fields filled from the PDMFLOW_NATS_*
// environment variables, then from the nats CLI's (NATS_URL, NATS_CREDS,
// ...); fields already set (by flags) are kept.
func (c Config) FromEnv() Config {
	fill := func(dst *string, env string) {
		if *dst == "" {
			*dst = os.Getenv(env)
		}
	}
	fill(&c.URL, EnvURL)
	fill(&c.User, EnvUser)
	fill(&c.Password, EnvPassword)
	fill(&c.Token, EnvToken)
	fill(&c.NKeySeedFile, EnvNKey)
	fill(&c.CredsFile, EnvCreds)
	fill(&c.TLSCAFile, EnvCA)
	fill(&c.TLSCertFile, EnvCert)
	fill(&c.TLSKeyFile, EnvKey)
	for env, field := range natsCLIEnv {
		fill(field(&c), env)
	}
	return c
}

// serverURL is one entry of Config.URL.
type serverURL struct {
	u      *url.URL
	secure bool // tls:// or wss://
}

// urls parses Config.URL (or DefaultURL). Errors never repeat credentials.
func (c Config) urls() ([]serverURL, error) {
	raw := c.URL
	if strings.TrimSpace(raw) == "" {
		raw = DefaultURL
	}
	var out []serverURL
	for i, s := range strings.Split(raw, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			return nil, fmt.Errorf("natsconn: URL entry %d is empty", i+1)
		}
		if !strings.Contains(s, "://") {
			s = "nats://" + s // as nats.go does
		}
		u, err := url.Parse(s)
		if err != nil {
			// url.Error would repeat the URL, password included.
			return nil, fmt.Errorf("natsconn: URL entry %d (%s) does not parse", i+1, redactRaw(s))
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return nil, fmt.Errorf("natsconn: URL %s: scheme must be nats, tls, ws or wss", redactURL(u))
		}
		if u.Hostname() == "" {
			return nil, fmt.Errorf("natsconn: URL %s has no host", redactURL(u))
		}
		out = append(out, serverURL{u: u, secure: u.Scheme == "tls" || u.Scheme == "wss"})
	}
	return out, nil
}

// authMethods names the auth methods c uses, URL credentials included.
func (c Config) authMethods(urls []serverURL) []string {
	var m []string
	for _, s := range urls {
		if s.u.User != nil {
			if _, ok := s.u.User.Password(); ok {
				m = append(m, "user/password in URL")
			} else {
				m = append(m, "token in URL")
			}
			break
		}
	}
	if c.User != "" || c.Password != "" {
		m = append(m, "user/password")
	}
	if c.Token != "" {
		m = append(m, "token")
	}
	if c.NKeySeedFile != "" {
		m = append(m, "nkey")
	}
	if c.CredsFile != "" {
		m = append(m, "creds")
	}
	return m
}

// Validate checks that the URLs parse, that at most one auth method is
// given, and that the files named exist.
func (c Config) Validate() error {
	urls, err := c.urls()
	if err != nil {
		return err
	}
	if m := c.authMethods(urls); len(m) > 1 {
		return fmt.Errorf("natsconn: give one NATS auth method, not %s", strings.Join(m, " and "))
	}
	if c.User != "" && c.Password == "" {
		return fmt.Errorf("natsconn: NATS user %q has no password (--nats-password or %s)", c.User, EnvPassword)
	}
	if c.User == "" && c.Password != "" {
		return fmt.Errorf("natsconn: a NATS password without a user (--nats-user or %s)", EnvUser)
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return errors.New("natsconn: the NATS client certificate and key go together (--nats-cert and --nats-key)")
	}
	for _, f := range []struct{ what, path string }{
		{"nkey seed file", c.NKeySeedFile},
		{"creds file", c.CredsFile},
		{"TLS CA file", c.TLSCAFile},
		{"TLS certificate file", c.TLSCertFile},
		{"TLS key file", c.TLSKeyFile},
	} {
		if f.path == "" {
			continue
		}
		st, err := os.Stat(f.path)
		if err != nil {
			return fmt.Errorf("natsconn: NATS %s: %w", f.what, err)
		}
		if !st.Mode().IsRegular() {
			return fmt.Errorf("natsconn: NATS %s %s is not a regular file", f.what, f.path)
		}
	}
	return nil
}

// Redacted describes c for logs: the URLs with any password or token
// replaced by "xxxxx", the auth method, the TLS files and the client name.
func (c Config) Redacted() string {
	var b strings.Builder
	urls, err := c.urls()
	if err != nil {
		b.WriteString("url=(invalid)")
	} else {
		parts := make([]string, len(urls))
		for i, s := range urls {
			parts[i] = redactURL(s.u)
		}
		b.WriteString("url=" + strings.Join(parts, ","))
	}
	auth := "none"
	switch m := c.authMethods(urls); {
	case len(m) > 1:
		auth = "conflicting(" + strings.Join(m, ",") + ")"
	case len(m) == 1:
		auth = m[0]
	}
	b.WriteString(" auth=" + auth)
	if c.User != "" {
		b.WriteString(" user=" + c.User)
	}
	if c.NKeySeedFile != "" {
		b.WriteString(" nkey_file=" + c.NKeySeedFile)
	}
	if c.CredsFile != "" {
		b.WriteString(" creds_file=" + c.CredsFile)
	}
	if c.TLSCAFile != "" {
		b.WriteString(" tls_ca=" + c.TLSCAFile)
	}
	if c.TLSCertFile != "" {
		b.WriteString(" tls_cert=" + c.TLSCertFile)
	}
	if c.Name != "" {
		b.WriteString(" name=" + c.Name)
	}
	return b.String()
}

// redactURL prints u with the password, or a token given as the user
// name, replaced by xxxxx.
func redactURL(u *url.URL) string {
	if u.User == nil {
		return u.String()
	}
	v := *u
	if _, ok := u.User.Password(); ok {
		v.User = url.UserPassword(u.User.Username(), "xxxxx")
	} else {
		v.User = url.User("xxxxx")
	}
	return v.String()
}

// redactRaw hides the userinfo of a URL string that does not parse.
func redactRaw(s string) string {
	i := strings.LastIndex(s, "@")
	if i < 0 {
		return s
	}
	if j := strings.Index(s, "://"); j >= 0 && j < i {
		return s[:j+3] + "xxxxx" + s[i:]
	}
	return "xxxxx" + s[i:]
}

// secrets lists the strings that must never reach a log or an error.
func (c Config) secrets(urls []serverURL) []string {
	var s []string
	add := func(v string) {
		if v != "" {
			s = append(s, v)
		}
	}
	add(c.Password)
	add(c.Token)
	for _, u := range urls {
		if u.u.User == nil {
			continue
		}
		if p, ok := u.u.User.Password(); ok {
			add(p)
		} else {
			add(u.u.User.Username())
		}
	}
	return s
}

// scrubber replaces secrets in text; a safety net for messages from
// nats.go, which should not contain any.
type scrubber []string

func (sc scrubber) str(s string) string {
	for _, v := range sc {
		s = strings.ReplaceAll(s, v, "xxxxx")
	}
	return s
}

func (sc scrubber) err(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if clean := sc.str(msg); clean != msg {
		return errors.New(clean)
	}
	return err
}

// Connect validates c and dials NATS: with c's auth and TLS, reconnecting
// forever (every DefaultReconnectWait plus jitter) with a reconnect buffer
// sized for MiB messages, logging connects, disconnects, reconnects and
// async errors on log (nil: silent). ctx bounds the initial connect; each
// dial and handshake also times out after DefaultConnectTimeout. opts are
// applied last and override these defaults, e.g. nats.RetryOnFailedConnect(true)
// to return at once and keep connecting in the background.
func (c Config) Connect(ctx context.Context, log *slog.Logger, opts ...nats.Option) (*nats.Conn, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	urls, _ := c.urls()
	sc := scrubber(c.secrets(urls))
	servers := make([]string, len(urls))
	redacted := make([]string, len(urls))
	for i, u := range urls {
		servers[i] = u.u.String()
		redacted[i] = redactURL(u.u)
	}
	log = log.With("nats", strings.Join(redacted, ","))
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("natsconn: connect: %w", err)
	}

	o := []nats.Option{
		nats.MaxReconnects(-1),
		nats.ReconnectWait(DefaultReconnectWait),
		nats.ReconnectJitter(DefaultReconnectJitter, time.Second),
		nats.ReconnectBufSize(DefaultReconnectBufSize),
		nats.Timeout(DefaultConnectTimeout), // per dial and handshake, reconnects included
		nats.ConnectHandler(func(nc *nats.Conn) {
			log.Info("nats connected", "server", sc.str(redactedConnected(nc)))
		}),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", sc.str(err.Error()))
			} else {
				log.Info("nats disconnected")
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "server", sc.str(redactedConnected(nc)))
		}),
		nats.ClosedHandler(func(nc *nats.Conn) {
			if err := nc.LastError(); err != nil {
				log.Info("nats connection closed", "last_err", sc.str(err.Error()))
			} else {
				log.Debug("nats connection closed")
			}
		}),
		nats.ErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
			args := []any{"err", sc.str(err.Error())}
			if sub != nil {
				args = append(args, "subject", sub.Subject)
			}
			log.Error("nats error", args...)
		}),
	}
	if c.Name != "" {
		o = append(o, nats.Name(c.Name))
	}
	switch {
	case c.User != "":
		o = append(o, nats.UserInfo(c.User, c.Password))
	case c.Token != "":
		o = append(o, nats.Token(c.Token))
	case c.NKeySeedFile != "":
		opt, err := nats.NkeyOptionFromSeed(c.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("natsconn: nkey seed file %s: %w", c.NKeySeedFile, sc.err(err))
		}
		o = append(o, opt)
	case c.CredsFile != "":
		o = append(o, nats.UserCredentials(c.CredsFile))
	}
	if c.TLSCAFile != "" {
		o = append(o, nats.RootCAs(c.TLSCAFile))
	}
	if c.TLSCertFile != "" {
		o = append(o, nats.ClientCert(c.TLSCertFile, c.TLSKeyFile))
	}
	o = append(o, opts...)

	type result struct {
		nc  *nats.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		nc, err := nats.Connect(strings.Join(servers, ","), o...)
		done <- result{nc, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, fmt.Errorf("natsconn: connect to %s: %w", strings.Join(redacted, ","), describe(sc.err(r.err)))
		}
		if !r.nc.IsConnected() {
			log.Info("nats connecting in the background")
		}
		return r.nc, nil
	case <-ctx.Done():
		// nats.Connect takes no context: close the connection if it still comes.
		go func() {
			if r := <-done; r.nc != nil {
				r.nc.Close()
			}
		}()
		return nil, fmt.Errorf("natsconn: connect to %s: %w", strings.Join(redacted, ","), ctx.Err())
	}
}

// describe adds a hint to the errors whose meaning is not obvious.
func describe(err error) error {
	switch {
	case errors.Is(err, nats.ErrAuthorization):
		return fmt.Errorf("%w (the server refused the credentials: check the user/password, token, nkey or creds)", err)
	case errors.Is(err, nats.ErrNoServers):
		return fmt.Errorf("%w (is the server running, and is the URL right?)", err)
	}
	return err
}

func redactedConnected(nc *nats.Conn) string {
	u := nc.ConnectedUrl()
	if u == "" {
		return ""
	}
	p, err := url.Parse(u)
	if err != nil {
		return redactRaw(u)
	}
	return redactURL(p)
}
