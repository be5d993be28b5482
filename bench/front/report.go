package main

import (
	"fmt"
	"slices"
	"time"
)

// verdicts prints the side-by-side table, then one line per figure.
func verdicts(c config, direct, haproxy, front *side, lost []load) {
	fmt.Printf("\nP3: %-8s %12s %12s %12s %12s %14s\n", "side", "req/s", "CPU/request", "p99 loaded", "p99 light", "added p99*")
	dl := medianDur(direct.light, func(l load) time.Duration { return l.p99 })
	for _, sd := range []*side{direct, haproxy, front} {
		light := medianDur(sd.light, func(l load) time.Duration { return l.p99 })
		added := "-"
		if sd != direct {
			added = us(light - dl)
		}
		cpu := medianDur(sd.heavy, func(l load) time.Duration { return time.Duration(l.proxyCPU * 1e9) })
		fmt.Printf("P3: %-8s %12.0f %12s %12s %12s %14s\n", sd.name, medianRPS(sd.heavy), fmt.Sprintf("%.1fus", float64(cpu.Nanoseconds())/1e3),
			us(medianDur(sd.heavy, func(l load) time.Duration { return l.p99 })), us(light), added)
	}
	fmt.Printf("P3: medians over %d rounds; loaded = %d connections, light = %d; * light p99 minus direct's\n", c.rounds, c.conns, c.lightConns)
	for _, sd := range []*side{haproxy, front} {
		fmt.Printf("P3: %s opened %.0f backend connections per 1000 requests at full speed\n", sd.name,
			1000*float64(medianDur(sd.heavy, func(l load) time.Duration { return time.Duration(l.newConns * 1e9) }).Nanoseconds())/1e9)
	}
	fmt.Println()

	g, h := medianRPS(front.heavy), medianRPS(haproxy.heavy)
	ratio := g / h
	fmt.Printf("P3 rps=%.0f haproxy_rps=%.0f ratio=%.2f target>=0.8 %s\n", g, h, ratio, okShort(ratio >= 0.8))
	fmt.Printf("P3 added_p99=%s haproxy_added_p99=%s target=none (informational: p99 at %d connection(s) over direct-to-backend)\n",
		us(medianDur(front.light, func(l load) time.Duration { return l.p99 })-dl),
		us(medianDur(haproxy.light, func(l load) time.Duration { return l.p99 })-dl), c.lightConns)
	dp50 := medianDur(direct.light, func(l load) time.Duration { return l.p50 })
	fmt.Printf("P3 added_p50=%s haproxy_added_p50=%s target=none (informational: p50 at %d connection(s) over direct-to-backend)\n",
		us(medianDur(front.light, func(l load) time.Duration { return l.p50 })-dp50),
		us(medianDur(haproxy.light, func(l load) time.Duration { return l.p50 })-dp50), c.lightConns)
	fmt.Printf("P3 cpu_per_request=%.1fus haproxy=%.1fus target=none (informational: proxy CPU per request at full speed)\n",
		float64(medianDur(front.heavy, func(l load) time.Duration { return time.Duration(l.proxyCPU * 1e9) }).Nanoseconds())/1e3,
		float64(medianDur(haproxy.heavy, func(l load) time.Duration { return time.Duration(l.proxyCPU * 1e9) }).Nanoseconds())/1e3)
	fmt.Printf("P3 failed=%d target=0 %s (backend loss: 1 of 3 killed after %s, %d requests through the front)\n",
		lost[1].failed, okShort(lost[1].failed == 0), c.killAfter, lost[1].requests)
	fmt.Printf("P3 haproxy_failed=%d target=none (informational: %d requests through HAProxy in the same run)\n",
		lost[0].failed, lost[0].requests)
}

func medianRPS(ls []load) float64 {
	v := make([]float64, 0, len(ls))
	for _, l := range ls {
		v = append(v, l.rps)
	}
	slices.Sort(v)
	if len(v) == 0 {
		return 0
	}
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func medianDur(ls []load, f func(load) time.Duration) time.Duration {
	v := make([]time.Duration, 0, len(ls))
	for _, l := range ls {
		v = append(v, f(l))
	}
	slices.Sort(v)
	if len(v) == 0 {
		return 0
	}
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func okShort(ok bool) string {
	if ok {
		return "ok"
	}
	return "short"
}
