package main

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	mdns "github.com/miekg/dns"

	"meridian.dev/meridian/bench/internal/glbfixture"
)

// waitAnswer waits until a server answers the query with any address.
func waitAnswer(port int, s subnet) func() error {
	return func() error {
		r, _, err := (&mdns.Client{Timeout: 300 * time.Millisecond}).Exchange(query(s, 0), "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			return err
		}
		if len(r.Answer) == 0 {
			return errNoAnswer
		}
		return nil
	}
}

// printChecks shows how each server answered the query set once.
func printChecks(servers []*server, n int) {
	for _, sv := range servers {
		if sv.skipped != "" {
			fmt.Printf("P2: %-13s %s\n", sv.name, sv.skipped)
			continue
		}
		var per []string
		for _, site := range glbfixture.Sites {
			per = append(per, fmt.Sprintf("%s %d", site.Name, sv.check.byAddr[site.Addr]))
		}
		fmt.Printf("P2: %-13s answered %d/%d; nearest cluster %d (%.1f%%); ECS echoed %d; answers: %s\n",
			sv.name, sv.check.answered, n, sv.check.nearest, pct(sv.check.nearest, n), sv.check.ecs, strings.Join(per, ", "))
	}
}

// spread is a figure over the rounds: its median, minimum and maximum.
type spread struct{ med, lo, hi float64 }

func spreadOf(v []float64) spread {
	if len(v) == 0 {
		return spread{math.NaN(), math.NaN(), math.NaN()}
	}
	return spread{median(slices.Clone(v)), slices.Min(v), slices.Max(v)}
}

// format prints the spread scaled, as "median (min–max)".
func (s spread) format(scale float64, verb string) string {
	return fmt.Sprintf(verb+" ("+verb+"–"+verb+")", s.med*scale, s.lo*scale, s.hi*scale)
}

// ratios are a/b round by round (the rounds are interleaved, so each
// pair ran minutes apart at most).
func ratios(a, b []float64) []float64 {
	var r []float64
	for i := range min(len(a), len(b)) {
		r = append(r, a[i]/b[i])
	}
	return r
}

// verdicts prints the side-by-side table, then one line per figure.
func verdicts(servers []*server, c config) {
	fmt.Printf("\nP2: median (min–max) over %d interleaved rounds; CPU/query is the server's CPU time over each full-speed run / answered queries\n", c.rounds)
	fmt.Printf("P2: %-13s %-24s %-26s %-24s %-22s %-8s %s\n", "server", "CPU/query us", "QPS", "p99 ms at "+strconv.Itoa(c.rate)+" qps", "p50 ms", "nearest", "others*")
	by := map[string]*server{}
	for _, sv := range servers {
		by[sv.name] = sv
		if sv.skipped != "" {
			fmt.Printf("P2: %-13s skipped (%s)\n", sv.name, sv.skipped)
			continue
		}
		fmt.Printf("P2: %-13s %-24s %-26s %-24s %-22s %-8s %s%s\n", sv.name, spreadOf(sv.cpuPerQ).format(1e6, "%.1f"),
			spreadOf(sv.qps).format(1, "%.0f"), spreadOf(sv.p99s).format(1e3, "%.3f"), spreadOf(sv.p50s).format(1e3, "%.3f"),
			fmt.Sprintf("%.1f%%", pct(sv.check.nearest, sv.check.answered)), spreadOf(sv.others).format(1, "%.2f"), lostNote(sv.lost+sv.latLost))
	}
	fmt.Println("P2: * cores used by other processes on the machine during the full-speed runs: the noise each figure carries")
	fmt.Println()
	// The headline (issue 14): the balancer's CPU per query as a multiple
	// of Knot's (a static zone, the ceiling) and of PowerDNS's (LUA
	// steering). Lines without a server name are the default build.
	for _, name := range []string{"glb-v1", "glb-v2"} {
		g := by[name]
		if g.skipped != "" {
			continue
		}
		prefix := ""
		if name != "glb-v1" {
			prefix = name + " "
		}
		for _, t := range []struct {
			peer, key string
			target    float64
		}{{"knot", "knot", 2}, {"pdns-lua", "pdns_lua", 0.5}} {
			p := by[t.peer]
			if p.skipped != "" {
				continue
			}
			cpu, pcpu := spreadOf(g.cpuPerQ), spreadOf(p.cpuPerQ)
			r, rr := cpu.med/pcpu.med, spreadOf(ratios(g.cpuPerQ, p.cpuPerQ))
			fmt.Printf("P2 %scpu_per_query=%.1fus %s=%.1fus ratio=%.2f rounds=%.2f-%.2f target<=%gx %s\n",
				prefix, 1e6*cpu.med, t.key, 1e6*pcpu.med, r, rr.lo, rr.hi, t.target, okShort(r <= t.target))
		}
	}
	for _, name := range []string{"glb-v1", "glb-v2"} {
		g := by[name]
		if g.skipped != "" {
			fmt.Printf("P2 %s skipped (%s)\n", name, g.skipped)
			continue
		}
		for _, t := range []struct {
			peer, key string
			target    float64
		}{{"pdns-lua", "pdns_lua", 2}, {"coredns", "coredns_static", 1}} {
			p := by[t.peer]
			cpu, pcpu := spreadOf(g.cpuPerQ), spreadOf(p.cpuPerQ)
			if t.peer != "pdns-lua" { // against PowerDNS, the headline above has it
				r, rr := pcpu.med/cpu.med, spreadOf(ratios(p.cpuPerQ, g.cpuPerQ))
				fmt.Printf("P2 %s cpu_per_query=%.1fus %s=%.1fus ratio=%.2f rounds=%.2f-%.2f target>=%g %s\n",
					name, 1e6*cpu.med, t.key, 1e6*pcpu.med, r, rr.lo, rr.hi, t.target, okShort(r >= t.target))
			}
			q, pq := spreadOf(g.qps), spreadOf(p.qps)
			r, rr := q.med/pq.med, spreadOf(ratios(g.qps, p.qps))
			fmt.Printf("P2 %s qps=%.0f %s_qps=%.0f ratio=%.2f rounds=%.2f-%.2f target>=%g %s\n",
				name, q.med, t.key, pq.med, r, rr.lo, rr.hi, t.target, okShort(r >= t.target))
		}
		p99 := median(slices.Clone(g.p99s))
		fmt.Printf("P2 %s p99=%s at=%dqps target<1ms %s%s\n", name, ms(p99), c.rate, okShort(p99 < 0.001 && g.latLost == 0), lostNote(g.latLost))
		fmt.Printf("P2 %s nearest=%.1f%% target=none (informational: answers naming the nearest cluster by great-circle distance)\n",
			name, pct(g.check.nearest, g.check.answered))
		if k := by["knot"]; k.skipped == "" {
			kq, gq := median(slices.Clone(k.qps)), median(slices.Clone(g.qps))
			fmt.Printf("P2 %s qps=%.0f knot_qps=%.0f ratio=%.2f target=none (informational: Knot DNS, static zone, the ceiling)\n",
				name, gq, kq, gq/kq)
		}
	}
	for _, name := range []string{"pdns-lua", "pdns-lua-nopc", "coredns", "knot"} {
		sv := by[name]
		fmt.Printf("P2 %s p99=%s at=%dqps target=none (informational)%s\n", sv.name, ms(median(slices.Clone(sv.p99s))), c.rate, lostNote(sv.latLost))
	}
	if pn := by["pdns-lua-nopc"]; pn != nil {
		pd := by["pdns-lua"]
		fmt.Printf("P2 pdns-lua cpu_per_query=%.1fus without_packet_cache=%.1fus target=none (informational: cache-ttl=20 vs 0)\n",
			1e6*median(slices.Clone(pd.cpuPerQ)), 1e6*median(slices.Clone(pn.cpuPerQ)))
	}
	pd := by["pdns-lua"]
	fmt.Printf("P2 pdns-lua nearest=%.1f%% target=none (informational: pickclosest ranks by squared degrees, not great-circle)\n",
		pct(pd.check.nearest, pd.check.answered))
}

func lostNote(lost int) string {
	if lost == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d queries lost)", lost)
}

func okShort(ok bool) string {
	if ok {
		return "ok"
	}
	return "short"
}

func pct(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}
