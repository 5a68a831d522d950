// Package testutil holds helpers shared by pdmflow's tests: small image
// sets on disk and an embedded JetStream server.
package testutil

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pdmflow/pdmflow/internal/broker"
	"github.com/pdmflow/pdmflow/internal/imageio"
	"github.com/pdmflow/pdmflow/model"
)

// WriteImages writes n smooth random RGB images of w x h (sums of sines
// plus a little noise, so that crops differ) into dir as img0.png, ...
func WriteImages(t testing.TB, dir string, n, w, h int, seed uint64) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(seed, 1))
	for i := 0; i < n; i++ {
		pix := make([]float32, 3*w*h)
		fx, fy := 0.05+0.3*r.Float64(), 0.05+0.3*r.Float64()
		for c := 0; c < 3; c++ {
			ph := r.Float64() * 6
			for y := 0; y < h; y++ {
				for x := 0; x < w; x++ {
					pix[(c*h+y)*w+x] = float32(0.5 + 0.35*math.Sin(fx*float64(x)+fy*float64(y)+ph) + 0.1*r.Float64())
				}
			}
		}
		if err := imageio.FromPlanarFloat(w, h, pix).Save(filepath.Join(dir, fmt.Sprintf("img%d.png", i))); err != nil {
			t.Fatal(err)
		}
	}
}

// JetStream starts an embedded JetStream server (random port, store in a
// temporary directory) and connects to it; both stop when the test ends.
func JetStream(t testing.TB) (*broker.Broker, jetstream.JetStream) {
	t.Helper()
	b, err := broker.Start(context.Background(), broker.Options{Dir: t.TempDir(), Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Shutdown)
	nc, err := nats.Connect(b.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return b, js
}

// RandomizePDM moves every learnable parameter of p by U(-a, a) and draws
// BatchNorm running statistics (means in [-0.2, 0.2], variances in
// [0.5, 1.5]), so that tests run the networks at a generic point: the
// zero-initialised last layers and the initial statistics would otherwise
// hide errors in the layers before them.
func RandomizePDM(p *model.PDM, r *rand.Rand, a float64) {
	for _, m := range p.Modules() {
		for _, q := range m.Params() {
			lo, hi, add := -a, a, true
			switch {
			case strings.HasSuffix(q.Name, ".running_mean"):
				lo, hi, add = -0.2, 0.2, false
			case strings.HasSuffix(q.Name, ".running_var"):
				lo, hi, add = 0.5, 1.5, false
			case !q.Learnable:
				continue
			}
			switch d := q.Value.Data().(type) {
			case []float32:
				for i := range d {
					v := float32(lo + (hi-lo)*r.Float64())
					if add {
						v += d[i]
					}
					d[i] = v
				}
			case []float64:
				for i := range d {
					v := lo + (hi-lo)*r.Float64()
					if add {
						v += d[i]
					}
					d[i] = v
				}
			}
		}
	}
}
