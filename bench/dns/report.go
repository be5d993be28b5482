package main

import (
	"fmt"
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
			fmt.Printf("P2: %-8s %s\n", sv.name, sv.skipped)
			continue
		}
		var per []string
		for _, site := range glbfixture.Sites {
			per = append(per, fmt.Sprintf("%s %d", site.Name, sv.check.byAddr[site.Addr]))
		}
		fmt.Printf("P2: %-8s answered %d/%d; nearest cluster %d (%.1f%%); ECS echoed %d; answers: %s\n",
			sv.name, sv.check.answered, n, sv.check.nearest, pct(sv.check.nearest, n), sv.check.ecs, strings.Join(per, ", "))
	}
}

// verdicts prints the side-by-side table, then one line per figure.
func verdicts(servers []*server, c config) {
	by := map[string]*server{}
	for _, sv := range servers {
		by[sv.name] = sv
	}
	fmt.Printf("\nP2: %-8s %10s  %-26s %9s %9s %9s %8s\n", "server", "median qps", "rounds", "CPU/query", "p50*", "p99*", "nearest")
	for _, sv := range servers {
		if sv.skipped != "" {
			fmt.Printf("P2: %-8s skipped (%s)\n", sv.name, sv.skipped)
			continue
		}
		var rounds []string
		for _, q := range sv.qps {
			rounds = append(rounds, fmt.Sprintf("%.0f", q))
		}
		fmt.Printf("P2: %-8s %10.0f  %-26s %7.1fus %9s %9s %7.1f%%\n", sv.name, median(append([]float64(nil), sv.qps...)),
			strings.Join(rounds, " "), 1e6*median(sv.cpuPerQ), ms(median(sv.p50s)), ms(median(sv.p99s)), pct(sv.check.nearest, sv.check.answered))
	}
	fmt.Printf("P2: * median over the rounds at %d qps (one dnsperf socket)\n\n", c.rate)
	pd, cd := by["pdns-lua"], by["coredns"]
	pdQPS, cdQPS := median(append([]float64(nil), pd.qps...)), median(append([]float64(nil), cd.qps...))
	for _, name := range []string{"glb-v1", "glb-v2"} {
		g := by[name]
		if g.skipped != "" {
			fmt.Printf("P2 %s skipped (%s)\n", name, g.skipped)
			continue
		}
		q := median(append([]float64(nil), g.qps...))
		fmt.Printf("P2 %s qps=%.0f pdns_lua_qps=%.0f ratio=%.2f target>=2 %s\n", name, q, pdQPS, q/pdQPS, okShort(q/pdQPS >= 2))
		fmt.Printf("P2 %s qps=%.0f coredns_static_qps=%.0f ratio=%.2f target>=1 %s\n", name, q, cdQPS, q/cdQPS, okShort(q/cdQPS >= 1))
		p99 := median(g.p99s)
		fmt.Printf("P2 %s p99=%s at=%dqps target<1ms %s%s\n", name, ms(p99), c.rate, okShort(p99 < 0.001 && g.latLost == 0), lostNote(g.latLost))
		fmt.Printf("P2 %s nearest=%.1f%% target=none (informational: answers naming the nearest cluster by great-circle distance)\n",
			name, pct(g.check.nearest, g.check.answered))
	}
	for _, name := range []string{"glb-v1", "glb-v2"} {
		if g := by[name]; g.skipped == "" {
			fmt.Printf("P2 %s cpu_per_query=%.1fus pdns_lua=%.1fus coredns_static=%.1fus target=none (informational: server CPU per query at full speed, steadier than QPS on a shared machine)\n",
				name, 1e6*median(g.cpuPerQ), 1e6*median(pd.cpuPerQ), 1e6*median(cd.cpuPerQ))
		}
	}
	for _, sv := range []*server{pd, cd} {
		fmt.Printf("P2 %s p99=%s at=%dqps target=none (informational)%s\n", sv.name, ms(median(sv.p99s)), c.rate, lostNote(sv.latLost))
	}
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
