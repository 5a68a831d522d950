package main

import (
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pdmflow/pdmflow/archive"
	"github.com/pdmflow/pdmflow/internal/imageio"
	"github.com/pdmflow/pdmflow/schema"
)

// decodeSamples parses inspect's JSON stream of samples.
func decodeSamples(t *testing.T, out string) []sampleInfo {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	var all []sampleInfo
	for {
		var s sampleInfo
		err := dec.Decode(&s)
		if err == io.EOF {
			return all
		}
		if err != nil {
			t.Fatalf("%v:\n%s", err, out)
		}
		all = append(all, s)
	}
}

func TestInspectArchive(t *testing.T) {
	f := newXPFixture(t)
	dir := t.TempDir()
	if code, _, stderr := pdmflow(t, "export", "--nats-url", f.url, "--out", dir); code != exitOK {
		t.Fatalf("export: exit %d\n%s", code, stderr)
	}

	// The summary, as text and as JSON.
	code, stdout, stderr := pdmflow(t, "inspect", "--archive", dir)
	if code != exitOK {
		t.Fatalf("inspect: exit %d\n%s", code, stderr)
	}
	wantOutput(t, "archive summary", stdout, "archive file://"+dir, "messages  5 (1 undecodable), 11 pairs",
		"producer  r1/p0: 3 batches", "producer  r2/p0: 1 batches (batch seq 0..0), 2 pairs", "kernel 5x5")
	code, stdout, stderr = pdmflow(t, "inspect", "--archive", dir, "--json")
	if code != exitOK {
		t.Fatalf("inspect --json: exit %d\n%s", code, stderr)
	}
	var m archive.Manifest
	if err := json.Unmarshal([]byte(stdout), &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Messages) != 5 || m.Pairs != 11 || m.Header == nil || m.Header.KernelSize != 5 || m.Messages[3].Error == "" {
		t.Errorf("manifest %+v", m)
	}
	code, _, stderr = pdmflow(t, "inspect", "--archive", dir, "--verify")
	if code != exitOK || !strings.Contains(stderr, "verified: all 5 messages") {
		t.Errorf("--verify: exit %d\n%s", code, stderr)
	}

	// One sample, with its pictures. The duplicate of batch 1 later in the
	// stream is not the one found.
	pngDir := filepath.Join(t.TempDir(), "png")
	code, stdout, stderr = pdmflow(t, "inspect", "--archive", dir, "--sample", "r1/p0/1/2", "--png", pngDir, "--zoom", "4")
	if code != exitOK {
		t.Fatalf("inspect --sample: exit %d\n%s", code, stderr)
	}
	got := decodeSamples(t, stdout)
	if len(got) != 1 {
		t.Fatalf("%d samples", len(got))
	}
	s := got[0]
	want := xpBatch("r1", "p0", 1, 3).Pairs[2]
	if s.SampleID != "r1/p0/1/2" || s.StreamSeq != f.seqs[1] || s.Subject != "pdmflow.pairs.r1.p0" || s.Time.IsZero() ||
		s.RunID != "r1" || s.ProducerID != "p0" || s.BatchSeq != 1 || s.Index != 2 || s.Seed != want.Seed ||
		s.WeightsVersion != 1 || s.WeightsSHA256 != want.WeightsSHA256 || s.SourceImage != "hr/img3.png" ||
		s.CropX != 5 || s.CropY != 6 || s.CropW != 16 || s.CropH != 16 || s.Dihedral != 3 ||
		s.NoiseMean != want.NoiseMean || s.NoiseStd != want.NoiseStd || s.Degradation != "pdm" || s.Scale != 4 {
		t.Errorf("sample %+v", s)
	}
	if !equalInts(s.XRefShape, 3, 16, 16) || !equalInts(s.YRefShape, 3, 4, 4) || !equalInts(s.KernelShape, 5, 5) {
		t.Errorf("shapes %v %v %v", s.XRefShape, s.YRefShape, s.KernelShape)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-6 }
	if !near(s.YRef.Min, -0.2) || !near(s.YRef.Max, 1.3) || !near(s.YRef.Mean, 0.55) {
		t.Errorf("y_ref stats %+v", s.YRef)
	}
	outside := 0
	for _, v := range want.YRef {
		if v < 0 || v > 1 {
			outside++
		}
	}
	if s.YRef.Outside != outside || outside == 0 {
		t.Errorf("y_ref outside [0,1]: %d, want %d", s.YRef.Outside, outside)
	}
	if k := s.Kernel; k == nil || !near(k.Sum, 1) || !near(k.Max, 0.75) || !near(k.CentroidX, 2.5) || !near(k.CentroidY, 2) {
		t.Errorf("kernel %+v, want sum 1, max 0.75, centroid (2.5, 2)", s.Kernel)
	}

	// The pictures.
	stem := filepath.Join(pngDir, "r1_p0_1_2")
	for name, file := range map[string]string{"x_ref": stem + ".x_ref.png", "y_ref": stem + ".y_ref.png", "kernel": stem + ".kernel.png"} {
		if s.PNG[name] != file {
			t.Errorf("png %s: %q, want %q", name, s.PNG[name], file)
		}
	}
	x, err := imageio.Load(stem + ".x_ref.png")
	if err != nil {
		t.Fatal(err)
	}
	if x.W != 16 || x.H != 16 || string(x.Pix) != string(want.XRef) {
		t.Errorf("x_ref PNG %dx%d differs from the sample", x.W, x.H)
	}
	y, err := imageio.Load(stem + ".y_ref.png")
	if err != nil {
		t.Fatal(err)
	}
	if y.W != 4 || y.H != 4 || y.Pix[0] != 0 || y.Pix[len(y.Pix)-1] != 255 || string(y.Pix) != string(imageio.FromPlanarFloat(4, 4, want.YRef).Pix) {
		t.Errorf("y_ref PNG %dx%d is not the clamped y_ref", y.W, y.H)
	}
	k, err := imageio.Load(stem + ".kernel.png")
	if err != nil {
		t.Fatal(err)
	}
	if k.W != 20 || k.H != 20 {
		t.Fatalf("kernel PNG %dx%d, want 20x20 (5x5 at zoom 4)", k.W, k.H)
	}
	at := func(x, y int) uint8 { return k.Pix[y*k.W+x] } // red plane; the image is gray
	if at(3*4, 2*4) != 255 || at(3*4+3, 2*4+3) != 255 || at(1*4+1, 2*4+2) != 85 || at(0, 0) != 0 || at(2*4, 2*4) != 0 {
		t.Errorf("kernel PNG: %d %d %d %d %d, want 255 255 85 0 0", at(12, 8), at(15, 11), at(5, 10), at(0, 0), at(8, 8))
	}

	// Every row of one message, by sequence.
	code, stdout, stderr = pdmflow(t, "inspect", "--archive", dir, "--seq", strconv.FormatUint(f.seqs[2], 10), "--index", "all")
	if code != exitOK {
		t.Fatalf("inspect --seq: exit %d\n%s", code, stderr)
	}
	if got := decodeSamples(t, stdout); len(got) != 2 || got[0].SampleID != "r2/p0/0/0" || got[1].SampleID != "r2/p0/0/1" || got[1].Kernel == nil {
		t.Errorf("--index all: %+v", got)
	}

	// What is not there.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--sample", "r1/p0/9/0"}, "sample not in the archive"},
		{[]string{"--sample", "r1/p0/1/3"}, "has 3 rows, no row 3"},
		{[]string{"--seq", "999"}, "seq 999 is not in"},
		{[]string{"--seq", strconv.FormatUint(f.seqs[0], 10), "--index", "5"}, "no row 5"},
		{[]string{"--seq", strconv.FormatUint(f.seqs[3], 10)}, "schema:"},
	} {
		code, _, stderr := pdmflow(t, append([]string{"inspect", "--archive", dir}, tc.args...)...)
		if code != exitFailure || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, %q; want %q", tc.args, code, stderr, tc.want)
		}
	}
	code, _, stderr = pdmflow(t, "inspect", "--archive", t.TempDir())
	if code != exitFailure || !strings.Contains(stderr, "has no manifest.json") {
		t.Errorf("not an archive: exit %d, %s", code, stderr)
	}
}

func equalInts(got []int, want ...int) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

func TestInspectStream(t *testing.T) {
	f := newXPFixture(t)

	code, stdout, stderr := pdmflow(t, "inspect", "--nats-url", f.url)
	if code != exitOK {
		t.Fatalf("inspect: exit %d\n%s", code, stderr)
	}
	wantOutput(t, "stream state", stdout, "stream PDMFLOW_PAIRS (subjects pdmflow.pairs.>", "messages  5,",
		"seq       "+strconv.FormatUint(f.seqs[0], 10)+".."+strconv.FormatUint(f.seqs[4], 10),
		"RUN", "r1   p0", "DELIVERED", "ACK FLOOR", "ACK PENDING", "trainer-r1")
	code, stdout, stderr = pdmflow(t, "inspect", "--nats-url", f.url, "--json")
	if code != exitOK {
		t.Fatalf("inspect --json: exit %d\n%s", code, stderr)
	}
	var st streamState
	if err := json.Unmarshal([]byte(stdout), &st); err != nil {
		t.Fatal(err)
	}
	if st.Stream != "PDMFLOW_PAIRS" || st.Messages != 5 || st.FirstSeq != f.seqs[0] || st.LastSeq != f.seqs[4] || st.LastTime.Before(st.FirstTime) {
		t.Errorf("stream %+v", st)
	}
	if len(st.PerRun) != 2 || st.PerRun[0] != (subjectCount{"r1", "p0", "pdmflow.pairs.r1.p0", 4}) || st.PerRun[1].Run != "r2" || st.PerRun[1].Messages != 1 {
		t.Errorf("per producer %+v", st.PerRun)
	}
	var tr *consumerState
	for i := range st.Consumers {
		if st.Consumers[i].Name == "trainer-r1" {
			tr = &st.Consumers[i]
		}
	}
	// Delivered seqs[0] and seqs[1], acked seqs[0]; seqs[3] and seqs[4] wait.
	if tr == nil || !tr.Durable || tr.Filter != "pdmflow.pairs.r1.*" || tr.Delivered != f.seqs[1] || tr.AckFloor != f.seqs[0] || tr.Pending != 2 || tr.AckPending != 1 {
		t.Errorf("trainer consumer %+v in %+v", tr, st.Consumers)
	}

	// A sample straight from the stream, by id (the first copy of batch 1)
	// and by sequence.
	code, stdout, stderr = pdmflow(t, "inspect", "--nats-url", f.url, "--sample", "r1/p0/1/2", "--seq", strconv.FormatUint(f.seqs[4], 10), "--index", "1", "--png", t.TempDir())
	if code != exitOK {
		t.Fatalf("inspect --sample: exit %d\n%s", code, stderr)
	}
	got := decodeSamples(t, stdout)
	if len(got) != 2 || got[0].SampleID != "r1/p0/1/2" || got[0].StreamSeq != f.seqs[1] || got[0].Source != "stream PDMFLOW_PAIRS" ||
		got[1].SampleID != "r1/p0/1/1" || got[1].StreamSeq != f.seqs[4] || got[0].Kernel == nil || len(got[1].PNG) != 3 {
		t.Errorf("samples %+v", got)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--sample", "r1/p0/7/0"}, exitFailure, "carries batch 7"},
		{[]string{"--sample", "r9/p0/0/0"}, exitFailure, "no message on pdmflow.pairs.r9.p0"},
		{[]string{"--sample", "r1/p0/1/5"}, exitFailure, "no row 5"},
		{[]string{"--sample", "r1/p0/x"}, exitUsage, "want RUN/PRODUCER/BATCHSEQ/INDEX"},
		{[]string{"--sample", "r1/*/1/0"}, exitUsage, "want RUN/PRODUCER/BATCHSEQ/INDEX"},
		{[]string{"--seq", "999"}, exitFailure, "seq 999"},
		{[]string{"--seq", strconv.FormatUint(f.seqs[3], 10)}, exitFailure, "schema:"},
	} {
		code, _, stderr := pdmflow(t, append([]string{"inspect", "--nats-url", f.url}, tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, %q; want %d and %q", tc.args, code, stderr, tc.code, tc.want)
		}
	}
}

func TestInspectUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"inspect", "--index", "1"}, "--index needs --seq"},
		{[]string{"inspect", "--png", "d"}, "--png needs --sample or --seq"},
		{[]string{"inspect", "--verify"}, "--verify goes with --archive"},
		{[]string{"inspect", "--seq", "3", "--index", "x"}, "--index"},
		{[]string{"inspect", "--sample", "a/b/1/0", "--zoom", "0"}, "--zoom"},
		{[]string{"inspect", "extra"}, "unexpected arguments"},
	} {
		code, _, stderr := pdmflow(t, tc.args...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, %q; want %d and %q", tc.args, code, stderr, exitUsage, tc.want)
		}
	}
	code, stdout, _ := pdmflow(t, "inspect", "--help")
	if code != exitOK {
		t.Fatalf("--help: exit %d", code)
	}
	wantOutput(t, "inspect --help", stdout, "Usage: pdmflow inspect", "--archive URL", "--sample ID", "--png DIR", "the live stream", "nats-url", "s3-endpoint")
}

// TestInspectPNGNamesStayInDir: --png builds file names from sample ids, so
// an id from the stream that is not one (a path, dots) is refused and
// nothing is written outside the directory.
func TestInspectPNGNamesStayInDir(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "png")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	h := schema.Header{Scale: 4, HRH: 8, HRW: 8, LRH: 2, LRW: 2, Degradation: schema.DegradationBicubic}
	for _, id := range []string{"..", "../x", "r/../../x/0", "/abs/1/2", "r\\..\\p/1/2", "."} {
		s := sample{header: h, pair: schema.Pair{SampleID: id, XRef: make([]uint8, 3*8*8), YRef: make([]float32, 3*2*2)}}
		files, err := writePNGs(dir, s, 1)
		if err == nil {
			t.Errorf("sample id %q: wrote %v, want an error", id, files)
		}
	}
	var outside []string
	filepath.Walk(filepath.Dir(root), func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && filepath.Dir(p) != dir {
			outside = append(outside, p)
		}
		return nil
	})
	if len(outside) > 0 {
		t.Fatalf("files written outside %s: %v", dir, outside)
	}
}
