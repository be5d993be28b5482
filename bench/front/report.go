package main

import (
	"fmt"
	"slices"
	"time"
)

// verdicts prints the side-by-side table, then one line per figure:
// plain P3's, then P3-TLS's (tlsSides: haproxy-tls, glb-tls and
// haproxy-jwt; none with -tls=false), whose added latencies are over the
// same plain direct-to-backend run, so they hold what TLS and the token
// check add.
func verdicts(c config, direct, haproxy, front *side, tlsSides []*side, lost []load) {
	all := append([]*side{direct, haproxy, front}, tlsSides...)
	fmt.Printf("\nP3: %-11s %12s %12s %12s %12s %14s\n", "side", "req/s", "CPU/request", "p99 loaded", "p99 light", "added p99*")
	dl := medianDur(direct.light, p99)
	for _, sd := range all {
		light := medianDur(sd.light, p99)
		added := "-"
		if sd != direct {
			added = us(light - dl)
		}
		fmt.Printf("P3: %-11s %12.0f %12s %12s %12s %14s\n", sd.name, medianRPS(sd.heavy), cpuUS(sd),
			us(medianDur(sd.heavy, p99)), us(light), added)
	}
	fmt.Printf("P3: medians over %d rounds; loaded = %d connections, light = %d; * light p99 minus direct's\n", c.rounds, c.conns, c.lightConns)
	for _, sd := range all[1:] {
		fmt.Printf("P3: %s opened %.0f backend connections per 1000 requests at full speed\n", sd.name,
			1000*float64(medianDur(sd.heavy, func(l load) time.Duration { return time.Duration(l.newConns * 1e9) }).Nanoseconds())/1e9)
	}
	fmt.Println()

	compare("P3", c, direct, haproxy, front, "")
	fmt.Printf("P3 failed=%d target=0 %s (backend loss: 1 of 3 killed after %s, %d requests through the front)\n",
		lost[1].failed, okShort(lost[1].failed == 0), c.killAfter, lost[1].requests)
	fmt.Printf("P3 haproxy_failed=%d target=none (informational: %d requests through HAProxy in the same run)\n",
		lost[0].failed, lost[0].requests)
	if len(tlsSides) == 3 {
		hs, fs, hj := tlsSides[0], tlsSides[1], tlsSides[2]
		compare("P3-TLS", c, direct, hs, fs, "; HTTPS on both, the front verifies the JWT, HAProxy wants a Bearer header")
		fmt.Printf("P3-TLS kept=%.2f haproxy_kept=%.2f target=none (informational: req/s over plain P3's, same run)\n",
			medianRPS(fs.heavy)/medianRPS(front.heavy), medianRPS(hs.heavy)/medianRPS(haproxy.heavy))
		g, j := medianRPS(fs.heavy), medianRPS(hj.heavy)
		fmt.Printf("P3-TLS rps=%.0f haproxy_jwt_rps=%.0f ratio=%.2f cpu_per_request=%s haproxy_jwt=%s target=none (informational: HAProxy verifying the JWT on every request, the front once a minute per token)\n",
			g, j, g/j, cpuUS(fs), cpuUS(hj))
	}
}

// compare prints one variant's figures, the balancer's against HAProxy's:
// the targets are requests per CPU-second of the proxy (its cost per
// request, which the load generator's share of the cores does not move)
// and the p99 it adds at light load.
func compare(label string, c config, direct, haproxy, front *side, note string) {
	g, h := medianRPS(front.heavy), medianRPS(haproxy.heavy)
	gc, hc := perCPU(front), perCPU(haproxy)
	fmt.Printf("%s rps_per_cpu=%.0f haproxy=%.0f ratio=%.2f target>=1 %s (requests per CPU-second of the proxy at full speed%s)\n",
		label, gc, hc, gc/hc, okShort(gc >= hc), note)
	dl, dp50 := medianDur(direct.light, p99), medianDur(direct.light, p50)
	ga, ha := medianDur(front.light, p99)-dl, medianDur(haproxy.light, p99)-dl
	fmt.Printf("%s added_p99=%s haproxy=%s ratio=%.2f target<=2x %s (p99 at %d connection(s) over direct-to-backend%s)\n",
		label, us(ga), us(ha), float64(ga)/float64(max(ha, time.Microsecond)), okShort(ga <= 2*max(ha, 0)), c.lightConns, note)
	fmt.Printf("%s rps=%.0f haproxy_rps=%.0f ratio=%.2f target=none (informational: requests/s at full speed, the proxy sharing the cores with wrk and the backends%s)\n",
		label, g, h, g/h, note)
	fmt.Printf("%s added_p50=%s haproxy_added_p50=%s target=none (informational: p50 at %d connection(s) over direct-to-backend%s)\n",
		label, us(medianDur(front.light, p50)-dp50), us(medianDur(haproxy.light, p50)-dp50), c.lightConns, note)
	fmt.Printf("%s cpu_per_request=%s haproxy=%s target=none (informational: proxy CPU per request at full speed%s)\n",
		label, cpuUS(front), cpuUS(haproxy), note)
}

// perCPU is a side's requests per CPU-second of its proxy process, from
// its median CPU per request at full speed.
func perCPU(sd *side) float64 {
	cpu := medianDur(sd.heavy, func(l load) time.Duration { return time.Duration(l.proxyCPU * 1e9) })
	if cpu <= 0 {
		return 0
	}
	return 1e9 / float64(cpu.Nanoseconds())
}

func p50(l load) time.Duration { return l.p50 }
func p99(l load) time.Duration { return l.p99 }

// cpuUS is a side's median proxy CPU per request at full speed.
func cpuUS(sd *side) string {
	cpu := medianDur(sd.heavy, func(l load) time.Duration { return time.Duration(l.proxyCPU * 1e9) })
	return fmt.Sprintf("%.1fus", float64(cpu.Nanoseconds())/1e3)
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
