package plot

import (
	"fmt"
	"math"

	"github.com/pdmflow/pdmflow/internal/imageio"
)

// Colours of the two samples of a histogram panel, and of the text.
var (
	ColorA    = [3]uint8{230, 120, 30} // learned
	ColorB    = [3]uint8{40, 110, 200} // true
	ColorText = [3]uint8{20, 20, 20}
	ColorAxis = [3]uint8{150, 150, 150}
	ColorBack = [3]uint8{255, 255, 255}
)

// Panel is one quantity: two samples on shared bins.
type Panel struct {
	Title  string
	A, B   []float64 // drawn in ColorA and ColorB
	LabelA string
	LabelB string
}

const (
	panelW, panelH = 420, 170
	bins           = 30
	margin         = 10
)

// Histograms draws the panels one below another: each the two samples'
// normalised histograms over shared bins (bars side by side), the range
// at the axis ends, the title, and each sample's label with its mean and
// standard deviation.
func Histograms(panels []Panel) *imageio.Image {
	im := New(panelW, len(panels)*panelH, ColorBack)
	for i, p := range panels {
		drawPanel(im, 0, i*panelH, p)
	}
	return im
}

func drawPanel(im *imageio.Image, x0, y0 int, p Panel) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range append(append([]float64(nil), p.A...), p.B...) {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
	}
	ts := 2
	if TextWidth(p.Title, 2) > panelW-2*margin {
		ts = 1
	}
	Text(im, x0+margin, y0+margin, p.Title, ts, ColorText)
	if lo > hi {
		Text(im, x0+margin, y0+60, "no data", 1, ColorText)
		return
	}
	if hi == lo {
		lo, hi = lo-0.5, hi+0.5
	}
	ha, hb := histogram(p.A, lo, hi), histogram(p.B, lo, hi)
	peak := 0.0
	for i := range ha {
		peak = math.Max(peak, math.Max(ha[i], hb[i]))
	}
	plotX, plotY := x0+margin, y0+34
	plotW, plotH := panelW-2*margin, 90
	Fill(im, plotX, plotY+plotH, plotW, 1, ColorAxis)
	bw := plotW / bins
	for i := 0; i < bins; i++ {
		for j, h := range []float64{ha[i], hb[i]} {
			if peak == 0 || h == 0 {
				continue
			}
			bh := max(1, int(math.Round(h/peak*float64(plotH))))
			c := ColorA
			if j == 1 {
				c = ColorB
			}
			Fill(im, plotX+i*bw+j*bw/2, plotY+plotH-bh, max(1, bw/2-1), bh, c)
		}
	}
	ly := plotY + plotH + 4
	Text(im, plotX, ly, fmt.Sprintf("%.3g", lo), 1, ColorText)
	hs := fmt.Sprintf("%.3g", hi)
	Text(im, plotX+plotW-TextWidth(hs, 1), ly, hs, 1, ColorText)
	legend := func(x int, c [3]uint8, label string, v []float64) {
		Fill(im, x, ly+14, 8, 8, c)
		m, s := meanStd(v)
		Text(im, x+12, ly+14, fmt.Sprintf("%s %.3g+-%.2g (%d)", label, m, s, len(v)), 1, ColorText)
	}
	legend(plotX, ColorA, p.LabelA, p.A)
	legend(plotX+plotW/2, ColorB, p.LabelB, p.B)
}

// histogram is the fraction of v in each of bins equal bins over [lo, hi].
func histogram(v []float64, lo, hi float64) []float64 {
	h := make([]float64, bins)
	if len(v) == 0 {
		return h
	}
	for _, x := range v {
		if math.IsNaN(x) {
			continue
		}
		i := int((x - lo) / (hi - lo) * bins)
		h[min(max(i, 0), bins-1)]++
	}
	for i := range h {
		h[i] /= float64(len(v))
	}
	return h
}

func meanStd(v []float64) (m, s float64) {
	if len(v) == 0 {
		return math.NaN(), math.NaN()
	}
	for _, x := range v {
		m += x
	}
	m /= float64(len(v))
	for _, x := range v {
		s += (x - m) * (x - m)
	}
	return m, math.Sqrt(s / float64(len(v)))
}
