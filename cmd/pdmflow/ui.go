package main

import (
	"context"
	flag "github.com/spf13/pflag"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pdmflow/pdmflow/dashboard"
	"github.com/pdmflow/pdmflow/trainer"
)

// What the dashboard shows, in --ui-addr's help.
const (
	uiTraining = "losses, validation, pictures, the learned distribution, the stream"
	uiProduce  = "this process's producers: pairs/s, weights version, lag, stalls"
)

// uiFlag adds --ui-addr, the live dashboard's address, to fs; shows says
// what the dashboard shows.
func uiFlag(fs *flag.FlagSet, shows string) *string {
	return fs.String("ui-addr", "", "serve the live dashboard on this address, e.g. 127.0.0.1:8080 (a web page: "+shows+
		"); it has no authentication: bind to 127.0.0.1 unless exposed deliberately")
}

// serveUI serves the dashboard on addr until ctx ends or the returned stop
// is called, reading the stream panel from reg (nil: none). It returns the
// dashboard as the trainer's observer; without an address it serves
// nothing and returns a nil observer.
func serveUI(ctx context.Context, e *env, addr, title string, reg prometheus.Gatherer) (trainer.Observer, func(), error) {
	if addr == "" {
		return nil, func() {}, nil
	}
	ctx, stop := context.WithCancel(ctx)
	d := dashboard.New(dashboard.Options{Title: title, Metrics: reg, Log: e.log})
	if _, err := d.Serve(ctx, addr); err != nil {
		stop()
		return nil, nil, err
	}
	return d, stop, nil
}
