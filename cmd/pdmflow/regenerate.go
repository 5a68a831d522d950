package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/pdmflow/pdmflow/archive"
	"github.com/pdmflow/pdmflow/internal/dataset"
	"github.com/pdmflow/pdmflow/internal/progress"
	"github.com/pdmflow/pdmflow/model"
	"github.com/pdmflow/pdmflow/producer"
	"github.com/pdmflow/pdmflow/store"
)

func cmdRegenerate(ctx context.Context, e *env, args []string) error {
	fs, c := newFlags(e, "regenerate", "regenerate --archive URL --hr DIR|s3://... [--store URL] (--sample RUN/PRODUCER/BATCH/INDEX[,...] | --seq N[-M][,...] | --all) [S3 flags]")
	var conn connection
	conn.addFlags(fs)
	archiveURL := fs.String("archive", "", "archive written by 'pdmflow export' (a directory or s3://bucket/prefix)")
	hr := fs.String("hr", "", "the producers' HR images (the same files: a directory or s3://bucket/prefix)")
	storeURL := fs.String("store", "", "blob store of the PDM weights (the trainer's --store); weights are fetched by the SHA-256 each row records")
	samples := fs.String("sample", "", "comma-separated sample ids to regenerate (their whole batches are recomputed)")
	seqs := fs.String("seq", "", "stream sequences of archived messages to regenerate: N, N-M, or a comma-separated list of both")
	all := fs.Bool("all", false, "regenerate every message of the archive")
	if err := parse(fs, c, e, args); err != nil {
		return err
	}
	if err := required(map[string]string{"archive": *archiveURL, "hr": *hr}); err != nil {
		return err
	}
	chosen := 0
	for _, set := range []bool{*samples != "", *seqs != "", *all} {
		if set {
			chosen++
		}
	}
	if chosen != 1 {
		return fmt.Errorf("%w: give exactly one of --sample, --seq and --all", errUsage)
	}
	if err := conn.resolve(); err != nil {
		return err
	}
	st, err := store.Open(ctx, *archiveURL, conn.s3)
	if err != nil {
		return err
	}
	defer st.Close()
	r, err := archive.Open(ctx, st)
	if err != nil {
		return err
	}
	msgs := r.Manifest().Messages
	// Which messages, and which rows of each (nil: all).
	type pick struct {
		msg  int
		rows []int
	}
	var picks []pick
	switch {
	case *all:
		for i, m := range msgs {
			if m.Error == "" {
				picks = append(picks, pick{msg: i})
			}
		}
	case *seqs != "":
		bySeq := map[uint64]int{}
		for i, m := range msgs {
			bySeq[m.Seq] = i
		}
		for _, s := range strings.Split(*seqs, ",") {
			lo, hi, err := seqRange(strings.TrimSpace(s))
			if err != nil {
				return fmt.Errorf("%w: --seq %q: %v", errUsage, s, err)
			}
			found := 0
			for seq := lo; seq <= hi; seq++ {
				i, ok := bySeq[seq]
				if !ok {
					if lo == hi {
						return fmt.Errorf("stream sequence %d is not in the archive (it holds %d-%d)", seq, r.Manifest().FirstSeq, r.Manifest().LastSeq)
					}
					continue // a range may span other runs' messages
				}
				if msgs[i].Error != "" {
					if lo == hi {
						return fmt.Errorf("stream sequence %d was refused by the decoder when it was archived (%s): nothing to regenerate", seq, msgs[i].Error)
					}
					continue
				}
				picks = append(picks, pick{msg: i})
				found++
			}
			if found == 0 {
				return fmt.Errorf("no regenerable message of the archive (which holds %d-%d) is in %s", r.Manifest().FirstSeq, r.Manifest().LastSeq, s)
			}
		}
	default:
		at := map[int]int{}
		for _, id := range strings.Split(*samples, ",") {
			i, row, err := r.FindSample(strings.TrimSpace(id))
			if err != nil {
				return err
			}
			if k, ok := at[i]; ok {
				picks[k].rows = append(picks[k].rows, row)
				continue
			}
			at[i] = len(picks)
			picks = append(picks, pick{msg: i, rows: []int{row}})
		}
	}
	h := r.Manifest().Header
	if h == nil {
		return fmt.Errorf("archive %s holds no decodable message", st.URL())
	}
	// The producer skipped images smaller than its crop: so must we, or
	// the seeds would draw other images.
	images, err := dataset.LoadSource(ctx, *hr, h.HRH, conn.s3, e.log)
	if err != nil {
		return err
	}
	var weights *store.Bucket
	pdms := map[string]*model.PDM{}
	meter := &progress.Meter{Out: e.progress, Unit: "messages", Total: len(picks)}
	meter.Start(0)
	checked, differ := 0, 0
	devices := map[string]int{} // messages made by a device other than the CPU reference
	for n, p := range picks {
		rec, err := r.Batch(ctx, p.msg)
		if err != nil {
			return err
		}
		var pdm *model.PDM
		if rec.Header.Degradation == producer.DegradePDM {
			sha := rec.Pairs[0].WeightsSHA256
			if pdms[sha] == nil {
				if *storeURL == "" {
					return fmt.Errorf("%w: --store is required: the pairs were made with PDM weights (version %d, sha256 %s)", errUsage, rec.Pairs[0].WeightsVersion, sha)
				}
				if weights == nil {
					if weights, err = store.Open(ctx, *storeURL, conn.s3); err != nil {
						return err
					}
					defer weights.Close()
				}
				if pdms[sha], err = producer.WeightsBySHA(ctx, weights, sha); err != nil {
					return fmt.Errorf("weights version %d of %s: %w", rec.Pairs[0].WeightsVersion, rec.Pairs[0].SampleID, err)
				}
			}
			pdm = pdms[sha]
		}
		got, err := producer.Regenerate(images, pdm, rec)
		if err != nil {
			return fmt.Errorf("stream sequence %d: %w", msgs[p.msg].Seq, err)
		}
		// Rows made by another device than the CPU reference are checked
		// within that device's tolerance.
		tol, err := model.ToleranceFor(rec.Header.Device)
		if err != nil {
			return fmt.Errorf("stream sequence %d: %w", msgs[p.msg].Seq, err)
		}
		if !tol.Exact() {
			devices[rec.Header.Device]++
		}
		rows := p.rows
		if rows == nil {
			for i := range rec.Pairs {
				rows = append(rows, i)
			}
		}
		for _, i := range rows {
			checked++
			d := producer.DiffWithin(rec.Pairs[i], got.Pairs[i], tol)
			if d == nil {
				if p.rows != nil && tol.Exact() {
					fmt.Fprintf(e.stdout, "%s: bit-identical (seq %d, weights version %d)\n", rec.Pairs[i].SampleID, msgs[p.msg].Seq, rec.Pairs[i].WeightsVersion)
				} else if p.rows != nil {
					fmt.Fprintf(e.stdout, "%s: made by %s, within its tolerance of the CPU reference (y_ref %g, kernel %g; seq %d, weights version %d)\n",
						rec.Pairs[i].SampleID, rec.Header.Device, tol.YRef, tol.Kernel, msgs[p.msg].Seq, rec.Pairs[i].WeightsVersion)
				}
				continue
			}
			differ++
			fmt.Fprintf(e.stdout, "%s: DIFFERS: %s\n", rec.Pairs[i].SampleID, strings.Join(d, "; "))
		}
		if len(picks) > 1 {
			meter.Print(n+1, fmt.Sprintf("rows %d, differing %d", checked, differ))
		}
	}
	other := ""
	for dev, n := range devices {
		other += fmt.Sprintf("; %d messages made by %s, checked within its tolerance", n, dev)
	}
	fmt.Fprintf(e.stdout, "regenerated %d rows of %d messages with %d weights versions on the CPU reference: %d match, %d differ%s\n", checked, len(picks), len(pdms), checked-differ, differ, other)
	if differ > 0 {
		return fmt.Errorf("%d of %d regenerated rows differ from the record", differ, checked)
	}
	return nil
}

// seqRange parses "N" or "N-M" (inclusive).
func seqRange(s string) (lo, hi uint64, err error) {
	a, b, isRange := strings.Cut(s, "-")
	if lo, err = strconv.ParseUint(a, 10, 64); err != nil {
		return 0, 0, errors.New("want N or N-M")
	}
	hi = lo
	if isRange {
		if hi, err = strconv.ParseUint(b, 10, 64); err != nil || hi < lo {
			return 0, 0, errors.New("want N or N-M with N <= M")
		}
	}
	return lo, hi, nil
}
