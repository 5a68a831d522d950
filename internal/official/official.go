// Package official converts checkpoints of the official PDM code
// (greatlog/UnpairedSR) into pdmflow's weights: the degradation model
// (DegModel: KernelModel and NoiseModel), the PatchGAN discriminator and
// the SR networks (EDSR, RRDB). The PyTorch files are read by package pth
// (no code runs); each network's configuration is inferred from its
// tensors' shapes, and its parameters are found through a Table of name
// rules, so supporting another network is a table plus the shapes that
// configure it.
//
// The official names (pdm-spec, section C): DegModel's
// deg_kernel.deg_kernel and deg_noise.deg_noise are Sequentials of a head
// conv (0), BatchNorm (1), ReLU, nb ResBlocks (3 ...; body.0 conv, body.1
// BatchNorm, body.3 conv) and a 1x1 tail conv (3+nb); the discriminator's
// model Sequential has its convs at 0, 2, 5, 8, 11; EDSR has the names of
// the EDSR-PyTorch code its pretrained checkpoint comes from: sub_mean,
// head.0, body.i.body.{0,2}, body.nb, tail.0.{0,2} (the upsampler), tail.1,
// add_mean; RRDB has BasicSR's RRDBNet names (conv_first,
// body.N.rdbK.convJ, conv_body, conv_up1, conv_up2, conv_hr, conv_last) or
// those of the original ESRGAN code (RRDB_trunk.N.RDBK.convJ, trunk_conv,
// upconv1, upconv2, HRconv).
package official

import (
	"fmt"
	"math"
	"regexp"
	"strings"

	"gorgonia.org/tensor"

	"github.com/pdmflow/pdmflow/model"
	"github.com/pdmflow/pdmflow/pth"
)

// Kinds of networks Convert knows.
const (
	KindPDM  = "pdm"
	KindDisc = "disc"
	KindEDSR = "edsr"
	KindRRDB = "rrdb"
)

// Options say what a checkpoint's tensors cannot.
type Options struct {
	// Scale of the PDM (4 in every official config).
	Scale int
	// NoiseMode is how the official noise network's input was made: ""
	// infers it from the input channels (6: mixed, cat(clean LR, z_n) with
	// 3 z channels; 3: z-only), or a model.Noise* mode.
	NoiseMode string
	// Stride of the discriminator's layers 2 and 3 (2 when PDM trained
	// alone, 1 in joint training): not in the weights.
	Stride int
	// ResScale is EDSR's residual scaling (1 for EDSR-baseline).
	ResScale float64
	// Prefix keeps only the tensors whose names start with Prefix + "."
	// and strips it ("params" for {"params": state_dict}). A "module."
	// prefix on every name (DataParallel) is always stripped.
	Prefix string
}

// Result is a converted network and what the user should know about it.
type Result struct {
	Kind  string
	PDM   *model.PDM
	Disc  *model.Discriminator
	SR    *model.SR // EDSR or RRDB
	Notes []string
}

// Save writes the converted weights as pdmflow safetensors (kinds pdm,
// disc and sr).
func (r *Result) Save(path string) error {
	switch {
	case r.PDM != nil:
		return model.SavePDM(path, r.PDM)
	case r.Disc != nil:
		return model.SaveDiscriminator(path, r.Disc)
	case r.SR != nil:
		return model.SaveSR(path, r.SR)
	}
	return fmt.Errorf("official: nothing to save")
}

// Convert maps a checkpoint of the given kind onto pdmflow's network.
func Convert(kind string, f *pth.File, o Options) (*Result, error) {
	ts, err := selectTensors(f.Tensors, o.Prefix)
	if err != nil {
		return nil, err
	}
	s := newSource(ts)
	switch kind {
	case KindPDM:
		return convertPDM(s, o)
	case KindDisc:
		return convertDisc(s, o)
	case KindEDSR:
		return convertEDSR(s, o)
	case KindRRDB:
		return convertRRDB(s)
	}
	return nil, fmt.Errorf("official: kind %q: pdm, disc, edsr or rrdb", kind)
}

func selectTensors(ts []pth.Tensor, prefix string) ([]pth.Tensor, error) {
	var out []pth.Tensor
	if prefix != "" {
		for _, t := range ts {
			if rest, ok := strings.CutPrefix(t.Name, prefix+"."); ok {
				t.Name = rest
				out = append(out, t)
			}
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("official: no tensor of the checkpoint is under %q", prefix)
		}
	} else {
		out = append(out, ts...)
	}
	all := len(out) > 0
	for _, t := range out {
		all = all && strings.HasPrefix(t.Name, "module.")
	}
	if all {
		for i := range out {
			out[i].Name = strings.TrimPrefix(out[i].Name, "module.")
		}
	}
	return out, nil
}

// count is how many blocks i = 0, 1, ... have the tensor
// fmt.Sprintf(pattern, i) without a gap.
func (s *source) count(pattern string) int { return s.count2(pattern, 0) }

func (s *source) shape(name string) ([]int, error) {
	t, ok := s.tensors[name]
	if !ok {
		return nil, fmt.Errorf("official: the checkpoint has no tensor %s", name)
	}
	return t.Shape, nil
}

// convShape reads a conv weight (out, in, k, k).
func (s *source) convShape(name string) (out, in, k int, err error) {
	sh, err := s.shape(name)
	if err != nil {
		return 0, 0, 0, err
	}
	if len(sh) != 4 || sh[2] != sh[3] {
		return 0, 0, 0, fmt.Errorf("official: %s has shape %v, not a square convolution's (out, in, k, k)", name, sh)
	}
	return sh[0], sh[1], sh[2], nil
}

// trunkTable maps a PDM network (kernel or noise) onto the official
// Sequential seq with nb residual blocks.
func trunkTable(ours, seq string, nb, tailRepeat int) []Rule {
	return []Rule{
		{Ours: ours + ".head.bn.{p}", Theirs: seq + ".1.{p}"},
		{Ours: ours + ".head.{p}", Theirs: seq + ".0.{p}"},
		{Ours: ours + ".body.{n}.conv1.{p}", Theirs: seq + ".{n+3}.body.0.{p}"},
		{Ours: ours + ".body.{n}.bn.{p}", Theirs: seq + ".{n+3}.body.1.{p}"},
		{Ours: ours + ".body.{n}.conv2.{p}", Theirs: seq + ".{n+3}.body.3.{p}"},
		{Ours: ours + ".tail.{p}", Theirs: fmt.Sprintf("%s.%d.{p}", seq, 3+nb), Repeat: tailRepeat},
	}
}

const (
	kernelSeq = "deg_kernel.deg_kernel"
	noiseSeq  = "deg_noise.deg_noise"
)

func convertPDM(s *source, o Options) (*Result, error) {
	res := &Result{Kind: KindPDM}
	scale := o.Scale
	if scale == 0 {
		scale = 4
	}
	cfg := model.PDMConfig{Scale: scale}
	// The kernel network.
	nf, nc, hk, err := s.convShape(kernelSeq + ".0.weight")
	if err != nil {
		return nil, fmt.Errorf("%w: not a DegModel checkpoint with a kernel network", err)
	}
	nb := s.count2(kernelSeq+".%d.body.0.weight", 3) // the blocks sit at 3 ... 3+nb-1
	taps, _, _, err := s.convShape(fmt.Sprintf("%s.%d.weight", kernelSeq, 3+nb))
	if err != nil {
		return nil, fmt.Errorf("%w: the kernel network's last layer", err)
	}
	size := int(math.Round(math.Sqrt(float64(taps))))
	if size*size != taps || size%2 == 0 {
		return nil, fmt.Errorf("official: the kernel network has %d outputs, not the taps of an odd square kernel", taps)
	}
	cfg.Kernel = model.KernelConfig{Size: size, NC: nc, NF: nf, NB: nb, Init: "box", Conv: 1}
	// A content-dependent kernel network (mix: true, the paper's Table 5)
	// takes the HR image's 3 channels besides z_k; its weights look the
	// same, so say what was assumed.
	res.Notes = append(res.Notes, fmt.Sprintf("the kernel network's %d input channels taken as z_k alone (mix: false, as in every official config; a content-dependent network, pdmflow's kernel.mix, takes 3 more, the image's, and cannot be told apart by its weights)", nc))
	if hk > 1 {
		cfg.Kernel.Spatial, cfg.Kernel.Conv = true, hk
		res.Notes = append(res.Notes, fmt.Sprintf("the kernel network has %dx%d convolutions: converted as spatially variant kernels with z_k drawn on the LR grid (the official code drew it at HR size, which breaks at x4)", hk, hk))
	}
	if nb > 0 {
		if _, _, bk, err := s.convShape(kernelSeq + ".3.body.0.weight"); err == nil && bk != hk {
			return nil, fmt.Errorf("official: the kernel network's head is %dx%d and its blocks %dx%d; pdmflow's has one convolution size", hk, hk, bk, bk)
		}
	}
	rules := trunkTable("kernel", kernelSeq, nb, 0)
	// The noise network.
	cfg.Noise = model.NoiseConfig{Mode: model.NoiseOff}
	if s.has(noiseSeq + ".0.weight") {
		nnf, in, nk, err := s.convShape(noiseSeq + ".0.weight")
		if err != nil {
			return nil, err
		}
		nnb := s.count2(noiseSeq+".%d.body.0.weight", 3)
		dim, _, _, err := s.convShape(fmt.Sprintf("%s.%d.weight", noiseSeq, 3+nnb))
		if err != nil {
			return nil, fmt.Errorf("%w: the noise network's last layer", err)
		}
		if dim != 1 && dim != 3 {
			return nil, fmt.Errorf("official: the noise network has %d output channels; 1 (one value for R, G and B) or 3", dim)
		}
		if nnb > 0 {
			if _, _, bk, err := s.convShape(noiseSeq + ".3.body.0.weight"); err == nil && bk != nk {
				return nil, fmt.Errorf("official: the noise network's head is %dx%d and its blocks %dx%d; pdmflow's has one convolution size", nk, nk, bk, bk)
			}
		}
		mode := o.NoiseMode
		if mode == "" {
			switch in {
			case 6:
				mode = model.NoiseMixed
			case 3:
				mode = model.NoiseZOnly
			default:
				return nil, fmt.Errorf("official: the noise network takes %d input channels: say how they were made with --noise-mode (mixed: the clean LR's 3 and z_n's; z-only; content-only)", in)
			}
			res.Notes = append(res.Notes, fmt.Sprintf("noise network input of %d channels taken as %s (--noise-mode to say otherwise)", in, mode))
		}
		zc := in
		switch mode {
		case model.NoiseMixed:
			zc = in - 3
		case model.NoiseContentOnly:
			if in != 3 {
				return nil, fmt.Errorf("official: a content-only noise network takes the 3 channels of the clean LR, this one %d", in)
			}
			zc = 0
		case model.NoiseZOnly:
		default:
			return nil, fmt.Errorf("official: noise mode %q: mixed, z-only or content-only", mode)
		}
		if zc < 0 || (mode != model.NoiseContentOnly && zc < 1) {
			return nil, fmt.Errorf("official: a %s noise network with %d input channels has no z_n", mode, in)
		}
		cfg.Noise = model.NoiseConfig{Mode: mode, NC: zc, NF: nnf, NB: nnb, Conv: nk}
		repeat := 0
		if dim == 1 {
			repeat = 3
			res.Notes = append(res.Notes, "the noise network has one output channel, added to R, G and B alike: its last layer is repeated for the three channels (the same noise)")
		}
		if nk == 1 && mode != model.NoiseContentOnly {
			res.Notes = append(res.Notes, "the noise network has 1x1 convolutions: the official configs with these (spatial: false) draw one z_n per image and tile it; pdmflow draws z_n per pixel, so the network is the same but its samples are not")
		}
		rules = append(rules, trunkTable("noise", noiseSeq, nnb, repeat)...)
	} else {
		res.Notes = append(res.Notes, "no noise network: the converted PDM quantises smoothly to 8 bits instead (the official code's Quantization)")
	}
	p, err := model.NewPDM(cfg, tensor.Float32, 0)
	if err != nil {
		return nil, fmt.Errorf("official: the inferred configuration: %w", err)
	}
	t := Table{Network: "PDM", Rules: rules, Ignore: []*regexp.Regexp{batchCount}}
	if err := s.apply(t, p.Modules()...); err != nil {
		return nil, err
	}
	res.PDM = p
	return res, nil
}

// count2 is how many blocks i = first, first+1, ... have the tensor
// fmt.Sprintf(pattern, i) without a gap.
func (s *source) count2(pattern string, first int) int {
	n := 0
	for s.has(fmt.Sprintf(pattern, first+n)) {
		n++
	}
	return n
}

// DiscTable is the official PatchGAN discriminator's layout (nb = 3).
var DiscTable = Table{
	Network: "discriminator",
	Rules: []Rule{
		{Ours: "disc.conv0.{p}", Theirs: "model.0.{p}"},
		{Ours: "disc.conv1.{p}", Theirs: "model.2.{p}"},
		{Ours: "disc.conv2.{p}", Theirs: "model.5.{p}"},
		{Ours: "disc.conv3.{p}", Theirs: "model.8.{p}"},
		{Ours: "disc.conv4.{p}", Theirs: "model.11.{p}"},
	},
}

func convertDisc(s *source, o Options) (*Result, error) {
	if o.Stride != 1 && o.Stride != 2 {
		return nil, fmt.Errorf("official: the discriminator's stride (1 in joint training, 2 when PDM trained alone) is not in its weights: give it (--stride 1 or 2)")
	}
	nf, in, _, err := s.convShape("model.0.weight")
	if err != nil {
		return nil, fmt.Errorf("%w: not a PatchGAN discriminator checkpoint", err)
	}
	if in != 3 {
		return nil, fmt.Errorf("official: the discriminator takes %d channels; pdmflow's takes RGB", in)
	}
	out, last, _, err := s.convShape("model.11.weight")
	if err != nil {
		return nil, fmt.Errorf("%w: pdmflow's discriminator has the official nb = 3 layout (convs at model.0, 2, 5, 8, 11)", err)
	}
	if last != 8*nf {
		return nil, fmt.Errorf("official: model.11 takes %d channels, the nb = 3 layout %d", last, 8*nf)
	}
	d, err := model.NewDiscriminator(model.DiscConfig{NF: nf, Out: out, Stride: o.Stride}, tensor.Float32, 0)
	if err != nil {
		return nil, fmt.Errorf("official: %w", err)
	}
	if err := s.apply(DiscTable, d.M); err != nil {
		return nil, err
	}
	return &Result{Kind: KindDisc, Disc: d}, nil
}

// edsrMean is the DIV2K mean EDSR's mean shifts use (pdm-spec §4).
var edsrMean = [3]float64{0.4488, 0.4371, 0.4040}

// edsrTable maps pdmflow's EDSR onto EDSR-PyTorch's names, after the mean
// shifts are folded into head.0 and tail.1.
func edsrTable(nb int) Table {
	return Table{
		Network: "EDSR",
		Rules: []Rule{
			{Ours: "sr.head.{p}", Theirs: "head.0.{p}"},
			{Ours: "sr.body.{n}.conv1.{p}", Theirs: "body.{n}.body.0.{p}"},
			{Ours: "sr.body.{n}.conv2.{p}", Theirs: "body.{n}.body.2.{p}"},
			{Ours: "sr.body.last.{p}", Theirs: fmt.Sprintf("body.%d.{p}", nb)},
			{Ours: "sr.up.{n}.{p}", Theirs: "tail.0.{n*2}.{p}"},
			{Ours: "sr.tail.{p}", Theirs: "tail.1.{p}"},
		},
	}
}

func convertEDSR(s *source, o Options) (*Result, error) {
	res := &Result{Kind: KindEDSR}
	nf, in, _, err := s.convShape("head.0.weight")
	if err != nil {
		return nil, fmt.Errorf("%w: not an EDSR checkpoint", err)
	}
	if in != 3 {
		return nil, fmt.Errorf("official: EDSR's head takes %d channels, not RGB", in)
	}
	nb := s.count("body.%d.body.0.weight")
	up0, _, _, err := s.convShape("tail.0.0.weight")
	if err != nil {
		return nil, err
	}
	scale := 0
	switch {
	case up0 == 4*nf && s.has("tail.0.2.weight"):
		scale = 4
	case up0 == 4*nf:
		scale = 2
	case up0 == 9*nf:
		scale = 3
	default:
		return nil, fmt.Errorf("official: EDSR's upsampler conv tail.0.0 has %d outputs for %d features: not x2, x3 or x4", up0, nf)
	}
	rs := o.ResScale
	if rs == 0 {
		rs = 1
	}
	cfg := model.SRConfig{Arch: "edsr", Scale: scale, NF: nf, NB: nb, ResScale: rs, RGBRange: 255, Upsampler: "pixelshuffle"}
	e, err := model.NewSR(cfg, tensor.Float32, 0)
	if err != nil {
		return nil, fmt.Errorf("official: the inferred configuration: %w", err)
	}
	if err := s.foldMeanShifts(nf, res); err != nil {
		return nil, err
	}
	if err := s.apply(edsrTable(nb), e.M); err != nil {
		return nil, err
	}
	res.SR = e
	return res, nil
}

// foldMeanShifts folds EDSR's sub_mean and add_mean (1x1 convolutions, in
// the official code trained by mistake, so no longer the fixed shifts of
// the DIV2K mean) into head.0 and tail.1, so that pdmflow's fixed shifts
// give the same network:
//
//	official: head(M_s (255 x) + b_s)    pdmflow: head'(255 x - 255 m)
//	          M_a tail(h) + b_a                   tail'(h) + 255 m
//
// head' = head . M_s, with c = 255 M_s m + b_s folded into head's bias,
// and tail' = M_a tail, bias M_a b_t + b_a - 255 m. The tail fold is exact;
// the head fold is exact where the head's 3x3 window lies inside the
// image, and at the border pixels too when c = 0 (the official padding is
// zeros of M_s (255 x) + b_s, pdmflow's of 255 x - 255 m): a note says
// when c is not.
func (s *source) foldMeanShifts(nf int, res *Result) error {
	ms, msh, err := s.floats("sub_mean.weight")
	if err != nil {
		return fmt.Errorf("%w: EDSR's mean shifts", err)
	}
	bs, _, err := s.floats("sub_mean.bias")
	if err != nil {
		return err
	}
	ma, mah, err := s.floats("add_mean.weight")
	if err != nil {
		return err
	}
	ba, _, err := s.floats("add_mean.bias")
	if err != nil {
		return err
	}
	if !sameShape(msh, []int{3, 3, 1, 1}) || !sameShape(mah, []int{3, 3, 1, 1}) || len(bs) != 3 || len(ba) != 3 {
		return fmt.Errorf("official: EDSR's mean shifts have shapes %v and %v, want 1x1 convolutions 3 -> 3", msh, mah)
	}
	// head.0: weight (nf, 3, 3, 3), bias (nf).
	hw, hsh, err := s.floats("head.0.weight")
	if err != nil {
		return err
	}
	hb, _, err := s.floats("head.0.bias")
	if err != nil {
		return err
	}
	if !sameShape(hsh, []int{nf, 3, 3, 3}) || len(hb) != nf {
		return fmt.Errorf("official: head.0 has shape %v, want (%d, 3, 3, 3)", hsh, nf)
	}
	var c [3]float64
	var cmax float64
	for i := range 3 {
		c[i] = float64(bs[i])
		for j := range 3 {
			c[i] += float64(ms[i*3+j]) * 255 * edsrMean[j]
		}
		cmax = max(cmax, math.Abs(c[i]))
	}
	nhw := make([]float32, len(hw))
	nhb := make([]float32, nf)
	for o := range nf {
		b := float64(hb[o])
		for j := range 3 { // input channel of the folded head
			for t := range 9 {
				var v float64
				for i := range 3 {
					v += float64(hw[(o*3+i)*9+t]) * float64(ms[i*3+j])
				}
				nhw[(o*3+j)*9+t] = float32(v)
			}
		}
		for i := range 3 {
			for t := range 9 {
				b += float64(hw[(o*3+i)*9+t]) * c[i]
			}
		}
		nhb[o] = float32(b)
	}
	// tail.1: weight (3, nf, 3, 3), bias (3).
	tw, tsh, err := s.floats("tail.1.weight")
	if err != nil {
		return err
	}
	tb, _, err := s.floats("tail.1.bias")
	if err != nil {
		return err
	}
	if !sameShape(tsh, []int{3, nf, 3, 3}) || len(tb) != 3 {
		return fmt.Errorf("official: tail.1 has shape %v, want (3, %d, 3, 3)", tsh, nf)
	}
	k := nf * 9
	ntw := make([]float32, len(tw))
	ntb := make([]float32, 3)
	for i := range 3 {
		for t := range k {
			var v float64
			for j := range 3 {
				v += float64(ma[i*3+j]) * float64(tw[j*k+t])
			}
			ntw[i*k+t] = float32(v)
		}
		b := float64(ba[i]) - 255*edsrMean[i]
		for j := range 3 {
			b += float64(ma[i*3+j]) * float64(tb[j])
		}
		ntb[i] = float32(b)
	}
	s.replace("head.0.weight", nhw)
	s.replace("head.0.bias", nhb)
	s.replace("tail.1.weight", ntw)
	s.replace("tail.1.bias", ntb)
	identity := true
	for i := range 9 {
		want := float32(0)
		if i%4 == 0 {
			want = 1
		}
		identity = identity && math.Abs(float64(ms[i]-want)) < 1e-6 && math.Abs(float64(ma[i]-want)) < 1e-6
	}
	if !identity {
		res.Notes = append(res.Notes, "EDSR's mean shifts are not the fixed DIV2K shifts (the official code trains them): folded into the head and tail convolutions")
	}
	if cmax > 1e-3 {
		res.Notes = append(res.Notes, fmt.Sprintf("sub_mean does not map the DIV2K mean to 0 (offset up to %.3g of 255): the folded head is exact inside the image but not on its one-pixel border", cmax))
	}
	return nil
}

// replace puts new float32 values (same shape) in place of a tensor, for
// the table to map.
func (s *source) replace(name string, v []float32) {
	t := s.tensors[name]
	b := make([]byte, 4*len(v))
	for i, x := range v {
		u := math.Float32bits(x)
		b[4*i], b[4*i+1], b[4*i+2], b[4*i+3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
	}
	nt := *t
	nt.DType, nt.Data = "F32", b
	s.tensors[name] = &nt
	delete(s.used, name)
}

// rrdbTable maps pdmflow's RRDB onto BasicSR's RRDBNet names, or with
// esrgan onto the original ESRGAN code's (xinntao/ESRGAN).
func rrdbTable(esrgan bool) Table {
	trunk, rdb := "body", "rdb"
	named := map[string]string{"conv_body": "conv_body", "conv_up1": "conv_up1", "conv_up2": "conv_up2", "conv_hr": "conv_hr"}
	if esrgan {
		trunk, rdb = "RRDB_trunk", "RDB"
		named = map[string]string{"conv_body": "trunk_conv", "conv_up1": "upconv1", "conv_up2": "upconv2", "conv_hr": "HRconv"}
	}
	rules := []Rule{{Ours: "sr.conv_first.{p}", Theirs: "conv_first.{p}"}, {Ours: "sr.conv_last.{p}", Theirs: "conv_last.{p}"}}
	for _, ours := range []string{"conv_body", "conv_up1", "conv_up2", "conv_hr"} {
		rules = append(rules, Rule{Ours: "sr." + ours + ".{p}", Theirs: named[ours] + ".{p}"})
	}
	for k := 1; k <= 3; k++ {
		for j := 1; j <= 5; j++ {
			rules = append(rules, Rule{
				Ours:   fmt.Sprintf("sr.body.{n}.rdb%d.conv%d.{p}", k, j),
				Theirs: fmt.Sprintf("%s.{n}.%s%d.conv%d.{p}", trunk, rdb, k, j),
			})
		}
	}
	return Table{Network: "RRDB", Rules: rules}
}

// convertRRDB reads an RRDBNet (ESRGAN, as BasicSR or the original ESRGAN
// code names it): the features and the scale from conv_first (3 input
// channels: x4; 12: x2, a pixel-unshuffled input), the blocks by count,
// the growth from the first RDB's first convolution.
func convertRRDB(s *source) (*Result, error) {
	esrgan := s.has("RRDB_trunk.0.RDB1.conv1.weight") || s.has("trunk_conv.weight")
	trunk, rdb := "body", "rdb"
	if esrgan {
		trunk, rdb = "RRDB_trunk", "RDB"
	}
	nf, in, k, err := s.convShape("conv_first.weight")
	if err != nil {
		return nil, fmt.Errorf("%w: not an RRDB checkpoint", err)
	}
	if k != 3 {
		return nil, fmt.Errorf("official: conv_first is %dx%d, RRDBNet's is 3x3", k, k)
	}
	scale := 0
	switch in {
	case 3:
		scale = 4
	case 12:
		scale = 2
	default:
		return nil, fmt.Errorf("official: RRDB's conv_first takes %d channels: 3 (x4) or 12 (x2, BasicSR's pixel-unshuffled input); pdmflow's RRDB is x4 or x2", in)
	}
	nb := s.count(trunk + ".%d." + rdb + "1.conv1.weight")
	if nb == 0 {
		return nil, fmt.Errorf("official: no RRDB blocks (%s.0.%s1.conv1.weight): not an RRDBNet checkpoint", trunk, rdb)
	}
	gc, gin, _, err := s.convShape(fmt.Sprintf("%s.0.%s1.conv1.weight", trunk, rdb))
	if err != nil {
		return nil, err
	}
	if gin != nf {
		return nil, fmt.Errorf("official: the first RDB takes %d channels, conv_first makes %d", gin, nf)
	}
	if out, _, _, err := s.convShape("conv_last.weight"); err != nil || out != 3 {
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("official: RRDB's conv_last makes %d channels, not RGB", out)
	}
	cfg := model.SRConfig{Arch: "rrdb", Scale: scale, NF: nf, NB: nb, GC: gc}
	net, err := model.NewSR(cfg, tensor.Float32, 0)
	if err != nil {
		return nil, fmt.Errorf("official: the inferred configuration: %w", err)
	}
	if err := s.apply(rrdbTable(esrgan), net.M); err != nil {
		return nil, err
	}
	res := &Result{Kind: KindRRDB, SR: net}
	if esrgan {
		res.Notes = append(res.Notes, "the original ESRGAN code's names (RRDB_trunk, trunk_conv, upconv1/2, HRconv) mapped onto BasicSR's")
	}
	if scale == 2 {
		res.Notes = append(res.Notes, "x2: conv_first takes the x2 pixel-unshuffled input (12 channels), as BasicSR's RRDBNet at scale 2")
	}
	return res, nil
}
