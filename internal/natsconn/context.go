package natsconn

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// EnvContext names the nats CLI context to use, as the nats CLI reads it.
const EnvContext = "NATS_CONTEXT"

// The nats CLI's environment variables, honoured after pdmflow's own
// (PDMFLOW_NATS_*): a shell set up for the nats CLI works as it is.
var natsCLIEnv = map[string]func(*Config) *string{
	"NATS_URL":      func(c *Config) *string { return &c.URL },
	"NATS_USER":     func(c *Config) *string { return &c.User },
	"NATS_PASSWORD": func(c *Config) *string { return &c.Password },
	"NATS_CREDS":    func(c *Config) *string { return &c.CredsFile },
	"NATS_NKEY":     func(c *Config) *string { return &c.NKeySeedFile },
	"NATS_CERT":     func(c *Config) *string { return &c.TLSCertFile },
	"NATS_KEY":      func(c *Config) *string { return &c.TLSKeyFile },
	"NATS_CA":       func(c *Config) *string { return &c.TLSCAFile },
}

// natsContext is the JSON of a nats CLI context (ADR-21 of the NATS
// architecture: ~/.config/nats/context/NAME.json).
type natsContext struct {
	Description string `json:"description"`
	URL         string `json:"url"`
	Token       string `json:"token"`
	User        string `json:"user"`
	Password    string `json:"password"`
	Creds       string `json:"creds"`
	NKey        string `json:"nkey"`
	Cert        string `json:"cert"`
	Key         string `json:"key"`
	CA          string `json:"ca"`
	// Settings pdmflow cannot honour: a context that sets one is refused
	// rather than half used.
	NSC             string `json:"nsc"`
	JSDomain        string `json:"jetstream_domain"`
	JSAPIPrefix     string `json:"jetstream_api_prefix"`
	InboxPrefix     string `json:"inbox_prefix"`
	UserJWT         string `json:"user_jwt"`
	WindowsCertStor string `json:"windows_cert_store"`
}

// contextDir is where the nats CLI keeps its contexts: $XDG_CONFIG_HOME/nats,
// or ~/.config/nats.
func contextDir() (string, error) {
	base := os.Getenv("XDG_CONFIG_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		base = filepath.Join(home, ".config")
	}
	return filepath.Join(base, "nats"), nil
}

// FromContext returns c with its empty fields filled from a nats CLI
// context: the one named by c.Context, else by $NATS_CONTEXT, else the nats
// CLI's selected context (context.txt), if any. A named context that does
// not exist, or that sets what pdmflow cannot use (nsc, a JetStream domain
// or API prefix, an inbox prefix, a user JWT, a Windows certificate store,
// credentials by URI other than file://), is an error naming it.
func (c Config) FromContext() (Config, error) {
	name, explicit := c.Context, true
	if name == "" {
		name = os.Getenv(EnvContext)
	}
	dir, err := contextDir()
	if err != nil {
		if name != "" {
			return c, fmt.Errorf("natsconn: nats context %q: %w", name, err)
		}
		return c, nil
	}
	if name == "" {
		explicit = false
		b, err := os.ReadFile(filepath.Join(dir, "context.txt"))
		if err != nil {
			return c, nil // no context selected
		}
		if name = strings.TrimSpace(string(b)); name == "" {
			return c, nil
		}
	}
	if strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
		return c, fmt.Errorf("natsconn: nats context %q: not a context name", name)
	}
	path := filepath.Join(dir, "context", name+".json")
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && !explicit {
			return c, fmt.Errorf("natsconn: the selected nats context %q (%s) has no file %s", name, filepath.Join(dir, "context.txt"), path)
		}
		return c, fmt.Errorf("natsconn: nats context %q: %w", name, err)
	}
	var nc natsContext
	if err := json.Unmarshal(b, &nc); err != nil {
		return c, fmt.Errorf("natsconn: nats context %s: %w", path, err)
	}
	for field, v := range map[string]string{"nsc": nc.NSC, "jetstream_domain": nc.JSDomain, "jetstream_api_prefix": nc.JSAPIPrefix,
		"inbox_prefix": nc.InboxPrefix, "user_jwt": nc.UserJWT, "windows_cert_store": nc.WindowsCertStor} {
		if v != "" {
			return c, fmt.Errorf("natsconn: nats context %s sets %s, which pdmflow does not support: use a context without it, or flags", path, field)
		}
	}
	creds, err := contextPath(path, "creds", nc.Creds)
	if err != nil {
		return c, err
	}
	nkey, err := contextPath(path, "nkey", nc.NKey)
	if err != nil {
		return c, err
	}
	fill := func(dst *string, v string) {
		if *dst == "" {
			*dst = v
		}
	}
	fill(&c.URL, nc.URL)
	fill(&c.Token, nc.Token)
	fill(&c.User, nc.User)
	fill(&c.Password, nc.Password)
	fill(&c.CredsFile, creds)
	fill(&c.NKeySeedFile, nkey)
	fill(&c.TLSCertFile, nc.Cert)
	fill(&c.TLSKeyFile, nc.Key)
	fill(&c.TLSCAFile, nc.CA)
	c.Context = name
	return c, nil
}

// contextPath resolves a context's credentials reference: a path, or a
// file:// URI.
func contextPath(ctxFile, field, v string) (string, error) {
	switch {
	case v == "":
		return "", nil
	case strings.HasPrefix(v, "file://"):
		return strings.TrimPrefix(v, "file://"), nil
	case strings.Contains(v, "://") || strings.HasPrefix(v, "data:"):
		scheme, _, _ := strings.Cut(v, ":")
		return "", fmt.Errorf("natsconn: nats context %s: %s by %s: URI is not supported by pdmflow; give a file path", ctxFile, field, scheme)
	}
	return v, nil
}
