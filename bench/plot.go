package main

import (
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// chart is what a line plot says around its series.
type chart struct {
	title, xlabel, ylabel string
	logX, logY            bool
	xticks                []float64 // ticks at these x values, labelled short (1k, 10M); nil: gonum's own
}

// ceilingColor draws the ceilings: dashed and grey-black, so that the
// components stand out in colour; a second ceiling is lighter and dotted.
var (
	ceilingColor  = color.Gray{Y: 40}
	ceilingColors = []color.Color{ceilingColor, color.Gray{Y: 130}}
	ceilingDashes = [][]vg.Length{{vg.Points(7), vg.Points(4)}, {vg.Points(2), vg.Points(3)}}
)

// plotLines draws one line per series and writes a PNG. Series marked
// dashed are ceilings.
func plotLines(path string, c chart, ss []series) error {
	p := plot.New()
	p.Title.Text = c.title
	p.Title.TextStyle.Font.Size = vg.Points(14)
	p.X.Label.Text = c.xlabel
	p.Y.Label.Text = c.ylabel
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.XOffs = vg.Points(10)
	p.Legend.YOffs = vg.Points(-5)
	p.Legend.TextStyle.Font.Size = vg.Points(11)
	lo, hi := math.Inf(1), 0.0
	for _, s := range ss {
		for _, y := range s.y {
			lo, hi = min(lo, y), max(hi, y)
		}
	}
	if hi == 0 {
		return fmt.Errorf("plot %s: no data", path)
	}
	if c.logY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = shortTicks{log: true}
		p.Y.Min = lo / 2
		// Room for the legend above the lines: a factor in log space.
		p.Y.Max = hi * math.Pow(hi/(lo/2), 0.12*float64(len(ss)))
	} else {
		p.Y.Tick.Marker = shortTicks{}
		p.Y.Min = 0
		p.Y.Max = hi * (1.15 + 0.09*float64(len(ss)))
	}
	// Room either side, so that the end ticks' labels are not cut.
	xlo, xhi := math.Inf(1), math.Inf(-1)
	for _, s := range ss {
		for _, x := range s.x {
			xlo, xhi = min(xlo, x), max(xhi, x)
		}
	}
	if xhi <= xlo { // one point
		xlo, xhi = xlo/2, xhi*2
	}
	if c.logX {
		p.X.Scale = plot.LogScale{}
		p.X.Min, p.X.Max = xlo/math.Pow(xhi/xlo, 0.03), xhi*math.Pow(xhi/xlo, 0.03)
	} else {
		p.X.Min, p.X.Max = xlo-0.03*(xhi-xlo), xhi+0.03*(xhi-xlo)
	}
	if c.xticks != nil {
		var ts []plot.Tick
		for _, x := range c.xticks {
			ts = append(ts, plot.Tick{Value: x, Label: short(x)})
		}
		p.X.Tick.Marker = plot.ConstantTicks(ts)
	}
	colour, ceiling := 0, 0
	for _, s := range ss {
		pts := make(plotter.XYs, len(s.x))
		for j := range s.x {
			pts[j].X, pts[j].Y = s.x[j], s.y[j]
		}
		l, sc, err := plotter.NewLinePoints(pts)
		if err != nil {
			return err
		}
		var col color.Color
		if s.dashed {
			col = ceilingColors[ceiling%len(ceilingColors)]
			l.Dashes = ceilingDashes[ceiling%len(ceilingDashes)]
			sc.Shape = draw.BoxGlyph{}
			ceiling++
		} else {
			col = plotutil.Color(colour)
			sc.Shape = plotutil.Shape(colour)
			colour++
		}
		l.Color, sc.Color = col, col
		l.Width = vg.Points(2)
		sc.Radius = vg.Points(3.5)
		if s.flat {
			p.Add(l)
			p.Legend.Add(s.name, l)
			continue
		}
		p.Add(l, sc)
		p.Legend.Add(s.name, l, sc)
	}
	return p.Save(9*vg.Inch, 5.5*vg.Inch, path)
}

// bars is one group member of a bar chart: a name and a value per
// category.
type bars struct {
	name   string
	values []float64
}

// plotBars draws grouped bars, one group per category, and writes a PNG.
func plotBars(path, title, ylabel string, categories []string, bs []bars) error {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(14)
	p.Y.Label.Text = ylabel
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.XOffs = vg.Points(10)
	p.Legend.TextStyle.Font.Size = vg.Points(11)
	p.Y.Tick.Marker = shortTicks{}
	hi := 0.0
	for _, b := range bs {
		for _, v := range b.values {
			hi = max(hi, v)
		}
	}
	if hi == 0 {
		return fmt.Errorf("plot %s: no data", path)
	}
	p.Y.Min, p.Y.Max = 0, hi*(1.15+0.09*float64(len(bs)))
	w := vg.Points(math.Min(28, 300/float64(len(bs)*len(categories))))
	for i, b := range bs {
		bc, err := plotter.NewBarChart(plotter.Values(b.values), w)
		if err != nil {
			return err
		}
		bc.LineStyle.Width = vg.Length(0)
		bc.Color = plotutil.Color(i)
		if i == 0 && len(bs) > 1 {
			bc.Color = ceilingColor
		}
		bc.Offset = w * vg.Length(float64(i)-float64(len(bs)-1)/2)
		p.Add(bc)
		p.Legend.Add(b.name, bc)
	}
	p.NominalX(categories...)
	// Room for the outer bars of the first and last groups: a group's bars
	// take at most 300/len(categories) points, less than 0.7 of the space
	// between two groups on a 9-inch plot.
	p.X.Min, p.X.Max = -0.7, float64(len(categories)-1)+0.7
	return p.Save(9*vg.Inch, 5.5*vg.Inch, path)
}

// shortTicks labels ticks 20k, 1.5M instead of 20000, 1.5e+06.
type shortTicks struct{ log bool }

func (t shortTicks) Ticks(lo, hi float64) []plot.Tick {
	var ts []plot.Tick
	if t.log {
		ts = plot.LogTicks{Prec: -1}.Ticks(lo, hi)
	} else {
		ts = plot.DefaultTicks{}.Ticks(lo, hi)
	}
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = short(ts[i].Value)
		}
	}
	return ts
}

// short writes 1500 as 1.5k and 10000000 as 10M.
func short(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e6:
		return trimZero(v/1e6) + "M"
	case a >= 1e3:
		return trimZero(v/1e3) + "k"
	default:
		return trimZero(v)
	}
}

func trimZero(v float64) string {
	s := fmt.Sprintf("%.2f", v)
	for len(s) > 1 && s[len(s)-1] == '0' {
		s = s[:len(s)-1]
	}
	if s[len(s)-1] == '.' {
		s = s[:len(s)-1]
	}
	return s
}
