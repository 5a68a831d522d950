package main

import (
	"cmp"
	"context"
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pdmflow/pdmflow/consumer"
	"github.com/pdmflow/pdmflow/internal/metrics"
	"github.com/pdmflow/pdmflow/producer"
	"github.com/pdmflow/pdmflow/registry"
	"github.com/pdmflow/pdmflow/store"
	"github.com/pdmflow/pdmflow/trainer"
)

func cmdTrain(ctx context.Context, e *env, args []string) error {
	fs, c := newFlags(e, "train", "train (--hr DIR | --run ID --store URL [--nats-url nats://HOST:PORT]) --lr DIR --out DIR [--preset NAME | --config FILE] [--steps N] [--init-sr SR.safetensors] [--vgg VGG19.pth]")
	var conn connection
	conn.addFlags(fs)
	conn.addMetricsFlag(fs)
	run := fs.String("run", "", "train on the pair stream of this run (its producers' --run), on the NATS server of --nats-url, instead of --hr")
	storeURL := fs.String("store", "", "with --run: blob store for the PDM weights (file://DIR or s3://bucket/prefix; a missing bucket is created)")
	publishEvery := optCount(fs, "publish-every", 0, "with --run: steps between PDM weights publishes (default: the config's publish_every, else 50)")
	acceptLoss := fs.Bool("accept-loss", false, "with --run: go on when the stream's retention removed messages this trainer had not read (counted in pdmflow_trainer_lost_messages_total); without it the trainer stops and says how many")
	hr := fs.String("hr", "", "directory of high-resolution images (the images to degrade)")
	lr := fs.String("lr", "", "directory of real low-resolution images (the degradation to learn)")
	valHR := fs.String("val-hr", "", "validation ground truth: score the SR network while it trains (with --val-lr; same base names)")
	valLR := fs.String("val-lr", "", "validation LR images (with --val-hr)")
	valEvery := fs.Int("val-every", 0, "steps between validations (default: the config's sample_every; the last step always)")
	truth := fs.String("truth", "", "the real LR set's truth file, when its degradation is known (truth.json of pdmflow synth): reports then compare the learned distribution with it")
	out := fs.String("out", "", "output directory: weights, checkpoint, pictures, log; a run resumes from its checkpoint")
	preset := fs.String("preset", "cpu-small", "built-in config: "+strings.Join(trainer.Presets(), ", "))
	config := fs.String("config", "", "YAML config file (overrides --preset; may start from one with 'base: NAME')")
	steps := optCount(fs, "steps", 0, "number of steps (overrides the config; 0: the config's)")
	degradation := fs.String("degradation", "", "what the SR network trains on: pdm (default) or bicubic (the baseline; --lr not needed)")
	seed := seed(fs, "random seed (overrides the config)")
	uiAddr := uiFlag(fs, uiTraining)
	initSR := fs.String("init-sr", "", "start the SR network from these weights (an sr.safetensors, or pdmflow import --kind edsr|rrdb of a pretrained checkpoint) of the config's architecture and shape, as the official code starts from a pretrained EDSR; ignored when resuming")
	vgg := fs.String("vgg", "", "VGG19 weights for the perceptual loss of PDM-SRGAN configs (loss.percep): torchvision's vgg19 state dict (.pth) or safetensors; overrides the config's vgg")
	if err := parse(fs, c, e, args); err != nil {
		return err
	}
	streaming := *run != ""
	if streaming {
		if err := required(map[string]string{"out": *out}); err != nil {
			return err
		}
		if *hr != "" {
			return fmt.Errorf("%w: --hr and --run exclude each other (on the stream, producers read the HR images)", errUsage)
		}
	} else {
		if e.given["nats-url"] {
			return fmt.Errorf("%w: --nats-url needs --run: the run whose pair stream to train on (or --hr to train on local images)", errUsage)
		}
		if err := required(map[string]string{"hr": *hr, "out": *out}); err != nil {
			return err
		}
		for _, f := range []string{"store", "publish-every", "accept-loss", "metrics-addr"} {
			if e.given[f] {
				return fmt.Errorf("%w: --%s is for training on the stream (--run); with --hr there is none (--ui-addr shows a local run)", errUsage, f)
			}
		}
	}
	cfg, err := loadConfig(*preset, *config)
	if err != nil {
		return err
	}
	if *steps > 0 {
		cfg.Steps = *steps
	}
	if *degradation != "" {
		cfg.Degradation = *degradation
	}
	if *seed >= 0 {
		cfg.Seed = uint64(*seed)
	}
	if cfg.Degradation == trainer.DegradePDM && *lr == "" {
		return fmt.Errorf("%w: --lr is required to learn a degradation (or use --degradation bicubic)", errUsage)
	}
	opts := trainer.Options{HRDir: *hr, LRDir: *lr, Out: *out, Log: e.log, Progress: e.progress, Truth: *truth, Version: version, InitSR: *initSR, VGG: *vgg}
	if (*valHR == "") != (*valLR == "") {
		return fmt.Errorf("%w: give both --val-hr and --val-lr, or neither", errUsage)
	}
	if *valEvery < 0 {
		return fmt.Errorf("%w: --val-every must not be negative", errUsage)
	}
	if *valHR != "" {
		opts.Val = &trainer.ValOptions{HR: *valHR, LR: *valLR, Every: cmp.Or(*valEvery, cfg.SampleEvery)}
	}
	var promReg *prometheus.Registry // the stream's metrics (none on local data)
	if streaming {
		if err := registry.ValidRunID(*run); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		conn.stream.Run = *run
		if err := conn.resolve(); err != nil {
			return err
		}
		if cfg.TrainsPDM() && *storeURL == "" {
			return fmt.Errorf("%w: --store is required to publish the PDM weights", errUsage)
		}
		js, closeConn, err := conn.dial(ctx, e, "pdmflow-train-"+*run)
		if err != nil {
			return err
		}
		defer closeConn()
		// The weights store first: the trainer creates its bucket when it
		// is missing (an S3 server started empty), before it reports
		// healthy, so that producers started after it find the bucket.
		var st *store.Bucket
		if cfg.TrainsPDM() {
			s3 := conn.s3
			s3.CreateBucket = true
			if st, err = store.Open(ctx, *storeURL, s3); err != nil {
				return err
			}
			defer st.Close()
		}
		promReg = metrics.NewRegistry()
		if _, err := metrics.Serve(ctx, conn.metricsAddr, promReg, e.log); err != nil {
			return err
		}
		so := &trainer.StreamOptions{
			JS: js,
			Consumer: consumer.Config{
				Stream: conn.stream.Name, Durable: "trainer-" + *run, Run: *run,
				Subject:   producer.SubjectFor(conn.stream.Subject, *run, "*"),
				PoolPairs: cfg.PoolPairs(), AcceptLoss: *acceptLoss,
			},
			PublishEvery: cmp.Or(*publishEvery, cfg.PublishEvery, 50),
			Metrics:      metrics.NewTrainer(promReg),
		}
		// The registry holds the run's contract (every run) and its
		// weights pointer (pdm runs, whose weights go to the store).
		if so.Registry, err = registry.OpenReplicas(ctx, js, st, *run, e.log, conn.stream.Replicas); err != nil {
			return err
		}
		opts.Stream = so
	}
	var gatherer prometheus.Gatherer
	if promReg != nil {
		gatherer = promReg
	}
	obs, stopUI, err := serveUI(ctx, e, *uiAddr, "pdmflow train "+*out, gatherer)
	if err != nil {
		return err
	}
	defer stopUI()
	opts.Observer = obs
	t, err := trainer.New(cfg, opts)
	if err != nil {
		return err
	}
	defer t.Close()
	return t.Run(ctx)
}

func loadConfig(preset, file string) (*trainer.Config, error) {
	if file != "" {
		return trainer.LoadConfig(file)
	}
	return trainer.Preset(preset)
}

func cmdPresets(ctx context.Context, e *env, args []string) error {
	fs, c := newFlags(e, "presets", "presets [--show NAME]")
	show := fs.String("show", "", "print this preset as YAML (a starting point for --config)")
	if err := parse(fs, c, e, args); err != nil {
		return err
	}
	if *show != "" {
		b, err := trainer.PresetYAML(*show)
		if err != nil {
			return err
		}
		_, err = e.stdout.Write(b)
		return err
	}
	for _, n := range trainer.Presets() {
		p, err := trainer.Preset(n)
		if err != nil {
			return err
		}
		sr := p.SR.Arch
		if p.Loss.Percep > 0 || p.Loss.SRAdv > 0 {
			sr += " (SRGAN)"
		}
		fmt.Fprintf(e.stdout, "%-25s %-9s x%d  batch %2d  HR %3d  %6d steps  kernel nb %-2d  noise %-7s  sr %s\n", n, p.Regime, p.Scale(), p.Batch, p.HRCrop, p.Steps, p.PDM.Kernel.NB, p.PDM.Noise.Mode, sr)
	}
	return nil
}
