package archive

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pdmflow/pdmflow/schema"
)

func sampleManifest() *Manifest {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	h := schema.Header{Scale: 4, HRH: 128, HRW: 128, LRH: 32, LRW: 32, KernelSize: 21, Degradation: schema.DegradationPDM}
	m := &Manifest{
		Format: Format, Created: t0.Add(time.Minute), Stream: DefaultStream, Filter: DefaultFilter,
		FirstSeq: 7, LastSeq: 9, FirstTime: t0, LastTime: t0.Add(2 * time.Second),
		Runs: []string{"r1"}, Weights: []Weights{{"r1", 3, strings.Repeat("c", 64)}},
		Header: &h, Pairs: 32, Bytes: 3000,
	}
	m.Messages = []Message{
		{Seq: 7, Time: t0, Subject: "pdmflow.pairs.r1.p0", Key: MessageKey(7), Bytes: 1000, SHA256: strings.Repeat("a", 64),
			Run: "r1", Producer: "p0", BatchSeq: 4, Pairs: 32, WeightsVersion: 3, WeightsSHA256: strings.Repeat("c", 64)},
		{Seq: 9, Time: t0.Add(2 * time.Second), Subject: "pdmflow.pairs.r1.p0", Key: MessageKey(9), Bytes: 2000, SHA256: strings.Repeat("b", 64),
			Error: "schema: truncated message"},
	}
	return m
}

// TestManifestJSON: the manifest round-trips, and its keys are snake_case,
// the header's included.
func TestManifestJSON(t *testing.T) {
	m := sampleManifest()
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"format":`, `"first_seq":7`, `"last_time":`, `"weights":[{"run":"r1","version":3,"sha256":`, `"header":{"scale":4,"hr_h":128,"hr_w":128,"lr_h":32,"lr_w":32,"kernel_size":21,"degradation":"pdm"}`,
		`"batch_seq":4`, `"weights_version":3`, `"error":"schema: truncated message"`} {
		if !strings.Contains(string(data), k) {
			t.Errorf("manifest JSON lacks %s:\n%s", k, data)
		}
	}
	if strings.Contains(string(data), "HRH") {
		t.Errorf("Go field names in the JSON:\n%s", data)
	}
	got, err := parseManifest(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, m)
	}
	// Keys a newer writer adds are ignored.
	extra := strings.Replace(string(data), `"format":`, `"future":{"x":1},"format":`, 1)
	if _, err := parseManifest([]byte(extra)); err != nil {
		t.Errorf("unknown key: %v", err)
	}
}

// FuzzManifest: parseManifest never panics, fails only with ErrManifest, and
// what it accepts re-encodes to a manifest it accepts again, equal.
func FuzzManifest(f *testing.F) {
	good, err := json.Marshal(sampleManifest())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"format":"pdmflow-archive/1","messages":[]}`))
	f.Add([]byte(`{"format":"pdmflow-archive/1","header":null,"messages":[{"seq":1,"key":"messages/00000000000000000001.arrows","sha256":""}]}`))
	f.Add([]byte(`{"format":"pdmflow-archive/1","first_seq":1,"last_seq":1,"messages":[{"seq":1,"key":"messages/00000000000000000001.arrows","bytes":0,"sha256":"` + strings.Repeat("0", 64) + `"}]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		m, err := parseManifest(data)
		if err != nil {
			if !errors.Is(err, ErrManifest) {
				t.Fatalf("error %v does not wrap ErrManifest", err)
			}
			return
		}
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := parseManifest(again)
		if err != nil {
			t.Fatalf("re-encoded manifest refused: %v\n%s", err, again)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip differs:\n%+v\n%+v", m, m2)
		}
	})
}
