package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pdmflow/pdmflow/internal/jobs"
	"github.com/pdmflow/pdmflow/internal/testutil"
)

// TestEvalOutput: without the new flags eval prints exactly what it always
// printed (the old format strings, filled from jobs.Eval); --y-channel and
// --shift change what PSNR and SSIM measure and say so; usage errors name
// the flag.
func TestEvalOutput(t *testing.T) {
	dir := t.TempDir()
	sr, gt := filepath.Join(dir, "sr"), filepath.Join(dir, "gt")
	testutil.WriteImages(t, sr, 2, 40, 36, 1)
	testutil.WriteImages(t, gt, 2, 40, 36, 2)
	res, err := jobs.Eval(sr, gt, 4)
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for _, s := range res.Images {
		fmt.Fprintf(&want, "%-32s PSNR %6.2f dB  SSIM %.4f\n", s.Name, *s.PSNR, *s.SSIM)
	}
	fmt.Fprintf(&want, "%-32s PSNR %6.2f dB  SSIM %.4f  (%d images, RGB, border %d)\n", "mean", *res.PSNR, *res.SSIM, len(res.Images), res.Border)
	var o, e bytes.Buffer
	if code := run(context.Background(), []string{"eval", "--sr", sr, "--hr", gt}, &o, &e); code != exitOK {
		t.Fatalf("exit %d: %s", code, e.String())
	}
	if o.String() != want.String() {
		t.Errorf("default output changed:\n%s\nwant\n%s", o.String(), want.String())
	}
	o.Reset()
	if code := run(context.Background(), []string{"eval", "--sr", sr, "--hr", gt, "--y-channel", "--shift", "2"}, &o, &e); code != exitOK {
		t.Fatalf("exit %d: %s", code, e.String())
	}
	if !strings.Contains(o.String(), "Y (BT.601), border 4, best of shifts within +-2, whole image") || !strings.Contains(o.String(), "shifts (") {
		t.Errorf("Y and shift output:\n%s", o.String())
	}
	o.Reset()
	if code := run(context.Background(), []string{"eval", "--sr", sr, "--hr", gt, "--y-channel", "--json"}, &o, &e); code != exitOK {
		t.Fatalf("exit %d: %s", code, e.String())
	}
	var js map[string]any
	if err := json.Unmarshal(o.Bytes(), &js); err != nil || js["channel"] != "y" {
		t.Errorf("JSON %v (%v)", js, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"eval", "--sr", sr}, "--hr is required"},
		{[]string{"eval", "--sr", sr, "--hr", gt, "--shift-patch", "60"}, "--shift-patch needs --shift"},
		{[]string{"eval", "--sr", sr, "--hr", gt, "--shift", "-1"}, "must be at least 0"},
		{[]string{"niqe-fit", "--pristine", sr}, "--out is required"},
		{[]string{"import", "--in", "x.pth", "--kind", "disc", "--out", "y"}, "--stride 1 or 2"},
		{[]string{"import", "--in", "x.pth", "--kind", "vgg", "--out", "y"}, `--kind "vgg"`},
	} {
		var o, e bytes.Buffer
		if code := run(context.Background(), tc.args, &o, &e); code != exitUsage || !strings.Contains(e.String(), tc.want) {
			t.Errorf("%v: exit %d, %q does not say %q", tc.args, code, e.String(), tc.want)
		}
	}
}
