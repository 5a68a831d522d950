// Package niqe computes NIQE, the no-reference Natural Image Quality
// Evaluator (Mittal, Soundararajan and Bovik, IEEE SPL 2013), as the
// authors' MATLAB release (computequality.m, estimatemodelparam.m) does,
// and fits its pristine model from a set of images.
//
// Features: the image, in gray levels [0, 255], is cropped to whole 96x96
// blocks. At each of two scales (the image, then the image resized by 0.5
// with MATLAB's imresize, bicubic with antialiasing: kernels.ResizeBicubic)
// its MSCN coefficients (I - mu) / (sigma + 1) are computed with a 7x7
// Gaussian window of sigma 7/6 ('replicate' borders; coefficients below
// 1e-9 in magnitude, rounding noise in flat areas, are set to 0: see
// noiseFloor), and each block (96x96,
// then 48x48) gives 18 features: the shape and mean scale of an asymmetric
// generalised Gaussian (AGGD) fitted to the coefficients by moment matching
// over the grid alpha = 0.2:0.001:10, then for the products of each
// coefficient with its neighbour at the four orientations (0,1), (1,0),
// (1,1), (1,-1) (circular shifts within the block) the AGGD's shape, mean
// and left and right scales. A patch is the 36 features of one block.
//
// Score: the image's patches give a multivariate Gaussian (their mean, and
// the covariance of the patches without a NaN feature); NIQE is
// sqrt((mu_p - mu_d)' pinv((S_p + S_d)/2) (mu_p - mu_d)) against the
// pristine model (mu_p, S_p). Fit: every image's patches whose sharpness
// (the mean of the local sigma over the block, at the first scale) exceeds
// a threshold times the image's sharpest, pooled; the model is their mean
// and covariance. estimatemodelparam.m's example (and this package's
// default) threshold is 0.75.
//
// MATLAB-compatible figures need the authors' pristine model: mu_prisparam
// and cov_prisparam of modelparameters.mat in the NIQE release, block size
// 96, and the image converted to gray as MATLAB's rgb2gray does (Gray).
// The model is not shipped with pdmflow; ModelFromArrays and the script
// scripts/niqe-model.py convert it. MATLAB's own niqe() of the Image
// Processing Toolbox is a reimplementation with its own model; its figures
// differ slightly.
package niqe

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"sync"

	"github.com/pdmflow/pdmflow/kernels"
)

// NumFeatures is the length of a patch's feature vector: 18 per scale.
const NumFeatures = 36

// DefaultBlock is the patch side of the NIQE release, and
// DefaultSharpness its example sharpness threshold.
const (
	DefaultBlock     = 96
	DefaultSharpness = 0.75
)

// rgb2gray's coefficients: the first row of the inverse of the NTSC
// YIQ matrix, as MATLAB computes them.
const (
	grayR = 0.298936021293775
	grayG = 0.587043074451121
	grayB = 0.114020904255103
)

// Gray converts a planar RGB image (3 x h x w) to gray levels as MATLAB's
// rgb2gray of a uint8 image: the weighted sum rounded half away from zero
// (to 0 .. 255).
func Gray(rgb []uint8, h, w int) []float64 {
	n := h * w
	g := make([]float64, n)
	for i := range g {
		v := grayR*float64(rgb[i]) + grayG*float64(rgb[n+i]) + grayB*float64(rgb[2*n+i])
		g[i] = math.Min(255, math.Floor(v+0.5))
	}
	return g
}

// Patch is one block's features and its sharpness.
type Patch struct {
	Features  [NumFeatures]float64
	Sharpness float64
}

// Extract returns the patches of a gray image (h x w, values on the
// [0, 255] scale), in MATLAB's order (down the first column of blocks,
// then the next column). block must be even; the image is cropped to whole
// blocks, and one without a whole block is an error.
func Extract(gray []float64, h, w, block int) ([]Patch, error) {
	if block < 8 || block%2 != 0 {
		return nil, fmt.Errorf("niqe: block size %d: an even number of at least 8", block)
	}
	if len(gray) != h*w || h < 0 || w < 0 {
		return nil, fmt.Errorf("niqe: %d values for a %dx%d image", len(gray), w, h)
	}
	rows, cols := h/block, w/block
	if rows < 1 || cols < 1 {
		return nil, fmt.Errorf("%w: a %dx%d image has no whole %dx%d block", ErrTooFewPatches, w, h, block, block)
	}
	ch, cw := rows*block, cols*block
	im := make([]float64, ch*cw)
	for y := range ch {
		copy(im[y*cw:(y+1)*cw], gray[y*w:y*w+cw])
	}
	patches := make([]Patch, rows*cols)
	for scale := 1; scale <= 2; scale++ {
		b := block / scale
		mscn, sigma := mscn(im, ch, cw)
		blk := make([]float64, b*b)
		for bc := range cols {
			for br := range rows {
				p := &patches[bc*rows+br]
				for y := range b {
					copy(blk[y*b:(y+1)*b], mscn[(br*b+y)*cw+bc*b:][:b])
				}
				f := blockFeatures(blk, b)
				copy(p.Features[(scale-1)*18:], f[:])
				if scale == 1 {
					var s float64
					for y := range b {
						for _, v := range sigma[(br*b+y)*cw+bc*b:][:b] {
							s += v
						}
					}
					p.Sharpness = s / float64(b*b)
				}
			}
		}
		if scale == 1 {
			half := make([]float64, (ch/2)*(cw/2))
			kernels.ResizeBicubic(1, ch, cw, ch/2, cw/2, half, im)
			im, ch, cw = half, ch/2, cw/2
		}
	}
	return patches, nil
}

// window is the 1-D factor of MATLAB's fspecial('gaussian', 7, 7/6)
// (normalised, so its outer product is the normalised 2-D window).
func window() [7]float64 {
	var g [7]float64
	var s float64
	const sigma = 7.0 / 6
	for i := range g {
		d := float64(i - 3)
		g[i] = math.Exp(-d * d / (2 * sigma * sigma))
		s += g[i]
	}
	for i := range g {
		g[i] /= s
	}
	return g
}

// filterReplicate is imfilter(x, window, 'replicate'): the 7x7 Gaussian
// with the edge pixels repeated beyond the border.
func filterReplicate(x []float64, h, w int) []float64 {
	g := window()
	tmp := make([]float64, h*w)
	for y := range h {
		row := x[y*w : (y+1)*w]
		for j := range w {
			var s float64
			for k, gk := range g {
				s += gk * row[min(w-1, max(0, j+k-3))]
			}
			tmp[y*w+j] = s
		}
	}
	out := make([]float64, h*w)
	for y := range h {
		for k, gk := range g {
			src := tmp[min(h-1, max(0, y+k-3))*w:][:w]
			dst := out[y*w : (y+1)*w]
			for j, v := range src {
				dst[j] += gk * v
			}
		}
	}
	return out
}

// noiseFloor: MSCN coefficients smaller than this in magnitude are
// rounding noise, and are set to 0. Where all 7x7 pixels are equal (a flat
// sky, a saturated area) im - mu is 0 in exact arithmetic but +-1e-13 in
// floating point, with a sign that depends on the order of the additions;
// since the AGGD fit counts negative and positive coefficients separately,
// that noise would move the features of such patches by a few per cent,
// differently in every implementation (MATLAB's included). A coefficient
// of real content is at least about 1e-6 (one gray level at the window's
// corner, whose weight is 1.6e-4, under a sigma of at most 128).
const noiseFloor = 1e-9

// mscn returns the MSCN coefficients (im - mu) / (sigma + 1) and sigma.
func mscn(im []float64, h, w int) (coef, sigma []float64) {
	mu := filterReplicate(im, h, w)
	sq := make([]float64, len(im))
	for i, v := range im {
		sq[i] = v * v
	}
	musq := filterReplicate(sq, h, w)
	coef, sigma = make([]float64, len(im)), make([]float64, len(im))
	for i, v := range im {
		sigma[i] = math.Sqrt(math.Abs(musq[i] - mu[i]*mu[i]))
		coef[i] = (v - mu[i]) / (sigma[i] + 1)
		if math.Abs(coef[i]) < noiseFloor {
			coef[i] = 0
		}
	}
	return coef, sigma
}

// blockFeatures is computefeature.m of one b x b block of coefficients.
func blockFeatures(blk []float64, b int) [18]float64 {
	var f [18]float64
	alpha, bl, br := aggd(blk)
	f[0], f[1] = alpha, (bl+br)/2
	pair := make([]float64, len(blk))
	for i, s := range [4][2]int{{0, 1}, {1, 0}, {1, 1}, {1, -1}} {
		// circshift(x, s): shifted(y, x) = x(y - s0, x - s1), circularly.
		for y := range b {
			ys := ((y-s[0])%b + b) % b
			for x := range b {
				xs := ((x-s[1])%b + b) % b
				pair[y*b+x] = blk[y*b+x] * blk[ys*b+xs]
			}
		}
		alpha, bl, br := aggd(pair)
		mean := (br - bl) * (math.Gamma(2/alpha) / math.Gamma(1/alpha))
		copy(f[2+4*i:], []float64{alpha, mean, bl, br})
	}
	return f
}

var (
	gamOnce sync.Once
	gamGrid []float64 // 0.2:0.001:10
	rGam    []float64 // gamma(2/a)^2 / (gamma(1/a) gamma(3/a))
)

func aggdGrid() {
	const n = 9801 // (10 - 0.2) / 0.001 + 1
	gamGrid, rGam = make([]float64, n), make([]float64, n)
	for k := range n {
		a := 0.2 + float64(k)*0.001
		gamGrid[k] = a
		g2 := math.Gamma(2 / a)
		rGam[k] = g2 * g2 / (math.Gamma(1/a) * math.Gamma(3/a))
	}
}

// aggd is estimateaggdparam.m: the AGGD's shape alpha and left and right
// scales by moment matching. A side without values gives NaN for its
// scale, and then MATLAB's min over an all-NaN vector picks the first
// alpha, 0.2; so does this.
func aggd(v []float64) (alpha, betaL, betaR float64) {
	gamOnce.Do(aggdGrid)
	var sl, sr, sabs, ssq float64
	var nl, nr int
	for _, x := range v {
		switch {
		case x < 0:
			sl += x * x
			nl++
		case x > 0:
			sr += x * x
			nr++
		}
		sabs += math.Abs(x)
		ssq += x * x
	}
	n := float64(len(v))
	left := math.Sqrt(sl / float64(nl)) // NaN when nl == 0: mean([]) in MATLAB
	right := math.Sqrt(sr / float64(nr))
	ghat := left / right
	mabs := sabs / n
	rhat := mabs * mabs / (ssq / n)
	rnorm := rhat * (ghat*ghat*ghat + 1) * (ghat + 1) / ((ghat*ghat + 1) * (ghat*ghat + 1))
	best, bi := math.Inf(1), 0
	for k, r := range rGam {
		d := (r - rnorm) * (r - rnorm)
		if d < best {
			best, bi = d, k
		}
	}
	alpha = gamGrid[bi]
	s := math.Sqrt(math.Gamma(1/alpha) / math.Gamma(3/alpha))
	return alpha, left * s, right * s
}

// Model is a pristine multivariate Gaussian model of patch features.
type Model struct {
	Format    string      `json:"format"`
	BlockSize int         `json:"block_size"`
	Mu        []float64   `json:"mu"`
	Cov       [][]float64 `json:"cov"`
	// Provenance (informative).
	Source             string  `json:"source,omitempty"`
	Images             int     `json:"images,omitempty"`
	Patches            int     `json:"patches,omitempty"`
	SharpnessThreshold float64 `json:"sharpness_threshold,omitempty"`
}

// ModelFormat is the Format of model files this package writes and reads.
const ModelFormat = "pdmflow-niqe-model/1"

// ModelFromArrays makes a model of a mean (36) and a covariance (36 x 36,
// row-major), such as the release's mu_prisparam and cov_prisparam.
func ModelFromArrays(mu, cov []float64, block int) (*Model, error) {
	if len(mu) != NumFeatures || len(cov) != NumFeatures*NumFeatures {
		return nil, fmt.Errorf("niqe: a model needs %d means and %dx%d covariances, got %d and %d", NumFeatures, NumFeatures, NumFeatures, len(mu), len(cov))
	}
	m := &Model{Format: ModelFormat, BlockSize: block, Mu: append([]float64(nil), mu...)}
	for i := range NumFeatures {
		m.Cov = append(m.Cov, append([]float64(nil), cov[i*NumFeatures:(i+1)*NumFeatures]...))
	}
	return m, m.Validate()
}

// Validate checks the model's shape and values.
func (m *Model) Validate() error {
	if m.Format != ModelFormat {
		return fmt.Errorf("niqe: model format %q, want %q", m.Format, ModelFormat)
	}
	if m.BlockSize < 8 || m.BlockSize%2 != 0 {
		return fmt.Errorf("niqe: model block size %d: an even number of at least 8", m.BlockSize)
	}
	if len(m.Mu) != NumFeatures || len(m.Cov) != NumFeatures {
		return fmt.Errorf("niqe: model has %d means and %d covariance rows, want %d", len(m.Mu), len(m.Cov), NumFeatures)
	}
	for i, row := range m.Cov {
		if len(row) != NumFeatures {
			return fmt.Errorf("niqe: model covariance row %d has %d values, want %d", i, len(row), NumFeatures)
		}
		for j, v := range row {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("niqe: model covariance [%d][%d] is %g", i, j, v)
			}
			if math.Abs(v-m.Cov[j][i]) > 1e-9*(1+math.Abs(v)) {
				return fmt.Errorf("niqe: model covariance is not symmetric at [%d][%d]", i, j)
			}
		}
	}
	for i, v := range m.Mu {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("niqe: model mean %d is %g", i, v)
		}
	}
	return nil
}

// LoadModel reads a model file (JSON, as Save writes it).
func LoadModel(path string) (*Model, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("niqe: %w", err)
	}
	var m Model
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("niqe: %s: %w", path, err)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &m, nil
}

// Save writes the model as JSON.
func (m *Model) Save(path string) error {
	b, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		return fmt.Errorf("niqe: %w", err)
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// ErrTooFewPatches is returned for an image with fewer than two patches
// without a NaN feature (their covariance is undefined), no whole block at
// all, or a fit with too few patches.
var ErrTooFewPatches = errors.New("niqe: fewer than two usable patches")

// Score is the NIQE of a gray image (values on the [0, 255] scale) against
// the model: lower is more natural.
func (m *Model) Score(gray []float64, h, w int) (float64, error) {
	ps, err := Extract(gray, h, w, m.BlockSize)
	if err != nil {
		return 0, err
	}
	feats := make([][NumFeatures]float64, len(ps))
	for i, p := range ps {
		feats[i] = p.Features
	}
	mu, cov, n := mvg(feats)
	if n < 2 {
		return 0, fmt.Errorf("%w: a %dx%d image has %d %dx%d patches (%d without NaN features); NIQE needs an image of at least two blocks", ErrTooFewPatches, w, h, len(ps), m.BlockSize, m.BlockSize, n)
	}
	var s [NumFeatures * NumFeatures]float64
	for i := range NumFeatures {
		for j := range NumFeatures {
			s[i*NumFeatures+j] = (m.Cov[i][j] + cov[i*NumFeatures+j]) / 2
		}
	}
	inv := pinv(s[:], NumFeatures)
	var d [NumFeatures]float64
	for i := range d {
		d[i] = m.Mu[i] - mu[i]
	}
	var q float64
	for i := range NumFeatures {
		var r float64
		for j := range NumFeatures {
			r += inv[i*NumFeatures+j] * d[j]
		}
		q += d[i] * r
	}
	return math.Sqrt(q), nil
}

// mvg is MATLAB's nanmean (each feature's mean over the patches where it is
// not NaN) and nancov (the covariance, normalised by n-1, of the n patches
// without a NaN feature).
func mvg(feats [][NumFeatures]float64) (mu [NumFeatures]float64, cov []float64, n int) {
	var cnt [NumFeatures]int
	for _, f := range feats {
		for i, v := range f {
			if !math.IsNaN(v) {
				mu[i] += v
				cnt[i]++
			}
		}
	}
	for i := range mu {
		mu[i] /= float64(cnt[i]) // NaN when no patch has it
	}
	var rows [][NumFeatures]float64
	for _, f := range feats {
		ok := true
		for _, v := range f {
			if math.IsNaN(v) {
				ok = false
				break
			}
		}
		if ok {
			rows = append(rows, f)
		}
	}
	n = len(rows)
	cov = make([]float64, NumFeatures*NumFeatures)
	if n < 2 {
		return mu, cov, n
	}
	var m [NumFeatures]float64
	for _, f := range rows {
		for i, v := range f {
			m[i] += v
		}
	}
	for i := range m {
		m[i] /= float64(n)
	}
	for _, f := range rows {
		for i := range NumFeatures {
			di := f[i] - m[i]
			for j := range NumFeatures {
				cov[i*NumFeatures+j] += di * (f[j] - m[j])
			}
		}
	}
	for i := range cov {
		cov[i] /= float64(n - 1)
	}
	return mu, cov, n
}

// pinv is the Moore-Penrose pseudo-inverse of a symmetric n x n matrix
// (row-major) through its eigendecomposition (cyclic Jacobi rotations),
// with MATLAB pinv's tolerance: eigenvalues of magnitude at most
// n * eps(max |lambda|) are treated as zero.
func pinv(a []float64, n int) []float64 {
	m := append([]float64(nil), a...)
	v := make([]float64, n*n)
	for i := range n {
		v[i*n+i] = 1
	}
	for sweep := 0; sweep < 100; sweep++ {
		var off float64
		for p := range n {
			for q := p + 1; q < n; q++ {
				off += m[p*n+q] * m[p*n+q]
			}
		}
		if off == 0 {
			break
		}
		for p := range n {
			for q := p + 1; q < n; q++ {
				apq := m[p*n+q]
				if apq == 0 {
					continue
				}
				app, aqq := m[p*n+p], m[q*n+q]
				theta := (aqq - app) / (2 * apq)
				t := math.Copysign(1, theta) / (math.Abs(theta) + math.Sqrt(theta*theta+1))
				c := 1 / math.Sqrt(t*t+1)
				s := t * c
				for k := range n {
					mkp, mkq := m[k*n+p], m[k*n+q]
					m[k*n+p], m[k*n+q] = c*mkp-s*mkq, s*mkp+c*mkq
				}
				for k := range n {
					mpk, mqk := m[p*n+k], m[q*n+k]
					m[p*n+k], m[q*n+k] = c*mpk-s*mqk, s*mpk+c*mqk
				}
				for k := range n {
					vkp, vkq := v[k*n+p], v[k*n+q]
					v[k*n+p], v[k*n+q] = c*vkp-s*vkq, s*vkp+c*vkq
				}
			}
		}
	}
	var big float64
	for i := range n {
		big = max(big, math.Abs(m[i*n+i]))
	}
	tol := float64(n) * epsOf(big)
	out := make([]float64, n*n)
	for k := range n {
		l := m[k*n+k]
		if math.Abs(l) <= tol {
			continue
		}
		for i := range n {
			vi := v[i*n+k] / l
			for j := range n {
				out[i*n+j] += vi * v[j*n+k]
			}
		}
	}
	return out
}

// epsOf is MATLAB's eps(x): the distance from |x| to the next larger
// float64.
func epsOf(x float64) float64 {
	x = math.Abs(x)
	if x == 0 {
		return math.SmallestNonzeroFloat64
	}
	return math.Nextafter(x, math.Inf(1)) - x
}

// FitOptions configure Fit.
type FitOptions struct {
	Block     int     // patch side (DefaultBlock)
	Sharpness float64 // keep patches sharper than this times the image's sharpest (DefaultSharpness)
}

// Fitter accumulates pristine images' patches for a model.
type Fitter struct {
	opt     FitOptions
	feats   [][NumFeatures]float64
	images  int
	patches int
}

// NewFitter starts a fit; zero options take the defaults.
func NewFitter(o FitOptions) (*Fitter, error) {
	if o.Block == 0 {
		o.Block = DefaultBlock
	}
	if o.Sharpness == 0 {
		o.Sharpness = DefaultSharpness
	}
	if o.Sharpness < 0 || o.Sharpness >= 1 {
		return nil, fmt.Errorf("niqe: sharpness threshold %g outside [0, 1)", o.Sharpness)
	}
	return &Fitter{opt: o}, nil
}

// Add adds a pristine image's patches that pass the sharpness threshold,
// and returns how many. An image without a whole block gives an error
// wrapping ErrTooFewPatches and adds nothing.
func (f *Fitter) Add(gray []float64, h, w int) (int, error) {
	ps, err := Extract(gray, h, w, f.opt.Block)
	if err != nil {
		return 0, err
	}
	var most float64
	for _, p := range ps {
		most = max(most, p.Sharpness)
	}
	kept := 0
	for _, p := range ps {
		if p.Sharpness > f.opt.Sharpness*most {
			f.feats = append(f.feats, p.Features)
			kept++
		}
	}
	f.images++
	f.patches += len(ps)
	return kept, nil
}

// Model returns the fitted model: the mean and covariance of the kept
// patches (nanmean, nancov).
func (f *Fitter) Model() (*Model, error) {
	mu, cov, n := mvg(f.feats)
	if n <= NumFeatures {
		return nil, fmt.Errorf("%w: %d kept patches (of %d in %d images) without NaN features; a model needs more than %d (more or larger pristine images, or a lower sharpness threshold)", ErrTooFewPatches, n, f.patches, f.images, NumFeatures)
	}
	m, err := ModelFromArrays(mu[:], cov, f.opt.Block)
	if err != nil {
		return nil, err
	}
	m.Images, m.Patches, m.SharpnessThreshold = f.images, len(f.feats), f.opt.Sharpness
	return m, nil
}
