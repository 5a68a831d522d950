package main

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pdmflow/pdmflow/internal/syncbuf"
	"github.com/pdmflow/pdmflow/internal/testutil"
)

// TestNoSecretsInHelpOrErrors sets every secret pdmflow reads (NATS
// password and token, S3 secret key, the broker's password and token) to
// a marker, and puts more markers in URLs (nats://user:PASSWORD@host,
// nats://TOKEN@host, an S3 endpoint with user info, an s3:// store URL with
// credentials), a --connect file and flags; then runs every command's
// --help and commands that fail on those settings. No marker may appear in
// what they print.
func TestNoSecretsInHelpOrErrors(t *testing.T) {
	secrets := map[string]string{
		"PDMFLOW_NATS_PASSWORD":   "envNatsPw7781",
		"PDMFLOW_NATS_TOKEN":      "envNatsTok7782",
		"PDMFLOW_S3_SECRET_KEY":   "envS3Secret7783",
		"AWS_SECRET_ACCESS_KEY":   "envAwsSecret7784",
		"PDMFLOW_BROKER_PASSWORD": "envBrokerPw7785",
		"PDMFLOW_BROKER_TOKEN":    "envBrokerTok7786",
	}
	markers := []string{"urlPw9901", "urlTok9902", "endpointPw9903", "storePw9904", "flagS3Secret9905", "fileNatsPw9906", "fileS3Secret9907", "flagNatsPw9908"}
	for _, v := range secrets {
		markers = append(markers, v)
	}
	dir := t.TempDir()
	hr := filepath.Join(dir, "hr")
	testutil.WriteImages(t, hr, 1, 64, 64, 1)
	connectFile := filepath.Join(dir, "connect.yaml")
	os.WriteFile(connectFile, []byte("nats:\n  url: nats://127.0.0.1:1\n  user: u\n  password: fileNatsPw9906\ns3:\n  endpoint: 127.0.0.1:1\n  secret_key: fileS3Secret9907\n  nonsense: fileS3Secret9907\n"), 0o600)
	connectOK := filepath.Join(dir, "connect-ok.yaml")
	os.WriteFile(connectOK, []byte("nats:\n  url: nats://127.0.0.1:1\n  user: u\n  password: fileNatsPw9906\ns3:\n  endpoint: 127.0.0.1:1\n  access_key: k\n  secret_key: fileS3Secret9907\n"), 0o600)
	config := filepath.Join(dir, "config.yaml")
	os.WriteFile(config, []byte("base: cpu-small\n"), 0o600)

	type tc struct {
		env  []string // names of secrets set for the case
		args []string
	}
	all := []string{"PDMFLOW_NATS_PASSWORD", "PDMFLOW_S3_SECRET_KEY", "AWS_SECRET_ACCESS_KEY", "PDMFLOW_BROKER_PASSWORD"}
	var cases []tc
	for name := range commands {
		cases = append(cases, tc{env: append(all, "PDMFLOW_NATS_TOKEN", "PDMFLOW_BROKER_TOKEN"), args: []string{name, "--help"}})
	}
	sort.Slice(cases, func(i, j int) bool { return cases[i].args[0] < cases[j].args[0] })
	cases = append(cases,
		// NATS: a password or token in the environment, in a URL, on the
		// command line; servers that do not answer, URLs that do not parse.
		tc{[]string{"PDMFLOW_NATS_PASSWORD"}, []string{"produce", "--run", "r", "--hr", hr, "--degradation", "bicubic", "--nats-user", "u", "--nats-url", "nats://127.0.0.1:1"}},
		tc{[]string{"PDMFLOW_NATS_TOKEN"}, []string{"train", "--nats-url", "nats://127.0.0.1:1", "--run", "r", "--out", dir, "--degradation", "bicubic"}},
		tc{nil, []string{"produce", "--run", "r", "--hr", hr, "--degradation", "bicubic", "--nats-url", "nats://u:urlPw9901@127.0.0.1:1"}},
		tc{nil, []string{"produce", "--run", "r", "--hr", hr, "--degradation", "bicubic", "--nats-url", "nats://u:urlPw9901@[::1"}},
		tc{nil, []string{"train", "--nats-url", "nats://urlTok9902@127.0.0.1:1", "--run", "r", "--out", dir, "--degradation", "bicubic"}},
		tc{nil, []string{"inspect", "--nats-url", "tls://u:urlPw9901@127.0.0.1:1,nats://u:urlPw9901@127.0.0.1:2"}},
		tc{nil, []string{"inspect", "--nats-url", "nats://urlTok9902@127.0.0.1:1", "--nats-password", "flagNatsPw9908"}},
		tc{nil, []string{"export", "--out", dir, "--nats-url", "nats://127.0.0.1:1", "--nats-user", "u", "--nats-password", "flagNatsPw9908"}},
		// S3: an endpoint with user info, a store URL with credentials, a
		// secret on the command line or in the environment.
		tc{[]string{"PDMFLOW_S3_SECRET_KEY"}, []string{"produce", "--run", "r", "--degradation", "bicubic", "--hr", "s3://bucket/hr", "--s3-endpoint", "http://key:endpointPw9903@127.0.0.1:1"}},
		tc{[]string{"AWS_SECRET_ACCESS_KEY"}, []string{"produce", "--run", "r", "--degradation", "bicubic", "--hr", "s3://bucket/hr", "--s3-endpoint", "key:endpointPw9903@127.0.0.1:1"}},
		tc{nil, []string{"produce", "--run", "r", "--degradation", "bicubic", "--hr", "s3://bucket/hr", "--s3-endpoint", "127.0.0.1:1", "--s3-access-key", "k", "--s3-secret-key", "flagS3Secret9905"}},
		tc{[]string{"PDMFLOW_S3_SECRET_KEY"}, []string{"export", "--out", "s3://key:storePw9904@bucket/p", "--nats-url", "nats://127.0.0.1:1"}},
		tc{[]string{"PDMFLOW_S3_SECRET_KEY"}, []string{"export", "--out", "s3://bucket/p", "--s3-endpoint", "127.0.0.1:1", "--nats-url", "nats://127.0.0.1:1"}},
		tc{nil, []string{"regenerate", "--archive", "s3://key:storePw9904@bucket/a", "--hr", hr, "--all"}},
		tc{[]string{"PDMFLOW_S3_SECRET_KEY"}, []string{"replay", "--archive", "s3://bucket/a", "--s3-endpoint", "https://key:endpointPw9903@127.0.0.1:1", "--config", config, "--lr", hr, "--out", dir}},
		// --connect files with secrets: one with an unknown key, one that
		// parses and names servers that do not answer.
		tc{nil, []string{"inspect", "--connect", connectFile}},
		tc{nil, []string{"inspect", "--connect", connectOK}},
		tc{nil, []string{"export", "--connect", connectOK, "--out", "s3://bucket/x"}},
		// Health probes of URLs with credentials.
		tc{nil, []string{"health", "http://u:urlPw9901@127.0.0.1:1/healthz"}},
		tc{nil, []string{"health", "--wait", "1s", "--interval", "200ms", "http://u:urlPw9901@127.0.0.1:1/healthz", "https://urlTok9902@127.0.0.1:2/"}},
		// The broker's secrets.
		tc{[]string{"PDMFLOW_BROKER_PASSWORD", "PDMFLOW_BROKER_TOKEN"}, []string{"broker", "--dir", dir, "--user", "u"}},
		tc{[]string{"PDMFLOW_BROKER_PASSWORD"}, []string{"broker", "--dir", dir}},
	)
	for _, c := range cases {
		for k := range secrets {
			os.Unsetenv(k)
		}
		for _, k := range c.env {
			t.Setenv(k, secrets[k])
		}
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		var stdout, stderr syncbuf.Buffer
		code := run(ctx, c.args, &stdout, &stderr)
		cancel()
		out := stdout.String() + stderr.String()
		if testing.Verbose() && c.args[len(c.args)-1] != "--help" {
			t.Logf("%q: exit %d: %s", c.args, code, lastLine(out))
		}
		for _, m := range markers {
			if strings.Contains(out, m) {
				t.Errorf("%q (exit %d) printed the secret %s:\n%s", c.args, code, m, out)
			}
		}
		if c.args[len(c.args)-1] != "--help" && code == exitOK {
			t.Errorf("%q succeeded; the case should fail:\n%s", c.args, out)
		}
	}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
