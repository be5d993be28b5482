package drill

import "fmt"

// Verdicts are the drill's figures, one line each, starting with the
// figure's id (P4 for region loss, the drill's name otherwise) and ending
// with its target and "ok" or "short", so a run can be grepped.
func (r *Result) Verdicts() []string {
	verdict := func(ok bool) string {
		if ok {
			return "ok"
		}
		return "short"
	}
	secs := func(s *Seconds) (string, float64) {
		if s == nil {
			return "never", 1e9
		}
		return fmt.Sprintf("%.2fs", float64(*s)), float64(*s)
	}
	id := r.Drill
	if id == RegionLoss {
		id = "P4"
	}
	var out []string
	line := func(format string, args ...any) { out = append(out, id+" "+fmt.Sprintf(format, args...)) }
	if r.Fault != "" {
		id += "-" + r.Fault
	}
	line("timing=%q membership=%s (informational: the preset every component ran with, how members joined the hub)", r.Timing, r.Membership)
	det, detV := secs(r.Detected)
	dnsS, dnsV := secs(r.DNSResteered)
	// Each kind of client: the load really offered, and what it met.
	clients := func(c Clients, failedTarget string, failedOK bool, gapTarget string, gapOK bool) {
		line("%s_clients offered=%d (%.1f/s) sent=%d achieved=%.1f/s target=offered %s%s", c.Kind, c.Offered, c.OfferedRate,
			c.Sent, c.AchievedRate, verdict(c.LoadOffered), map[bool]string{true: "", false: " (" + c.Shortfall + ")"}[c.LoadOffered])
		line("%s_clients failed=%d dropped=%d target%s %s", c.Kind, c.Failed, c.Dropped, failedTarget, verdict(failedOK))
		line("%s_clients longest_gap=%.2fs target%s %s", c.Kind, float64(c.LongestGap), gapTarget, verdict(gapOK))
		line("%s_clients p50=%.1fms p99=%.1fms (informational: every sent request, failed ones included)", c.Kind, 1000*float64(c.P50), 1000*float64(c.P99))
	}
	ttlBound := float64(r.DNSTTL) + 2
	dnsGap := fmt.Sprintf("<=ttl+2s(%.0fs)", ttlBound)
	switch r.Drill {
	case RegionLoss, Partition:
		line("detection=%s target<=%gs %s", det, float64(r.DetectionTarget), verdict(detV <= float64(r.DetectionTarget)))
		line("dns_resteer=%s target<=2s %s", dnsS, verdict(dnsV <= 2))
		clients(r.Front, "=0", r.Front.Failed+r.Front.Dropped == 0, "=none", true)
		clients(r.DNS, "=none", true, dnsGap, float64(r.DNS.LongestGap) <= ttlBound)
	case HubLoss:
		clients(r.Front, "=0", r.Front.Failed+r.Front.Dropped == 0, "=none", true)
		clients(r.DNS, "=0", r.DNS.Failed+r.DNS.Dropped == 0, "=none", true)
		line("dns_wrong=%d/%d target=0 %s", r.DNSWrong, r.DNSQueries, verdict(r.DNSWrong == 0 && r.DNSQueries > 0))
	}
	switch r.Drill {
	case RegionLoss:
		rep, _ := secs(r.Replaced)
		line("capacity_replaced=%s (informational)", rep)
	case Partition:
		line("gossip_cut=%t (informational: as root every packet of the region is dropped, gossip included)", r.GossipCut)
		cut := r.Front.FromCutRegion + r.DNS.FromCutRegion
		line("answers_from_cut_region=%d target=0 %s", cut, verdict(cut == 0))
		rej, rejV := secs(r.Rejoined)
		ret, retV := secs(r.DNSReturned)
		line("rejoined_after_heal=%s target=without-operator %s", rej, verdict(rejV < 1e9))
		line("dns_returned_after_heal=%s target=without-operator %s", ret, verdict(retV < 1e9))
	case HubLoss:
		back, backV := secs(r.Rejoined)
		line("hub_caught_up_after_return=%s target=without-operator %s", back, verdict(backV < 1e9))
	}
	return out
}
