package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestHealth: exit 0 when every URL answers 2xx, 1 when one does not or is
// unreachable, and --wait keeps trying until an endpoint comes up.
func TestHealth(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			if r.URL.Query().Get("js-enabled-only") != "true" {
				http.Error(w, "query lost", http.StatusBadRequest)
				return
			}
			w.Write([]byte(`{"status":"ok"}`))
		case "/down":
			http.Error(w, `{"status":"unavailable","error":"JetStream not enabled"}`, http.StatusServiceUnavailable)
		case "/later": // healthy from the third request on
			if calls.Add(1) < 3 {
				http.Error(w, "starting", http.StatusServiceUnavailable)
				return
			}
			w.Write([]byte("ok"))
		}
	}))
	defer srv.Close()
	// A port nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/healthz"
	ln.Close()

	for _, tc := range []struct {
		name string
		args []string
		code int
		out  string // in stdout (0) or stderr (otherwise)
	}{
		{"ok", []string{srv.URL + "/ok?js-enabled-only=true"}, exitOK, "ok " + srv.URL + "/ok"},
		{"quiet", []string{"--quiet", srv.URL + "/ok?js-enabled-only=true"}, exitOK, ""},
		{"503", []string{srv.URL + "/down"}, exitFailure, "503 Service Unavailable"},
		{"one of two down", []string{srv.URL + "/ok?js-enabled-only=true", srv.URL + "/down"}, exitFailure, "unhealthy"},
		{"refused", []string{"--timeout", "2s", closed}, exitFailure, "unhealthy"},
		{"wait", []string{"--wait", "10s", "--interval", "10ms", srv.URL + "/later"}, exitOK, "ok " + srv.URL + "/later"},
		{"wait gives up", []string{"--wait", "50ms", "--interval", "10ms", srv.URL + "/down"}, exitFailure, "503"},
		{"no URL", nil, exitUsage, "give at least one URL"},
		{"not http", []string{"nats://127.0.0.1:4222"}, exitUsage, "not an http"},
		{"bad flag", []string{"--nosuch", srv.URL}, exitUsage, "nosuch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var o, e bytes.Buffer
			code := run(context.Background(), append([]string{"health"}, tc.args...), &o, &e)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, o.String(), e.String())
			}
			got := o.String()
			if code != exitOK {
				got = e.String()
			}
			if !strings.Contains(got, tc.out) {
				t.Errorf("output %q does not contain %q", got, tc.out)
			}
			if tc.out == "" && o.Len() > 0 {
				t.Errorf("--quiet printed %q", o.String())
			}
		})
	}
}
