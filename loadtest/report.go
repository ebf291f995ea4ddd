package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// WriteReport writes summary.md, summary.json and plot.png into dir.
func WriteReport(dir, scenarioFile string, res *Result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := writePlot(filepath.Join(dir, "plot.png"), res.Reports); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "summary.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "summary.md"), []byte(markdown(scenarioFile, res)), 0o644)
}

func markdown(scenarioFile string, res *Result) string {
	var b strings.Builder
	verdict := "pass"
	if !res.Passed() {
		verdict = "FAIL"
	}
	fmt.Fprintf(&b, "# certmill load test %s: %s\n\n", res.RunID, verdict)
	fmt.Fprintf(&b, "Scenario file `%s`, started %s. Certificates this run issued carry the lot `%s`.\n\n",
		scenarioFile, res.Started.UTC().Format(time.RFC3339), res.RunID)
	b.WriteString("| scenario | group | kind | requests | dropped | req/s | p50 | p99 | max | errors | checks failed | verdict |\n")
	b.WriteString("|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|---|\n")
	for _, r := range res.Reports {
		fmt.Fprintf(&b, "| %s | %d | %s | %d | %d | %.1f | %s | %s | %s | %d | %d | %s |\n", r.Name, r.Group, r.Kind, r.Requests, r.Dropped, r.Rate,
			round(r.P50), round(r.P99), round(r.Max), r.Errors, r.CheckFailed, r.verdictText())
	}
	b.WriteString("\nScenarios with the same group ran at the same time.\n\n## Notes and thresholds\n\n")
	for _, r := range res.Reports {
		fmt.Fprintf(&b, "- **%s**: %s\n", r.Name, thresholdText(r.scenario))
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "  - %s\n", n)
		}
	}
	b.WriteString("\n## Latency and rate per second\n\n![latency p50/p99 and achieved rate per second, one row per scenario](plot.png)\n")
	return b.String()
}

func thresholdText(s Scenario) string {
	var t []string
	if s.Thresholds.P99 > 0 {
		t = append(t, fmt.Sprintf("p99 ≤ %s", s.Thresholds.P99))
	}
	t = append(t, fmt.Sprintf("error rate ≤ %g", s.Thresholds.ErrorRate))
	if s.Kind == "revoke" {
		t = append(t, fmt.Sprintf("revoked within %s", s.Thresholds.RevokedWithin))
	}
	var st []string
	for _, x := range s.Stages {
		st = append(st, fmt.Sprintf("%g/s for %s", x.Rate, x.Duration))
	}
	from := ""
	if s.StartTime > 0 {
		from = fmt.Sprintf(" from %s", s.StartTime)
	}
	return fmt.Sprintf("%s%s; thresholds %s", strings.Join(st, ", "), from, strings.Join(t, ", "))
}

// perSecond buckets samples by the second they were sent in.
func perSecond(ss []sample) map[int][]sample {
	m := map[int][]sample{}
	for _, s := range ss {
		i := int(s.at / time.Second)
		m[i] = append(m[i], s)
	}
	return m
}

func quantile(lat []time.Duration, q float64) float64 {
	slices.Sort(lat)
	return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))]) / float64(time.Millisecond)
}

// writePlot draws one row per scenario: latency (p50, p99 per second)
// and rate (target, achieved, failed per second), on the time of the
// scenario's group so that scenarios that ran together line up.
func writePlot(path string, reports []Report) error {
	if len(reports) == 0 {
		return nil
	}
	groupEnd := map[int]float64{}
	for _, r := range reports {
		end := r.scenario.length().Seconds()
		for _, s := range r.samples {
			end = max(end, (s.at + s.lat).Seconds())
		}
		groupEnd[r.Group] = max(groupEnd[r.Group], end)
	}
	rows := make([][]*plot.Plot, len(reports))
	for i, r := range reports {
		lp, err := latencyPlot(r)
		if err != nil {
			return err
		}
		rp, err := ratePlot(r)
		if err != nil {
			return err
		}
		for _, p := range []*plot.Plot{lp, rp} {
			p.X.Min, p.X.Max = 0, groupEnd[r.Group]
			p.X.Label.Text = fmt.Sprintf("seconds since group %d started", r.Group)
			p.Legend.Top, p.Legend.Left = true, true
			p.Legend.TextStyle.Font.Size = vg.Points(8)
			p.Add(plotter.NewGrid())
		}
		rows[i] = []*plot.Plot{lp, rp}
	}
	const rowH = 2.4
	img := vgimg.NewWith(vgimg.UseWH(12*vg.Inch, vg.Length(rowH*float64(len(reports)))*vg.Inch), vgimg.UseDPI(96))
	dc := draw.New(img)
	t := draw.Tiles{Rows: len(reports), Cols: 2, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	canvases := plot.Align(rows, t, dc)
	for i := range rows {
		for j := range rows[i] {
			rows[i][j].Draw(canvases[i][j])
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

var (
	blue  = color.RGBA{R: 31, G: 119, B: 180, A: 255}
	red   = color.RGBA{R: 214, G: 39, B: 40, A: 255}
	green = color.RGBA{R: 44, G: 160, B: 44, A: 255}
	grey  = color.RGBA{R: 90, G: 90, B: 90, A: 255}
)

func line(p *plot.Plot, name string, pts plotter.XYs, c color.Color, dashed bool) error {
	if len(pts) == 0 {
		return nil
	}
	l, err := plotter.NewLine(pts)
	if err != nil {
		return err
	}
	l.Color, l.Width = c, vg.Points(1.3)
	if dashed {
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	}
	p.Add(l)
	p.Legend.Add(name, l)
	return nil
}

func latencyPlot(r Report) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s (%s): latency", r.Name, r.Kind)
	p.Y.Label.Text = "ms"
	p.Y.Min = 0
	b := perSecond(r.samples)
	var p50, p99 plotter.XYs
	for _, sec := range sortedKeys(b) {
		lat := make([]time.Duration, len(b[sec]))
		for i, s := range b[sec] {
			lat[i] = s.lat
		}
		x := float64(sec) + 0.5
		p50 = append(p50, plotter.XY{X: x, Y: quantile(lat, 0.5)})
		p99 = append(p99, plotter.XY{X: x, Y: quantile(lat, 0.99)})
	}
	if err := line(p, "p50", p50, blue, false); err != nil {
		return nil, err
	}
	if err := line(p, "p99", p99, red, false); err != nil {
		return nil, err
	}
	if len(r.extra) > 0 {
		var pts plotter.XYs
		for _, s := range r.extra {
			pts = append(pts, plotter.XY{X: s.at.Seconds(), Y: float64(s.lat) / float64(time.Millisecond)})
		}
		slices.SortFunc(pts, func(a, b plotter.XY) int { return cmp.Compare(a.X, b.X) })
		sc, err := plotter.NewScatter(pts)
		if err != nil {
			return nil, err
		}
		sc.Color = green
		sc.Radius = vg.Points(1.5)
		p.Add(sc)
		p.Legend.Add(r.extraFor, sc)
	}
	headroom(p)
	return p, nil
}

func ratePlot(r Report) (*plot.Plot, error) {
	p := plot.New()
	unit := map[string]string{"batch": "batches/s", "revoke": "revocations/s"}[r.Kind]
	if unit == "" {
		unit = "requests/s"
	}
	p.Title.Text = fmt.Sprintf("%s: rate", r.Name)
	p.Y.Label.Text = unit
	p.Y.Min = 0
	var target plotter.XYs
	t := r.scenario.StartTime.Seconds()
	for _, st := range r.scenario.Stages {
		target = append(target, plotter.XY{X: t, Y: st.Rate}, plotter.XY{X: t + st.Duration.Seconds(), Y: st.Rate})
		t += st.Duration.Seconds()
	}
	b := perSecond(r.samples)
	var sent, failed plotter.XYs
	anyFailed := false
	for _, sec := range sortedKeys(b) {
		n := 0
		for _, s := range b[sec] {
			if s.failed {
				n++
			}
		}
		anyFailed = anyFailed || n > 0
		// A step per second: what was sent in that second.
		x := float64(sec)
		sent = append(sent, plotter.XY{X: x, Y: float64(len(b[sec]))}, plotter.XY{X: x + 1, Y: float64(len(b[sec]))})
		failed = append(failed, plotter.XY{X: x, Y: float64(n)}, plotter.XY{X: x + 1, Y: float64(n)})
	}
	if err := line(p, "target", target, grey, true); err != nil {
		return nil, err
	}
	if err := line(p, "sent", sent, blue, false); err != nil {
		return nil, err
	}
	if anyFailed {
		if err := line(p, "failed", failed, red, false); err != nil {
			return nil, err
		}
	}
	headroom(p)
	return p, nil
}

// headroom leaves the top third of a plot to its legend (Add has
// stretched Y.Max to the data).
func headroom(p *plot.Plot) { p.Y.Max = max(p.Y.Max, 1) * 1.5 }

func sortedKeys(m map[int][]sample) []int {
	ks := make([]int, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
