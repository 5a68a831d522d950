package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"
)

// cmdHealth probes HTTP endpoints and exits 0 when every one answers 2xx,
// 1 otherwise. It is the health check of the container images, which are
// built FROM scratch and have no shell, curl or wget: the NATS monitoring
// endpoint (/healthz?js-enabled-only=true), the /healthz of a producer's or
// the trainer's --metrics-addr, or an S3 server's liveness URL.
func cmdHealth(ctx context.Context, e *env, args []string) error {
	fs, c := newFlags(e, "health", "health [--timeout D] [--wait D] [--ca FILE] [--quiet] URL...")
	var timeout, wait, interval time.Duration
	durationVar(fs, &timeout, "timeout", 5*time.Second, false, "time limit of one request")
	durationVar(fs, &wait, "wait", 0, true, "keep trying until every URL answers 2xx or this much time has passed (0: one try)")
	durationVar(fs, &interval, "interval", time.Second, false, "pause between tries with --wait")
	caFile := fs.String("ca", "", "PEM file of a private CA for https:// URLs")
	quiet := fs.Bool("quiet", false, "print nothing when healthy")
	// The URLs follow the flags: parse the flags alone with the common
	// parser, which refuses positional arguments.
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(e.stderr)
	if err != nil {
		return parse(fs, c, e, args) // the same error (or --help), printed
	}
	urls := fs.Args()
	if err := parse(fs, c, e, args[:len(args)-len(urls)]); err != nil {
		return err
	}
	if len(urls) == 0 {
		return fmt.Errorf("%w: give at least one URL, e.g. http://127.0.0.1:8222/healthz?js-enabled-only=true", errUsage)
	}
	for _, u := range urls {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return fmt.Errorf("%w: %q is not an http:// or https:// URL", errUsage, redactedURL(u))
		}
	}
	if timeout <= 0 || interval <= 0 || wait < 0 {
		return fmt.Errorf("%w: --timeout and --interval must be positive, --wait not negative", errUsage)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // a health check talks to its own container or network
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			return fmt.Errorf("%w: --ca: %v", errUsage, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%w: --ca %s holds no PEM certificate", errUsage, *caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	client := &http.Client{Transport: tr, Timeout: timeout}
	defer tr.CloseIdleConnections()

	deadline := time.Now().Add(wait)
	pending := urls
	for {
		var failed []string
		var lastErr error
		for _, u := range pending {
			status, err := probe(ctx, client, u)
			if err != nil {
				failed, lastErr = append(failed, u), err
				continue
			}
			if !*quiet {
				fmt.Fprintf(e.stdout, "ok %s %s\n", redactedURL(u), status)
			}
		}
		if len(failed) == 0 {
			return nil
		}
		if wait == 0 || !time.Now().Add(interval).Before(deadline) {
			if len(failed) > 1 {
				return fmt.Errorf("%d of %d URLs unhealthy, last: %w", len(failed), len(urls), lastErr)
			}
			return lastErr
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
		pending = failed
	}
}

// probe GETs u and returns its status line when it is 2xx.
func probe(ctx context.Context, client *http.Client, u string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		// url.Error repeats the URL, user name (or token) included.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", fmt.Errorf("unhealthy: %s: %w", redactedURL(u), err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return "", fmt.Errorf("unhealthy: %s answered %s: %.200q", redactedURL(u), resp.Status, body)
	}
	return resp.Status, nil
}

// redactedURL is u with any user name and password replaced by xxxxx.
func redactedURL(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.User == nil {
		return u
	}
	p.User = url.User("xxxxx")
	return p.String()
}
