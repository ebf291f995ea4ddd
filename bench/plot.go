package main

import (
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// plotLines draws one line per series and writes a PNG.
func plotLines(path, title, xlabel, ylabel string, ss []series) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xlabel
	p.Y.Label.Text = ylabel
	p.Y.Min = 0
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.XOffs = vg.Points(40)
	top := 0.0
	for _, s := range ss {
		for _, y := range s.y {
			top = max(top, y)
		}
	}
	p.Y.Max = top * 1.45 // room for the legend above the lines
	for i, s := range ss {
		pts := make(plotter.XYs, len(s.x))
		for j := range s.x {
			pts[j].X, pts[j].Y = float64(s.x[j]), s.y[j]
		}
		l, sc, err := plotter.NewLinePoints(pts)
		if err != nil {
			return err
		}
		c := plotutil.Color(i)
		if i == 0 {
			c = color.Black
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		l.Color, sc.Color = c, c
		l.Width = vg.Points(1.5)
		p.Add(l, sc)
		p.Legend.Add(s.name, l, sc)
	}
	return p.Save(9*vg.Inch, 5*vg.Inch, path)
}
