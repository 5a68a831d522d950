// Package dataset holds sets of images in memory and draws training crops
// from them: a uniformly random image, position and dihedral transform,
// each crop recorded so that it can be extracted again exactly.
package dataset

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"

	"github.com/pdmflow/pdmflow/internal/imageio"
	"github.com/pdmflow/pdmflow/kernels"
	"github.com/pdmflow/pdmflow/store"
)

// Dataset is a set of images held in memory as planar RGB float32 in [0,1],
// from which training crops are drawn.
type Dataset struct {
	Dir   string
	Items []Item
}

// Item is one image of a dataset.
type Item struct {
	Path string
	W, H int
	Pix  []uint8 // 3 x H x W, 8 bits as decoded (a quarter of float32's memory)
}

// Load reads every image of dir. Images smaller than minSide on
// either side cannot give a crop and are skipped with a warning; unreadable
// files are errors (a broken training set should be fixed, not sampled
// around). It fails when no usable image remains.
func Load(dir string, minSide int, log *slog.Logger) (*Dataset, error) {
	paths, err := imageio.List(dir)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	d := &Dataset{Dir: dir}
	var errs []error
	for _, p := range paths {
		im, err := imageio.Load(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if im.W < minSide || im.H < minSide {
			log.Warn("image too small for a crop, skipped", "path", p, "width", im.W, "height", im.H, "crop", minSide)
			continue
		}
		d.Items = append(d.Items, Item{Path: p, W: im.W, H: im.H, Pix: im.Pix})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("dataset: %s: %w", dir, err)
	}
	if len(d.Items) == 0 {
		return nil, fmt.Errorf("dataset: %s: no image is at least %dx%d pixels", dir, minSide, minSide)
	}
	return d, nil
}

// LoadSource loads the images of a local directory, or of a blob store URL
// (s3://bucket/prefix or file://dir) with the image extensions of
// imageio.List, with the same rules as Load.
func LoadSource(ctx context.Context, src string, minSide int, cfg store.Config, log *slog.Logger) (*Dataset, error) {
	if !strings.Contains(src, "://") {
		return Load(src, minSide, log)
	}
	b, err := store.Open(ctx, src, cfg)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	defer b.Close()
	keys, err := b.List(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("dataset: %s: %w", src, err)
	}
	d := &Dataset{Dir: src}
	var errs []error
	for _, k := range keys {
		if !imageio.IsImageName(k) {
			continue
		}
		data, err := b.Get(ctx, k)
		if err != nil {
			return nil, fmt.Errorf("dataset: %s: %w", src, err)
		}
		im, err := imageio.Decode(bytes.NewReader(data), src+"/"+k)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if im.W < minSide || im.H < minSide {
			log.Warn("image too small for a crop, skipped", "key", k, "width", im.W, "height", im.H, "crop", minSide)
			continue
		}
		d.Items = append(d.Items, Item{Path: k, W: im.W, H: im.H, Pix: im.Pix})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("dataset: %s: %w", src, err)
	}
	if len(d.Items) == 0 {
		return nil, fmt.Errorf("dataset: %s: no image is at least %dx%d pixels", src, minSide, minSide)
	}
	return d, nil
}

// Crop records where a training crop came from.
type Crop struct {
	Image    int   // index in Items
	X, Y     int   // top-left corner in the image
	Size     int   // side
	Dihedral uint8 // bit 0: horizontal flip, bit 1: vertical flip, bit 2: transpose
}

// Sample draws a crop of size x size uniformly (image, then position) with
// a uniformly random dihedral transform (hflip, vflip and transpose each
// with probability 1/2, the official augmentation) and writes it into dst
// (3 x size x size, values in [0, 1]).
func (d *Dataset) Sample(r *rand.Rand, size int, dst []float32) Crop {
	c := d.Draw(r, size)
	d.Extract(c, dst)
	return c
}

// Draw draws a crop as Sample does, without extracting it.
func (d *Dataset) Draw(r *rand.Rand, size int) Crop {
	c := Crop{Image: r.IntN(len(d.Items)), Size: size}
	it := d.Items[c.Image]
	c.X = r.IntN(it.W - size + 1)
	c.Y = r.IntN(it.H - size + 1)
	c.Dihedral = uint8(r.IntN(8))
	return c
}

// Extract writes the crop c (with its transform) into dst as floats in
// [0, 1] (each 8-bit value / 255).
func (d *Dataset) Extract(c Crop, dst []float32) {
	s := c.Size
	row := make([]uint8, s)
	for ch := 0; ch < 3; ch++ {
		for i := 0; i < s; i++ {
			d.extractRow(c, ch, i, row)
			kernels.Unit8(dst[(ch*s+i)*s:(ch*s+i+1)*s], row)
		}
	}
}

// ExtractU8 writes the crop c (with its transform) into dst as 8-bit
// values, the same pixels Extract gives times 255. It moves whole words:
// rows are copied or byte-reversed eight bytes at a time, and the
// transposed crops go through 8x8 byte blocks transposed in registers
// (crop.go); extractRow is the per-pixel reference it matches.
func (d *Dataset) ExtractU8(c Crop, dst []uint8) {
	it := d.Items[c.Image]
	s := c.Size
	n := it.W * it.H
	for ch := 0; ch < 3; ch++ {
		extractPlane(it.Pix[ch*n:(ch+1)*n], it.W, c, dst[ch*s*s:(ch+1)*s*s])
	}
}

// extractRow writes row i of channel ch of the transformed crop. Output
// pixel (i, j) comes from crop pixel (y, x) = (i, j), transposed first
// (bit 2), then x mirrored (bit 0) and y mirrored (bit 1).
func (d *Dataset) extractRow(c Crop, ch, i int, out []uint8) {
	it := d.Items[c.Image]
	s := c.Size
	plane := it.Pix[ch*it.W*it.H : (ch+1)*it.W*it.H]
	if c.Dihedral&4 == 0 {
		// Row i of the output is (part of) an image row.
		y := i
		if c.Dihedral&2 != 0 {
			y = s - 1 - y
		}
		src := plane[(c.Y+y)*it.W+c.X : (c.Y+y)*it.W+c.X+s]
		if c.Dihedral&1 == 0 {
			copy(out, src)
			return
		}
		for j := range out {
			out[j] = src[s-1-j]
		}
		return
	}
	// Transposed: row i of the output is (part of) an image column.
	x := i
	if c.Dihedral&1 != 0 {
		x = s - 1 - x
	}
	col := c.X + x
	for j := range out {
		y := j
		if c.Dihedral&2 != 0 {
			y = s - 1 - y
		}
		out[j] = plane[(c.Y+y)*it.W+col]
	}
}
