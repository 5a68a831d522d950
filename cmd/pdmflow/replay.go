package main

import (
	"context"
	"fmt"
	"time"

	"github.com/pdmflow/pdmflow/archive"
	"github.com/pdmflow/pdmflow/consumer"
	"github.com/pdmflow/pdmflow/producer"
	"github.com/pdmflow/pdmflow/registry"
	"github.com/pdmflow/pdmflow/store"
	"github.com/pdmflow/pdmflow/trainer"
)

func cmdReplay(ctx context.Context, e *env, args []string) error {
	fs, c := newFlags(e, "replay", "replay (--archive URL | --run ID [--from-seq N | --since RFC3339] [NATS flags]) --config ORIGINAL_OUT/config.yaml --lr DIR --out DIR [--compare ORIGINAL_OUT]")
	var conn connection
	conn.addFlags(fs)
	archiveURL := fs.String("archive", "", "replay an archive written by 'pdmflow export' (a directory or s3://bucket/prefix)")
	run := fs.String("run", "", "replay the live stream of this run instead of an archive")
	fromSeq := fs.Uint64("from-seq", 0, "with --run: start at this stream sequence (default: the run's first message)")
	fromTime := fs.String("since", "", "with --run: start at the first message stored at or after this time (RFC 3339; as export --since)")
	config := fs.String("config", "", "the original run's config (its OUT/config.yaml): it holds the seed and the pool size the replay must share")
	lr := fs.String("lr", "", "directory of real low-resolution images (the original run's --lr)")
	out := fs.String("out", "", "output directory of the replay (it resumes from its own checkpoint)")
	steps := optCount(fs, "steps", 0, "number of steps (default: the config's)")
	initSR := fs.String("init-sr", "", "the original run's --init-sr (a replay must start from the same SR weights; run.json records them)")
	vgg := fs.String("vgg", "", "the original run's --vgg, for a PDM-SRGAN config whose file does not name its VGG19 weights")
	compare := fs.String("compare", "", "the original run's output directory: after the replay, compare losses and weights bit for bit (exit status 1 if they differ)")
	if err := parse(fs, c, e, args); err != nil {
		return err
	}
	if err := required(map[string]string{"config": *config, "out": *out}); err != nil {
		return err
	}
	if (*archiveURL == "") == (*run == "") {
		return fmt.Errorf("%w: give exactly one of --archive and --run", errUsage)
	}
	if *archiveURL != "" && (*fromSeq > 0 || *fromTime != "") {
		return fmt.Errorf("%w: --from-seq and --since are for --run (an archive replays from its start)", errUsage)
	}
	var start time.Time
	if *fromTime != "" {
		t, err := time.Parse(time.RFC3339, *fromTime)
		if err != nil {
			return fmt.Errorf("%w: --since: %v", errUsage, err)
		}
		start = t
	}
	cfg, err := trainer.LoadConfig(*config)
	if err != nil {
		return err
	}
	if *steps > 0 {
		cfg.Steps = *steps
	}
	if cfg.TrainsPDM() && *lr == "" {
		return fmt.Errorf("%w: --lr is required: the original run learned a degradation from real LR images", errUsage)
	}
	conn.stream.Run = *run
	if err := conn.resolve(); err != nil {
		return err
	}
	so := &trainer.StreamOptions{}
	if *archiveURL != "" {
		st, err := store.Open(ctx, *archiveURL, conn.s3)
		if err != nil {
			return err
		}
		defer st.Close()
		r, err := archive.Open(ctx, st)
		if err != nil {
			return err
		}
		m := r.Manifest()
		e.log.Info("replaying an archive", "archive", st.URL(), "messages", len(m.Messages), "pairs", m.Pairs, "seq", fmt.Sprintf("%d-%d", m.FirstSeq, m.LastSeq))
		so.OpenSource = func(_ context.Context, after uint64) (consumer.Source, error) {
			return trainer.ArchiveSource(r, after), nil
		}
		if len(m.Runs) == 1 {
			so.Consumer.Run = m.Runs[0] // every message must be of the run, as the trainer had it
		}
	} else {
		if err := registry.ValidRunID(*run); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		// A replay reads the stream; it creates nothing.
		js, _, closeConn, err := exportDial(ctx, e, &conn, "pdmflow-replay-"+*run)
		if err != nil {
			return err
		}
		defer closeConn()
		so.JS = js
		so.Consumer = consumer.Config{
			Stream: conn.stream.Name, Durable: "replay-" + *run, Run: *run,
			Subject:  producer.SubjectFor(conn.stream.Subject, *run, "*"),
			StartSeq: *fromSeq, StartTime: start,
		}
	}
	// No weights are published: a replay must not move the live run's
	// pointer.
	t, err := trainer.New(cfg, trainer.Options{LRDir: *lr, Out: *out, Log: e.log, Progress: e.progress, Stream: so, Version: version, InitSR: *initSR, VGG: *vgg})
	if err != nil {
		return err
	}
	defer t.Close()
	if err := t.Run(ctx); err != nil {
		return err
	}
	if *compare == "" {
		return nil
	}
	diffs, err := trainer.CompareOutputs(*compare, *out)
	if err != nil {
		return err
	}
	if len(diffs) > 0 {
		for _, d := range diffs {
			fmt.Fprintln(e.stdout, d)
		}
		return fmt.Errorf("the replay differs from %s in %d places", *compare, len(diffs))
	}
	fmt.Fprintf(e.stdout, "bit-identical to %s: every logged loss, %s and %s\n", *compare, trainer.PDMFile, trainer.SRFile)
	return nil
}
