package natsconn

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeContext makes a nats CLI context under a fresh XDG_CONFIG_HOME.
func writeContexts(t *testing.T, selected string, ctxs map[string]string) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", home)
	t.Setenv(EnvContext, "")
	dir := filepath.Join(home, "nats", "context")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range ctxs {
		if err := os.WriteFile(filepath.Join(dir, name+".json"), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if selected != "" {
		if err := os.WriteFile(filepath.Join(home, "nats", "context.txt"), []byte(selected+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return home
}

// TestFromContext: a nats CLI context fills what nothing else set, chosen
// as the nats CLI chooses it (--nats-context, $NATS_CONTEXT, the selected
// one); what pdmflow cannot honour is refused by name.
func TestFromContext(t *testing.T) {
	writeContexts(t, "prod", map[string]string{
		"prod":    `{"description": "production", "url": "nats://prod:4222", "creds": "/etc/prod.creds", "ca": "/etc/ca.pem"}`,
		"staging": `{"url": "tls://staging:4222", "user": "u", "password": "p", "nkey": "file:///etc/seed.nk"}`,
		"domain":  `{"url": "nats://x:4222", "jetstream_domain": "hub"}`,
		"op":      `{"url": "nats://x:4222", "creds": "op://vault/item/creds"}`,
		"broken":  `{"url": `,
	})
	// The selected context fills the empty fields; a flag wins.
	c, err := Config{URL: "nats://flag:4222"}.FromContext()
	if err != nil {
		t.Fatal(err)
	}
	if c.URL != "nats://flag:4222" || c.CredsFile != "/etc/prod.creds" || c.TLSCAFile != "/etc/ca.pem" || c.Context != "prod" {
		t.Errorf("selected context: %+v", c)
	}
	// $NATS_CONTEXT over the selected one; the flag over both.
	t.Setenv(EnvContext, "staging")
	if c, err = (Config{}).FromContext(); err != nil || c.URL != "tls://staging:4222" || c.User != "u" || c.NKeySeedFile != "/etc/seed.nk" {
		t.Errorf("$NATS_CONTEXT: %+v, %v", c, err)
	}
	if c, err = (Config{Context: "prod"}).FromContext(); err != nil || c.URL != "nats://prod:4222" {
		t.Errorf("--nats-context: %+v, %v", c, err)
	}
	t.Setenv(EnvContext, "")
	for name, want := range map[string]string{
		"domain":  "jetstream_domain",
		"op":      "op: URI is not supported",
		"broken":  "broken.json",
		"missing": "missing",
		"../x":    "not a context name",
	} {
		if _, err := (Config{Context: name}).FromContext(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("context %q: %v, want an error with %q", name, err, want)
		}
	}
	// No context selected: nothing changes.
	writeContexts(t, "", nil)
	if c, err := (Config{}).FromContext(); err != nil || c != (Config{}) {
		t.Errorf("no context: %+v, %v", c, err)
	}
}

// TestNATSCLIEnv: the nats CLI's variables fill what PDMFLOW_NATS_* and the
// flags left empty.
func TestNATSCLIEnv(t *testing.T) {
	t.Setenv("NATS_URL", "nats://cli:4222")
	t.Setenv("NATS_CREDS", "/cli.creds")
	t.Setenv(EnvURL, "")
	t.Setenv(EnvCreds, "")
	if c := (Config{}).FromEnv(); c.URL != "nats://cli:4222" || c.CredsFile != "/cli.creds" {
		t.Errorf("nats CLI env: %+v", c)
	}
	t.Setenv(EnvURL, "nats://pdmflow:4222")
	if c := (Config{}).FromEnv(); c.URL != "nats://pdmflow:4222" {
		t.Errorf("PDMFLOW_NATS_URL should win over NATS_URL: %+v", c)
	}
	if c := (Config{URL: "nats://flag:4222"}).FromEnv(); c.URL != "nats://flag:4222" {
		t.Errorf("the flag should win: %+v", c)
	}
}
