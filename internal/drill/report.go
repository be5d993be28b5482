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
	det, detV := secs(r.Detected)
	dnsS, dnsV := secs(r.DNSResteered)
	switch r.Drill {
	case RegionLoss, Partition:
		line("detection=%s target<=2s %s", det, verdict(detV <= 2))
		line("dns_resteer=%s target<=2s+ttl(%ds) %s", dnsS, r.DNSTTL, verdict(dnsV <= 2+float64(r.DNSTTL)))
		line("lost_requests=%d target=0 %s", r.Failed, verdict(r.Failed == 0))
	case HubLoss:
		line("lost_requests=%d target=0 %s", r.Failed, verdict(r.Failed == 0))
		line("dns_wrong=%d/%d target=0 %s", r.DNSWrong, r.DNSQueries, verdict(r.DNSWrong == 0 && r.DNSQueries > 0))
	}
	switch r.Drill {
	case RegionLoss:
		rep, _ := secs(r.Replaced)
		line("capacity_replaced=%s (informational)", rep)
	case Partition:
		line("answers_from_cut_region=%d target=0 %s", r.FromCutRegion, verdict(r.FromCutRegion == 0))
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
