package drill

import (
	"fmt"
	"io"
)

// WriteSVG draws the timeline: answered requests per bin in green, failed
// ones in red above them, and vertical lines at the fault, the heal and
// each event measured.
func (r *Result) WriteSVG(w io.Writer) error {
	const width, height, left, bottom = 900, 300, 50, 40
	plotW, plotH := float64(width-left-20), float64(height-bottom-40)
	// Both kinds of client in one timeline.
	timeline := make([]Bin, max(len(r.Front.Timeline), len(r.DNS.Timeline)))
	for _, c := range []Clients{r.Front, r.DNS} {
		for i, b := range c.Timeline {
			timeline[i].OK += b.OK
			timeline[i].Failed += b.Failed
		}
	}
	maxN := int64(1)
	for _, b := range timeline {
		maxN = max(maxN, b.OK+b.Failed)
	}
	n := max(len(timeline), 1)
	bw := plotW / float64(n)
	x := func(bin float64) float64 { return float64(left) + bin*bw }
	y := func(v int64) float64 { return 20 + plotH*(1-float64(v)/float64(maxN)) }
	if _, err := fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", width, height); err != nil {
		return err
	}
	lost := map[string]string{"": "killed", "crash": "killed", "blackhole": "blackholed"}[r.Fault]
	what := map[string]string{RegionLoss: r.Region + " " + lost, HubLoss: "the hub lost", Partition: r.Region + " partitioned"}[r.Drill]
	fmt.Fprintf(w, `<text x="%d" y="14">%s drill: %s — front %d sent, %d failed; DNS-following %d sent, %d failed (bins of 250 ms)</text>`+"\n",
		left, r.Drill, what, r.Front.Sent, r.Front.Failed, r.DNS.Sent, r.DNS.Failed)
	for i, b := range timeline {
		fmt.Fprintf(w, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#3a3"/>`+"\n", x(float64(i)), y(b.OK), bw*0.9, 20+plotH-y(b.OK))
		if b.Failed > 0 {
			fmt.Fprintf(w, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#d33"/>`+"\n", x(float64(i)), y(b.OK+b.Failed), bw*0.9, y(b.OK)-y(b.OK+b.Failed))
		}
	}
	mark := func(from int, after *Seconds, label, color string, row int) {
		if after == nil {
			return
		}
		bin := float64(from) + float64(*after)/binWidth.Seconds()
		fmt.Fprintf(w, `<line x1="%.1f" y1="20" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"/>`+"\n", x(bin), x(bin), 20+plotH, color)
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" fill="%s">%s +%.1fs</text>`+"\n", x(bin)+3, 34+float64(row)*14, color, label, float64(*after))
	}
	zero := Seconds(0)
	mark(r.FaultAt, &zero, map[string]string{RegionLoss: lost, HubLoss: "hub lost", Partition: "partitioned"}[r.Drill], "#000", 0)
	mark(r.FaultAt, r.Detected, "detected", "#a50", 1)
	mark(r.FaultAt, r.DNSResteered, "DNS re-steered", "#05a", 2)
	mark(r.FaultAt, r.Replaced, "capacity replaced", "#080", 3)
	if r.HealAt > 0 {
		mark(r.HealAt, &zero, map[string]string{HubLoss: "hub back", Partition: "healed"}[r.Drill], "#000", 4)
		mark(r.HealAt, r.Rejoined, "rejoined", "#a50", 5)
		mark(r.HealAt, r.DNSReturned, "DNS returned", "#05a", 6)
	}
	fmt.Fprintf(w, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#666"/>`+"\n", left, 20+plotH, width-20, 20+plotH)
	fmt.Fprintf(w, `<text x="%d" y="%d">time →</text><text x="4" y="30">%d</text><text x="4" y="%.1f">0</text>`+"\n", left, height-10, maxN, 20+plotH)
	_, err := fmt.Fprintln(w, `</svg>`)
	return err
}
