package inventory

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	cpv1 "sigs.k8s.io/cluster-inventory-api/apis/v1alpha1"

	v1 "meridian.dev/meridian/crds/v1alpha1"
)

// The ClusterProfile property names Meridian writes and reads
// (status.properties). Region and zone use the well-known topology label
// keys; the rest are Meridian's own. Quantities are Kubernetes quantities
// ("64", "250Gi"), GPU counts integers.
const (
	PropertyRegion         = "topology.kubernetes.io/region"
	PropertyZone           = "topology.kubernetes.io/zone"
	PropertyProvider       = "meridian.dev/provider"
	PropertyLatitude       = "meridian.dev/latitude"
	PropertyLongitude      = "meridian.dev/longitude"
	PropertyEndpoint       = "meridian.dev/endpoint"
	PropertyCostPerGPUHour = "meridian.dev/cost-per-gpu-hour"
	// PropertyHealth is Meridian's own verdict (Ready, Degraded,
	// Unreachable, Unknown), finer than ControlPlaneHealthy. Published only.
	PropertyHealth     = "meridian.dev/health"
	PropertyCPU        = "meridian.dev/cpu"
	PropertyFreeCPU    = "meridian.dev/free-cpu"
	PropertyMemory     = "meridian.dev/memory"
	PropertyFreeMemory = "meridian.dev/free-memory"
	// PropertyGPUPrefix + a GPU product (nvidia.com/gpu.product) is how
	// many GPUs of it the nodes offer; PropertyFreeGPUPrefix + product how
	// many are free.
	PropertyGPUPrefix     = "meridian.dev/gpu."
	PropertyFreeGPUPrefix = "meridian.dev/free-gpu."
)

// Properties Open Cluster Management publishes (its well-known
// ClusterClaims), read on import when Meridian's own are absent.
const (
	ocmRegion   = "region.open-cluster-management.io"
	ocmPlatform = "platform.open-cluster-management.io"
)

// properties are the ClusterProfile properties that describe c.
func properties(c *v1.Cluster) map[string]string {
	p := map[string]string{
		PropertyRegion:         string(c.Spec.Region),
		PropertyZone:           c.Spec.Zone,
		PropertyProvider:       c.Spec.Provider,
		PropertyEndpoint:       c.Spec.Endpoint,
		PropertyHealth:         string(c.Status.Health),
		PropertyCostPerGPUHour: quantity(c.Spec.CostPerGPUHour),
	}
	if loc := c.Spec.Location; loc != nil {
		p[PropertyLatitude], p[PropertyLongitude] = loc.Latitude, loc.Longitude
	}
	if capa := c.Status.Capacity; !capa.CPU.IsZero() || !capa.Memory.IsZero() {
		p[PropertyCPU], p[PropertyFreeCPU] = capa.CPU.String(), capa.FreeCPU.String()
		p[PropertyMemory], p[PropertyFreeMemory] = capa.Memory.String(), capa.FreeMemory.String()
	}
	for _, g := range c.Status.Capacity.GPUs {
		p[PropertyGPUPrefix+g.Type] = strconv.Itoa(int(g.Allocatable))
		p[PropertyFreeGPUPrefix+g.Type] = strconv.Itoa(int(g.Free))
	}
	return p
}

func quantity(q *resource.Quantity) string {
	if q == nil {
		return ""
	}
	return q.String()
}

// mergeProperties is want as a property list sorted by name, empty values
// left out (the API requires a value). A property whose value is as in
// old keeps its lastObservedTime; a changed or new one is observed at now,
// so a steady cluster's profile is never rewritten.
func mergeProperties(old []cpv1.Property, want map[string]string, now metav1.Time) []cpv1.Property {
	out := make([]cpv1.Property, 0, len(want))
	for name, value := range want {
		if value == "" {
			continue
		}
		observed := now
		if i := slices.IndexFunc(old, func(p cpv1.Property) bool { return p.Name == name }); i >= 0 && old[i].Value == value {
			observed = old[i].LastObservedTime
		}
		out = append(out, cpv1.Property{Name: name, Value: value, LastObservedTime: observed})
	}
	slices.SortFunc(out, func(a, b cpv1.Property) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// regionPattern is RegionName's validation in the Cluster CRD.
var regionPattern = regexp.MustCompile(`^[a-z][a-z0-9]*(-[a-z0-9]+)*$`)

// profileView reads a foreign ClusterProfile's properties and labels.
type profileView struct {
	p     *cpv1.ClusterProfile
	props map[string]string
}

func newProfileView(p *cpv1.ClusterProfile) profileView {
	props := make(map[string]string, len(p.Status.Properties))
	for _, pr := range p.Status.Properties {
		props[pr.Name] = pr.Value
	}
	return profileView{p: p, props: props}
}

// first is the first of names set as a property, then as a label, and
// where it was found.
func (v profileView) first(names ...string) (value, from string) {
	for _, n := range names {
		if s := v.props[n]; s != "" {
			return s, "property " + n
		}
	}
	for _, n := range names {
		if s := v.p.Labels[n]; s != "" {
			return s, "label " + n
		}
	}
	return "", ""
}

// spec is the Cluster spec the profile describes.
func (v profileView) spec() (v1.ClusterSpec, error) {
	var s v1.ClusterSpec
	region, from := v.first(PropertyRegion, ocmRegion)
	switch {
	case region == "":
		return s, fmt.Errorf("no region: set the property %s (or %s, or the label %s) to the cluster's region, e.g. eu-west",
			PropertyRegion, ocmRegion, PropertyRegion)
	case len(region) > 63 || !regionPattern.MatchString(region):
		return s, fmt.Errorf("region %q (%s) is not a Meridian region name: lower-case letters, digits and dashes, e.g. eu-west-1", region, from)
	}
	s.Region = v1.RegionName(region)
	s.Zone, _ = v.first(PropertyZone)
	s.Endpoint = v.props[PropertyEndpoint]
	s.Provider = v.props[PropertyProvider]
	if s.Provider == "" {
		s.Provider = strings.ToLower(v.props[ocmPlatform])
	}
	lat, lon := v.props[PropertyLatitude], v.props[PropertyLongitude]
	if (lat == "") != (lon == "") {
		return s, fmt.Errorf("location needs both %s and %s", PropertyLatitude, PropertyLongitude)
	}
	if lat != "" {
		if err := checkCoordinate(PropertyLatitude, lat, 90); err != nil {
			return s, err
		}
		if err := checkCoordinate(PropertyLongitude, lon, 180); err != nil {
			return s, err
		}
		s.Location = &v1.GeoLocation{Latitude: lat, Longitude: lon}
	}
	if c := v.props[PropertyCostPerGPUHour]; c != "" {
		q, err := resource.ParseQuantity(c)
		if err != nil {
			return s, fmt.Errorf("property %s: %q is not a quantity, e.g. 2.50", PropertyCostPerGPUHour, c)
		}
		s.CostPerGPUHour = &q
	}
	return s, nil
}

func checkCoordinate(name, s string, limit float64) error {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < -limit || f > limit {
		return fmt.Errorf("property %s: %q is not a number of degrees between -%g and %g", name, s, limit, limit)
	}
	return nil
}

// capacity is the capacity the profile's Meridian properties state; none
// when it states none.
func (v profileView) capacity() (v1.Capacity, error) {
	var c v1.Capacity
	for name, q := range map[string]*resource.Quantity{PropertyCPU: &c.CPU, PropertyFreeCPU: &c.FreeCPU, PropertyMemory: &c.Memory, PropertyFreeMemory: &c.FreeMemory} {
		s := v.props[name]
		if s == "" {
			continue
		}
		parsed, err := resource.ParseQuantity(s)
		if err != nil {
			return c, fmt.Errorf("property %s: %q is not a quantity, e.g. 64 or 256Gi", name, s)
		}
		*q = parsed
	}
	for name, s := range v.props {
		product, ok := strings.CutPrefix(name, PropertyGPUPrefix)
		if !ok {
			continue
		}
		alloc, err1 := strconv.ParseInt(s, 10, 32)
		free, err2 := strconv.ParseInt(v.props[PropertyFreeGPUPrefix+product], 10, 32)
		if err1 != nil || err2 != nil || alloc < 0 || free < 0 {
			return c, fmt.Errorf("properties %s and %s must both be counts of GPUs", name, PropertyFreeGPUPrefix+product)
		}
		c.GPUs = append(c.GPUs, v1.GPUCapacity{Type: product, Allocatable: int32(alloc), Free: int32(free)})
	}
	slices.SortFunc(c.GPUs, func(a, b v1.GPUCapacity) int { return strings.Compare(a.Type, b.Type) })
	return c, nil
}
