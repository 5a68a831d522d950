package store

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config holds what the s3 driver needs; the file driver ignores it. Open
// fills empty fields from the environment (see FromEnv), so the zero Config
// means "all from the environment".
type Config struct {
	// Endpoint is host:port, e.g. "127.0.0.1:9000"; empty means AWS S3
	// itself (s3.amazonaws.com, the bucket's region found by asking).
	// "http://host:port" and "https://host:port" are accepted too and set
	// Insecure accordingly.
	Endpoint string
	// Static credentials: AccessKey and SecretKey, with SessionToken for
	// temporary ones (STS). Without them the s3 driver looks for
	// credentials as the AWS SDKs do: the AWS_* variables, the shared
	// credentials and config files (~/.aws, profile Profile or AWS_PROFILE,
	// SSO profiles included), then the role of the ECS task, the EKS pod
	// (web identity) or the EC2 instance.
	AccessKey    string
	SecretKey    string
	SessionToken string
	Profile      string
	Region       string // default: found from the bucket on AWS, "us-east-1" elsewhere
	Insecure     bool   // plain http instead of https
	// CAFile is a PEM file of extra root certificates, for a server whose
	// certificate comes from a private CA.
	CAFile string
	// CreateBucket makes Open create the bucket if it does not exist,
	// instead of failing.
	CreateBucket bool
	// Timeout bounds each call except PutFile and GetToFile, retries
	// included; 0 means 60 s and a negative value means no bound beyond
	// the caller's context.
	Timeout time.Duration
}

// DefaultTimeout is the Timeout used when Config.Timeout is 0.
const DefaultTimeout = 60 * time.Second

// FromEnv returns c with its empty fields filled from the environment:
//
//	Endpoint      PDMFLOW_S3_ENDPOINT, else AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL
//	AccessKey     PDMFLOW_S3_ACCESS_KEY, else AWS_ACCESS_KEY_ID
//	SecretKey     PDMFLOW_S3_SECRET_KEY, else AWS_SECRET_ACCESS_KEY
//	SessionToken  PDMFLOW_S3_SESSION_TOKEN, else AWS_SESSION_TOKEN
//	Profile       PDMFLOW_S3_PROFILE, else AWS_PROFILE
//	Region        PDMFLOW_S3_REGION, else AWS_REGION, else AWS_DEFAULT_REGION
//	Insecure   PDMFLOW_S3_INSECURE=1 (or true)
//	CAFile     PDMFLOW_S3_CA_FILE
func (c Config) FromEnv() Config {
	fill := func(f *string, names ...string) {
		for _, n := range names {
			if *f != "" {
				return
			}
			*f = os.Getenv(n)
		}
	}
	fill(&c.Endpoint, "PDMFLOW_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
	fill(&c.AccessKey, "PDMFLOW_S3_ACCESS_KEY", "AWS_ACCESS_KEY_ID")
	fill(&c.SecretKey, "PDMFLOW_S3_SECRET_KEY", "AWS_SECRET_ACCESS_KEY")
	fill(&c.SessionToken, "PDMFLOW_S3_SESSION_TOKEN", "AWS_SESSION_TOKEN")
	fill(&c.Profile, "PDMFLOW_S3_PROFILE", "AWS_PROFILE")
	fill(&c.Region, "PDMFLOW_S3_REGION", "AWS_REGION", "AWS_DEFAULT_REGION")
	fill(&c.CAFile, "PDMFLOW_S3_CA_FILE")
	if !c.Insecure {
		c.Insecure, _ = strconv.ParseBool(os.Getenv("PDMFLOW_S3_INSECURE"))
	}
	return c
}

// String describes c for logs. It never shows the secret key, and shows
// only the first four characters of the access key.
func (c Config) String() string {
	var b strings.Builder
	endpoint := c.Endpoint
	if i := strings.LastIndexByte(endpoint, '@'); i >= 0 {
		endpoint = "xxxxx" + endpoint[i:] // credentials in the endpoint: never shown
		if j := strings.Index(c.Endpoint, "://"); j >= 0 && j < i {
			endpoint = c.Endpoint[:j+3] + endpoint
		}
	}
	fmt.Fprintf(&b, "endpoint=%q region=%q insecure=%t", endpoint, c.Region, c.Insecure)
	fmt.Fprintf(&b, " access_key=%s secret_key=%s", redact(c.AccessKey, 4), secretMark(c.SecretKey))
	if c.SessionToken != "" {
		b.WriteString(" session_token=***")
	}
	if c.Profile != "" {
		fmt.Fprintf(&b, " profile=%q", c.Profile)
	}
	if c.CAFile != "" {
		fmt.Fprintf(&b, " ca_file=%q", c.CAFile)
	}
	if c.CreateBucket {
		b.WriteString(" create_bucket=true")
	}
	if c.Timeout != 0 {
		fmt.Fprintf(&b, " timeout=%s", c.Timeout)
	}
	return b.String()
}

// GoString is String, so that %#v does not print the secret either.
func (c Config) GoString() string { return "store.Config{" + c.String() + "}" }

// LogValue is String, for log/slog.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

func secretMark(s string) string {
	if s == "" {
		return `""`
	}
	return "***"
}

// redact shows the first keep bytes of s, then "…" and the length; "" for
// an empty s.
func redact(s string, keep int) string {
	if s == "" {
		return `""`
	}
	if keep >= len(s) || keep < 0 {
		keep = 0
	}
	return fmt.Sprintf("%s…(%d)", s[:keep], len(s))
}
