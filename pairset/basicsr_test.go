package pairset_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pdmflow/pdmflow/internal/imageio"
	"github.com/pdmflow/pdmflow/pairset"
)

// TestBasicSRReadBack writes testStream as BasicSR folders and reads
// every pair back: HR PNGs hold x_ref exactly, LR PNGs y_ref rounded to 8
// bits, meta_info.txt names each pair once in stream order, and the
// provenance lines carry every other field.
func TestBasicSRReadBack(t *testing.T) {
	ctx := context.Background()
	msgs, bad := testStream()
	dst := openDir(t, t.TempDir())
	w, err := pairset.NewBasicSR(ctx, dst, pairset.Options{RowsPerFile: 5, Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	m := write(t, w, msgs, bad)
	pairs, hdrs, origins := uniquePairs(msgs)
	checkManifest(t, dst, m, pairset.FormatBasicSR, len(pairs))
	if !strings.Contains(m.Note, "8 bits") {
		t.Errorf("manifest note %q does not say the LR PNGs are rounded", m.Note)
	}

	meta, err := dst.Get(ctx, pairset.BasicSRMeta)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(meta), "\n"), "\n")
	if len(lines) != len(pairs) {
		t.Fatalf("meta_info.txt has %d lines, want %d", len(lines), len(pairs))
	}
	var prov []provLine
	for part := 0; ; part++ {
		data, err := dst.Get(ctx, fmt.Sprintf("provenance/%05d.jsonl", part))
		if err != nil {
			if part != (len(pairs)+4)/5 {
				t.Errorf("%d provenance parts, want %d (%v)", part, (len(pairs)+4)/5, err)
			}
			break
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var v provLine
			d := json.NewDecoder(bytes.NewReader(sc.Bytes()))
			d.DisallowUnknownFields()
			if err := d.Decode(&v); err != nil {
				t.Fatal(err)
			}
			prov = append(prov, v)
		}
	}
	if len(prov) != len(pairs) {
		t.Fatalf("%d provenance lines, want %d", len(prov), len(pairs))
	}
	for i, p := range pairs {
		h := hdrs[i]
		name, _ := pairset.Name(p.SampleID)
		if want := fmt.Sprintf("%s.png (%d,%d,3)", name, h.HRH, h.HRW); lines[i] != want {
			t.Errorf("meta line %d: %q, want %q", i, lines[i], want)
		}
		hr := decodePNG(t, dst, pairset.BasicSRHRDir+"/"+name+".png")
		if hr.W != h.HRW || hr.H != h.HRH || !bytes.Equal(hr.Pix, p.XRef) {
			t.Errorf("%s: HR PNG differs from x_ref", name)
		}
		lr := decodePNG(t, dst, pairset.BasicSRLRDir+"/"+name+".png")
		if want := imageio.FromPlanarFloat(h.LRW, h.LRH, p.YRef); lr.W != h.LRW || lr.H != h.LRH || !bytes.Equal(lr.Pix, want.Pix) {
			t.Errorf("%s: LR PNG differs from y_ref rounded to 8 bits", name)
		}
		v := prov[i]
		want := provLine{
			SampleID: p.SampleID, Name: name, RunID: p.RunID, ProducerID: p.ProducerID, BatchSeq: p.BatchSeq, Index: p.Index,
			Seed: p.Seed, WeightsVersion: p.WeightsVersion, WeightsSHA256: p.WeightsSHA256, SourceImage: p.SourceImage,
			CropX: p.CropX, CropY: p.CropY, CropW: p.CropW, CropH: p.CropH, Dihedral: p.Dihedral,
			Scale: h.Scale, HRH: h.HRH, HRW: h.HRW, LRH: h.LRH, LRW: h.LRW, KernelSize: h.KernelSize,
			Degradation: h.Degradation, Device: h.Device, Kernel: p.Kernel, NoiseMean: p.NoiseMean, NoiseStd: p.NoiseStd,
			StreamSeq: origins[i].Seq, StreamTime: origins[i].Time, Subject: origins[i].Subject,
		}
		if fmt.Sprintf("%+v", v) != fmt.Sprintf("%+v", want) || !v.StreamTime.Equal(want.StreamTime) {
			t.Errorf("provenance line %d:\n got %+v\nwant %+v", i, v, want)
		}
	}
	// No image but those of the pairs.
	for _, dir := range []string{pairset.BasicSRHRDir, pairset.BasicSRLRDir} {
		keys, err := dst.List(ctx, dir+"/")
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != len(pairs) {
			t.Errorf("%s holds %d files, want %d", dir, len(keys), len(pairs))
		}
	}
}

// provLine is a provenance line as a reader in another language would
// declare it, from the package documentation's column list.
type provLine struct {
	SampleID       string    `json:"sample_id"`
	Name           string    `json:"name"`
	RunID          string    `json:"run_id"`
	ProducerID     string    `json:"producer_id"`
	BatchSeq       uint64    `json:"batch_seq"`
	Index          uint32    `json:"index"`
	Seed           uint64    `json:"seed"`
	WeightsVersion uint64    `json:"weights_version"`
	WeightsSHA256  string    `json:"weights_sha256"`
	SourceImage    string    `json:"source_image"`
	CropX          int32     `json:"crop_x"`
	CropY          int32     `json:"crop_y"`
	CropW          int32     `json:"crop_w"`
	CropH          int32     `json:"crop_h"`
	Dihedral       uint8     `json:"dihedral"`
	Scale          int       `json:"scale"`
	HRH            int       `json:"hr_h"`
	HRW            int       `json:"hr_w"`
	LRH            int       `json:"lr_h"`
	LRW            int       `json:"lr_w"`
	KernelSize     int       `json:"kernel_size"`
	Degradation    string    `json:"degradation"`
	Device         string    `json:"device"`
	Kernel         []float32 `json:"kernel"`
	NoiseMean      float32   `json:"noise_mean"`
	NoiseStd       float32   `json:"noise_std"`
	StreamSeq      uint64    `json:"stream_seq"`
	StreamTime     time.Time `json:"stream_time"`
	Subject        string    `json:"subject"`
}

// The seed is a uint64: JSON numbers beyond 2^53 must survive exactly for
// a reader that parses them as integers.
func TestBasicSRProvenanceKeepsUint64(t *testing.T) {
	ctx := context.Background()
	msgs, bad := testStream()
	dst := openDir(t, t.TempDir())
	w, err := pairset.NewBasicSR(ctx, dst, pairset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	write(t, w, msgs, bad)
	data, err := dst.Get(ctx, "provenance/00000.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v map[string]any
	if err := d.Decode(&v); err != nil {
		t.Fatal(err)
	}
	if got, want := v["seed"].(json.Number).String(), fmt.Sprint(msgs[0].b.Pairs[0].Seed); got != want {
		t.Errorf("seed %s, want %s", got, want)
	}
}

func decodePNG(t *testing.T, dst interface {
	Get(context.Context, string) ([]byte, error)
}, key string) *imageio.Image {
	t.Helper()
	data, err := dst.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	im, err := imageio.Decode(bytes.NewReader(data), key)
	if err != nil {
		t.Fatal(err)
	}
	return im
}

// The provenance lines have exactly the Parquet columns but the images.
func TestProvenanceKeysAreTheColumns(t *testing.T) {
	var want []string
	for _, c := range pairset.Columns {
		if c.Name != "x_ref" && c.Name != "y_ref" {
			want = append(want, c.Name)
		}
	}
	var got []string
	rt := reflect.TypeFor[provLine]()
	for i := range rt.NumField() {
		got = append(got, rt.Field(i).Tag.Get("json"))
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("provenance keys %v, want %v", got, want)
	}
}
