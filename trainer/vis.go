package trainer

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"

	"gorgonia.org/tensor"

	"github.com/pdmflow/pdmflow/internal/imageio"
	"github.com/pdmflow/pdmflow/kernels"
	"github.com/pdmflow/pdmflow/model"
)

// KernelGrid draws n kernels of ks x ks (stored one after another) as a
// grid of cols columns, each kernel scaled to its own maximum (white) and
// magnified zoom times, on a dark gray background. Pictures of learned
// kernels are how a user sees the degradation distribution (and its
// collapse, the official code's issue 28).
func KernelGrid(k []float32, n, ks, cols, zoom int) *imageio.Image {
	rows := (n + cols - 1) / cols
	cell := ks*zoom + 2
	w, h := cols*cell+2, rows*cell+2
	im := &imageio.Image{W: w, H: h, Pix: make([]uint8, 3*w*h)}
	for i := range im.Pix {
		im.Pix[i] = 40
	}
	for i := 0; i < n; i++ {
		kk := k[i*ks*ks : (i+1)*ks*ks]
		var mx float32
		for _, v := range kk {
			mx = max(mx, v)
		}
		if mx <= 0 {
			mx = 1
		}
		x0, y0 := 2+(i%cols)*cell, 2+(i/cols)*cell
		for u := 0; u < ks*zoom; u++ {
			for v := 0; v < ks*zoom; v++ {
				val := uint8(255*kk[(u/zoom)*ks+v/zoom]/mx + 0.5)
				for c := 0; c < 3; c++ {
					im.Pix[c*w*h+(y0+u)*w+x0+v] = val
				}
			}
		}
	}
	return im
}

// PatchRows lays out rows of square planar RGB patches (values in [0,1],
// each 3 x s x s), magnified zoom times, separated by 2-pixel gaps.
func PatchRows(rows [][]float32, count, s, zoom int) *imageio.Image {
	cell := s*zoom + 2
	w, h := count*cell+2, len(rows)*cell+2
	im := &imageio.Image{W: w, H: h, Pix: make([]uint8, 3*w*h)}
	for i := range im.Pix {
		im.Pix[i] = 255
	}
	q := make([]float32, 3*s*s)
	for r, patches := range rows {
		for i := 0; i < count && (i+1)*3*s*s <= len(patches); i++ {
			kernels.Quantize8(q, patches[i*3*s*s:(i+1)*3*s*s])
			x0, y0 := 2+i*cell, 2+r*cell
			for c := 0; c < 3; c++ {
				for u := 0; u < s*zoom; u++ {
					for v := 0; v < s*zoom; v++ {
						im.Pix[c*w*h+(y0+u)*w+x0+v] = uint8(q[c*s*s+(u/zoom)*s+v/zoom]*255 + 0.5)
					}
				}
			}
		}
	}
	return im
}

// SampleKernels draws n kernels from the PDM's kernel network with
// inference BatchNorm (what degrade and the producers use). A
// content-dependent network (kernel.mix) has no kernels without an image
// and is refused.
func SampleKernels(p *model.PDM, r *rand.Rand, n int) ([]float32, error) {
	if p.Cfg.Kernel.Mix {
		return nil, errors.New("trainer: the kernels of a content-dependent kernel network (kernel.mix) depend on the image: they cannot be sampled from z_k alone")
	}
	// A spatially variant network draws its kernels on a 1x1 LR grid here:
	// one kernel per sample, as for the invariant network.
	zk, _ := p.SampleLatents(r, tensor.Float32, n, 1, 1)
	return runKernels(p, zk)
}

func runKernels(p *model.PDM, zk *tensor.Dense) ([]float32, error) {
	g := model.NewGraph(tensor.Float32)
	defer g.Close()
	k := p.KernelNet(g, nil, g.Input("zk", zk.Shape()...), false)
	g.Keep(k)
	if err := g.Err(); err != nil {
		return nil, err
	}
	if err := g.Run(map[string]*tensor.Dense{"zk": zk}); err != nil {
		return nil, err
	}
	return append([]float32(nil), model.Float32s(k)...), nil
}

// pictures writes the kernel grid and the fake/real LR crops, as the
// latest picture and a numbered copy under samples/, and hands them and the
// noise picture to the Observer.
func (t *Trainer) pictures() error {
	if t.PDM == nil {
		return nil
	}
	c := t.cfg
	ks := c.PDM.Kernel.Size
	var k []float32
	if c.PDM.Kernel.Mix {
		// Content-dependent kernels: those the last PDM step made, at
		// pixels spread over its batch.
		k = kernelsFromMaps(model.Float32s(t.n.kern), c.Batch, ks*ks, c.LRCrop(), 64)
	} else {
		var err error
		if k, err = SampleKernels(t.OutPDM(), rand.New(rand.NewPCG(c.Seed, 0xcafe)), 64); err != nil {
			return fmt.Errorf("trainer: sampling kernels: %w", err)
		}
	}
	grid := KernelGrid(k, 64, ks, 8, 4)
	n := min(8, c.Batch)
	lr := PatchRows([][]float32{t.fakeBuf, t.realBuf}, n, c.LRCrop(), 4)
	for _, f := range []struct {
		im   *imageio.Image
		name string
	}{{grid, KernelsFile}, {lr, SamplesFile}} {
		if err := f.im.Save(filepath.Join(t.opt.Out, f.name)); err != nil {
			return fmt.Errorf("trainer: %w", err)
		}
		numbered := filepath.Join(t.opt.Out, "samples", fmt.Sprintf("%s_%06d.png", f.name[:len(f.name)-4], t.step))
		if err := f.im.Save(numbered); err != nil {
			return fmt.Errorf("trainer: %w", err)
		}
		t.observePicture(f.name, f.im)
	}
	if t.opt.Observer != nil {
		if im := t.noisePicture(); im != nil {
			t.observePicture(NoiseFile, im)
		}
	}
	return nil
}

// kernelsFromMaps picks count kernels from n maps of spatially variant
// kernels (n x kk x side x side): sample i%n at pixels spread along the
// diagonal.
func kernelsFromMaps(maps []float32, n, kk, side, count int) []float32 {
	out := make([]float32, 0, count*kk)
	if len(maps) != n*kk*side*side {
		return make([]float32, count*kk) // no PDM step yet: blank tiles
	}
	plane := side * side
	for i := 0; i < count; i++ {
		b := i % n
		pos := (i / n * 7) % side
		px := pos*side + (pos*3)%side
		for tap := 0; tap < kk; tap++ {
			out = append(out, maps[(b*kk+tap)*plane+px])
		}
	}
	return out
}
