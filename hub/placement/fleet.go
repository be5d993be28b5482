package placement

import (
	"math"
	"slices"
	"strings"
)

// earthRadiusKm is the mean radius of the Earth (IUGG), in kilometres.
const earthRadiusKm = 6371.0088

// maxFit caps how many replicas placement counts as fitting in one cluster,
// so that replicas requesting (almost) nothing do not overflow the maths.
const maxFit = 1 << 30

// fleet is the clusters indexed once for many placements: sorted by name,
// with regions, GPU products and label pairs interned as small integers,
// distances to every region precomputed, and capacity in flat slices that
// PlaceAll draws down model by model. Nothing in the hot loop of a
// placement allocates or looks up a map.
type fleet struct {
	names   []string         // cluster names, sorted
	byName  map[string]int32 // name -> cluster index
	region  []int32          // region index of each cluster
	healthy []bool
	cost    []float64 // CostPerGPUHour

	regions      []string         // region names, sorted
	regionID     map[string]int32 // name -> region index
	notAllowed   []string         // "region X not allowed", by region
	regionCenter []vec3           // mean location, zero when unknown
	// distKm[c*len(regions)+r] is the great-circle distance in km from
	// cluster c to region r's centre, NaN when either is unknown.
	distKm []float64

	products  []string // GPU products, sorted
	productID map[string]int32

	// room is the capacity a model may take: free capacity minus what
	// the models placed so far took and what other models' previous
	// replicas still hold. basis is the same without the holds: scores
	// are computed on it, so that holds do not change them. They are one
	// and the same when nothing is held.
	room, basis *capacity
	gpuHas      []bool // the product is a key of Free.GPUs or Addable
	anyGPU      []bool // the cluster has any GPU product

	pairID   map[labelPair]int32 // label key=value -> pair index
	pairBits [][]uint64          // per pair, a bitset of the clusters that carry it
}

type labelPair struct{ key, value string }

// vec3 is a point on the unit sphere.
type vec3 struct{ x, y, z float64 }

func toVec(latDeg, lonDeg float64) vec3 {
	lat, lon := latDeg*math.Pi/180, lonDeg*math.Pi/180
	return vec3{math.Cos(lat) * math.Cos(lon), math.Cos(lat) * math.Sin(lon), math.Sin(lat)}
}

func (v vec3) zero() bool { return v == vec3{} }

// greatCircleKm is the great-circle distance between two unit vectors, in
// km (atan2 of the cross and dot products: accurate at every distance).
func greatCircleKm(a, b vec3) float64 {
	cx, cy, cz := a.y*b.z-a.z*b.y, a.z*b.x-a.x*b.z, a.x*b.y-a.y*b.x
	return earthRadiusKm * math.Atan2(math.Sqrt(cx*cx+cy*cy+cz*cz), a.x*b.x+a.y*b.y+a.z*b.z)
}

// newFleet indexes clusters. When two clusters share a name the first one
// in the slice is used and the others are ignored.
func newFleet(clusters []Cluster) *fleet {
	order := make([]int, len(clusters))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return strings.Compare(clusters[a].Name, clusters[b].Name) })
	order = slices.CompactFunc(order, func(a, b int) bool { return clusters[a].Name == clusters[b].Name })
	n := len(order)

	f := &fleet{
		names:     make([]string, n),
		byName:    make(map[string]int32, n),
		region:    make([]int32, n),
		healthy:   make([]bool, n),
		cost:      make([]float64, n),
		regionID:  map[string]int32{},
		productID: map[string]int32{},
		pairID:    map[labelPair]int32{},
		anyGPU:    make([]bool, n),
	}
	for _, i := range order {
		c := &clusters[i]
		f.regionID[c.Region] = 0
		for p := range c.Free.GPUs {
			f.productID[p] = 0
		}
		for p := range c.Addable {
			f.productID[p] = 0
		}
	}
	f.regions = sortedKeys(f.regionID)
	for i, r := range f.regions {
		f.regionID[r] = int32(i)
	}
	f.products = sortedKeys(f.productID)
	for i, p := range f.products {
		f.productID[p] = int32(i)
	}
	R, P := len(f.regions), len(f.products)
	f.gpuHas = make([]bool, n*P)
	f.room = &capacity{products: P, cpu: make([]int64, n), mem: make([]int64, n), gpuFree: make([]int64, n*P), gpuAdd: make([]int64, n*P)}
	f.basis = f.room
	cp := f.room

	sum := make([]vec3, R)
	words := (n + 63) / 64
	for ci, i := range order {
		c := &clusters[i]
		f.names[ci] = c.Name
		f.byName[c.Name] = int32(ci)
		r := f.regionID[c.Region]
		f.region[ci] = r
		f.healthy[ci] = c.Healthy
		if cost := c.CostPerGPUHour; !math.IsNaN(cost) && !math.IsInf(cost, 0) {
			f.cost[ci] = max(cost, 0)
		}
		cp.cpu[ci] = max(c.Free.MilliCPU, 0)
		cp.mem[ci] = max(c.Free.MemoryBytes, 0)
		for p, v := range c.Free.GPUs {
			k := ci*P + int(f.productID[p])
			cp.gpuFree[k], f.gpuHas[k], f.anyGPU[ci] = int64(max(v, 0)), true, true
		}
		for p, v := range c.Addable {
			k := ci*P + int(f.productID[p])
			cp.gpuAdd[k], f.gpuHas[k], f.anyGPU[ci] = int64(max(v, 0)), true, true
		}
		for k, v := range c.Labels {
			id, ok := f.pairID[labelPair{k, v}]
			if !ok {
				id = int32(len(f.pairBits))
				f.pairID[labelPair{k, v}] = id
				f.pairBits = append(f.pairBits, make([]uint64, words))
			}
			f.pairBits[id][ci>>6] |= 1 << (ci & 63)
		}
		if located(c) {
			v := toVec(c.Lat, c.Lon)
			sum[r].x, sum[r].y, sum[r].z = sum[r].x+v.x, sum[r].y+v.y, sum[r].z+v.z
		}
	}

	// A region's centre is the normalised mean of its clusters' unit
	// vectors: the mean location, correct across the antimeridian.
	f.regionCenter = make([]vec3, R)
	f.notAllowed = make([]string, R)
	for r, s := range sum {
		if l := math.Sqrt(s.x*s.x + s.y*s.y + s.z*s.z); l > 1e-9 {
			f.regionCenter[r] = vec3{s.x / l, s.y / l, s.z / l}
		}
		f.notAllowed[r] = "region " + f.regions[r] + " not allowed"
	}
	f.distKm = make([]float64, n*R)
	for ci, i := range order {
		c := &clusters[i]
		at := f.regionCenter[f.region[ci]]
		if located(c) {
			at = toVec(c.Lat, c.Lon)
		}
		for r := range R {
			d := math.NaN()
			if !at.zero() && !f.regionCenter[r].zero() {
				d = greatCircleKm(at, f.regionCenter[r])
			}
			f.distKm[ci*R+r] = d
		}
	}
	return f
}

// located reports whether c has a usable location.
func located(c *Cluster) bool {
	return c.HasLocation && c.Lat >= -90 && c.Lat <= 90 && c.Lon >= -180 && c.Lon <= 180
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// gpuMode says how a request uses GPUs.
type gpuMode uint8

const (
	gpuNone    gpuMode = iota // CPU only
	gpuTyped                  // GPUs of one named product
	gpuAny                    // GPUs of any one product
	gpuUnknown                // a product no cluster has
)

// gpuOf resolves a request's GPU product.
func (f *fleet) gpuOf(req *Request) (gpuMode, int32) {
	if req.GPUs <= 0 {
		return gpuNone, -1
	}
	if req.GPUType == "" {
		return gpuAny, -1
	}
	if id, ok := f.productID[req.GPUType]; ok {
		return gpuTyped, id
	}
	return gpuUnknown, -1
}

// separateBasis gives the fleet a basis of its own, a copy of room, before
// room is drawn down by holds.
func (f *fleet) separateBasis() {
	r := f.room
	f.basis = &capacity{products: r.products, cpu: slices.Clone(r.cpu), mem: slices.Clone(r.mem),
		gpuFree: slices.Clone(r.gpuFree), gpuAdd: slices.Clone(r.gpuAdd)}
}

// capacity is CPU, memory and GPUs by cluster, in flat slices; GPU slices
// are indexed cluster*products+product.
type capacity struct {
	products        int
	cpu, mem        []int64
	gpuFree, gpuAdd []int64
}

// fit is how many replicas of req fit in cluster c, capped at maxFit, and
// the resource that limits them. A replica on a free GPU needs free CPU
// and memory beside it; one on an addable GPU comes with the node the
// cluster autoscaler adds for it, which brings its CPU and memory.
func (cp *capacity) fit(c int, req *Request, mode gpuMode, product int32) (int64, shortage) {
	fit, short := int64(maxFit), shortNone
	var addable int64
	P, g := cp.products, int64(req.GPUs)
	switch mode {
	case gpuTyped:
		k := c*P + int(product)
		fit, addable, short = cp.gpuFree[k]/g, cp.gpuAdd[k]/g, shortGPU
	case gpuAny:
		fit, short = 0, shortGPU
		for k := c * P; k < c*P+P; k++ {
			fit += cp.gpuFree[k] / g
			addable += cp.gpuAdd[k] / g
		}
	case gpuUnknown:
		return 0, shortGPU
	}
	if req.MilliCPU > 0 {
		if x := cp.cpu[c] / req.MilliCPU; x < fit {
			fit, short = x, shortCPU
		}
	}
	if req.MemoryBytes > 0 {
		if x := cp.mem[c] / req.MemoryBytes; x < fit {
			fit, short = x, shortMemory
		}
	}
	return min(fit+addable, maxFit), short
}

// grant is capacity taken from one cluster, recorded so that it can be
// given back exactly.
type grant struct {
	cluster         int32
	product         int32 // GPU product index, -1 for none
	cpu, mem        int64
	gpuFree, gpuAdd int64
}

// take draws n replicas of req from cluster c, as fit counts them: first
// on free GPUs with free CPU and memory, then on addable GPUs alone. A
// request for any product fills products in name order. When grants is
// not nil, what was taken is appended to it.
func (cp *capacity) take(c int, n int64, req *Request, mode gpuMode, product int32, grants *[]grant) {
	if n <= 0 {
		return
	}
	P, g := cp.products, int64(req.GPUs)
	onFree := n
	if mode == gpuTyped || mode == gpuAny {
		var free int64
		if mode == gpuTyped {
			free = cp.gpuFree[c*P+int(product)] / g
		} else {
			for k := c * P; k < c*P+P; k++ {
				free += cp.gpuFree[k] / g
			}
		}
		if req.MilliCPU > 0 {
			free = min(free, cp.cpu[c]/req.MilliCPU)
		}
		if req.MemoryBytes > 0 {
			free = min(free, cp.mem[c]/req.MemoryBytes)
		}
		onFree = min(n, free)
	}
	cpu, mem := min(onFree*max(req.MilliCPU, 0), cp.cpu[c]), min(onFree*max(req.MemoryBytes, 0), cp.mem[c])
	cp.cpu[c] -= cpu
	cp.mem[c] -= mem
	if grants != nil {
		*grants = append(*grants, grant{cluster: int32(c), product: -1, cpu: cpu, mem: mem})
	}
	switch mode {
	case gpuTyped:
		k := c*P + int(product)
		free := min(onFree*g, cp.gpuFree[k])
		add := min((n-onFree)*g, cp.gpuAdd[k])
		cp.gpuFree[k] -= free
		cp.gpuAdd[k] -= add
		if grants != nil {
			*grants = append(*grants, grant{cluster: int32(c), product: product, gpuFree: free, gpuAdd: add})
		}
	case gpuAny:
		freeLeft, addLeft := onFree, n-onFree
		for p := range P {
			k := c*P + p
			onF := min(cp.gpuFree[k]/g, freeLeft)
			onA := min(cp.gpuAdd[k]/g, addLeft)
			if onF == 0 && onA == 0 {
				continue
			}
			cp.gpuFree[k] -= onF * g
			cp.gpuAdd[k] -= onA * g
			freeLeft, addLeft = freeLeft-onF, addLeft-onA
			if grants != nil {
				*grants = append(*grants, grant{cluster: int32(c), product: int32(p), gpuFree: onF * g, gpuAdd: onA * g})
			}
			if freeLeft == 0 && addLeft == 0 {
				break
			}
		}
	}
}

// giveBack returns what take granted.
func (cp *capacity) giveBack(grants []grant) {
	P := cp.products
	for _, g := range grants {
		cp.cpu[g.cluster] += g.cpu
		cp.mem[g.cluster] += g.mem
		if g.product >= 0 {
			k := int(g.cluster)*P + int(g.product)
			cp.gpuFree[k] += g.gpuFree
			cp.gpuAdd[k] += g.gpuAdd
		}
	}
}
