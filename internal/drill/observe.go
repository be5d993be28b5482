package drill

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	mdns "github.com/miekg/dns"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/internal/fleet"
)

// This file is how a drill sees the fleet: as users do (requests through
// the front, DNS questions) and as an operator does (the hub's objects).

// resolve asks the fleet's DNS for sentiment as a client of subnet.
func resolve(f *fleet.Fleet, subnet netip.Prefix) (netip.Addr, error) {
	m := new(mdns.Msg)
	m.SetQuestion("sentiment."+f.Zone+".", mdns.TypeA)
	o := &mdns.OPT{Hdr: mdns.RR_Header{Name: ".", Rrtype: mdns.TypeOPT}}
	o.SetUDPSize(1232)
	o.Option = append(o.Option, &mdns.EDNS0_SUBNET{Code: mdns.EDNS0SUBNET, Family: 1, SourceNetmask: uint8(subnet.Bits()), Address: subnet.Addr().AsSlice()})
	m.Extra = append(m.Extra, o)
	r, err := mdns.Exchange(m, f.DNSAddr)
	if err != nil {
		return netip.Addr{}, err
	}
	for _, rr := range r.Answer {
		if a, ok := rr.(*mdns.A); ok {
			addr, _ := netip.AddrFromSlice(a.A.To4())
			return addr, nil
		}
	}
	return netip.Addr{}, nil
}

// regionAddresses are the addresses DNS gives each region's clients
// before the drill, and the endpoint's TTL.
func regionAddresses(ctx context.Context, f *fleet.Fleet) (map[string]netip.Addr, int32, error) {
	var ge v1.GlobalEndpoint
	if err := f.Client().Get(ctx, client.ObjectKey{Namespace: "default", Name: "sentiment"}, &ge); err != nil {
		return nil, 0, err
	}
	out := map[string]netip.Addr{}
	for region, subnet := range DefaultSubnets {
		a, err := resolve(f, subnet)
		if err != nil {
			return nil, 0, fmt.Errorf("drill: asking DNS for %s's clients before the drill: %w", region, err)
		}
		if !a.IsValid() {
			return nil, 0, fmt.Errorf("drill: DNS gave %s's clients no address before the drill", region)
		}
		out[region] = a
	}
	return out, ge.Spec.TTL, nil
}

// fleetReady is true when the hub has mirrored a heartbeat newer than t
// into every Cluster, each Ready, and every InferenceModel is Ready: the
// hub is reading its members again.
func fleetReady(ctx context.Context, f *fleet.Fleet, t time.Time) bool {
	var cls v1.ClusterList
	var ims v1.InferenceModelList
	if f.Client().List(ctx, &cls) != nil || f.Client().List(ctx, &ims) != nil || len(cls.Items) == 0 {
		return false
	}
	for _, c := range cls.Items {
		if hb := c.Status.LastHeartbeat; c.Status.Health != v1.HealthReady || hb == nil || !hb.After(t) {
			return false
		}
	}
	for _, im := range ims.Items {
		if !v1.IsConditionTrue(im.Status.Conditions, v1.ConditionReady) {
			return false
		}
	}
	return true
}

func health(ctx context.Context, f *fleet.Fleet, region string) v1.ClusterHealth {
	var c v1.Cluster
	if err := f.Client().Get(ctx, client.ObjectKey{Name: region}, &c); err != nil {
		return ""
	}
	return c.Status.Health
}

// replaced reports every InferenceModel Ready with no replica wanted in
// the dead region.
func replaced(ctx context.Context, f *fleet.Fleet, region string) bool {
	var list v1.InferenceModelList
	if err := f.Client().List(ctx, &list); err != nil {
		return false
	}
	for _, im := range list.Items {
		if !v1.IsConditionTrue(im.Status.Conditions, v1.ConditionReady) {
			return false
		}
		for _, a := range im.Status.Clusters {
			if a.Cluster == region && a.DesiredReplicas > 0 {
				return false
			}
		}
	}
	return len(list.Items) > 0
}
