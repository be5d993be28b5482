package placement

import (
	"slices"
	"strconv"
	"strings"
)

// shortage names the resource that leaves a cluster without room.
type shortage uint8

const (
	shortNone shortage = iota
	shortGPU
	shortCPU
	shortMemory
)

// reasons builds the exclusion reasons that depend on the model, once per
// model and only when a cluster needs them, so that the filter loop shares
// one string among all the clusters excluded for the same reason.
type reasons struct {
	sel, gpu, hold string
	noRoom         [4]string
}

func (r *reasons) selector(m *Model) string {
	if r.sel == "" {
		keys := make([]string, 0, len(m.Selector))
		for k := range m.Selector {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var b strings.Builder
		b.WriteString("labels do not match selector ")
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(k + "=" + m.Selector[k])
		}
		r.sel = b.String()
	}
	return r.sel
}

func (r *reasons) gpuType(m *Model) string {
	if r.gpu == "" {
		if t := m.PerReplica.GPUType; t != "" {
			r.gpu = "no " + t + " GPUs, neither free nor addable"
		} else {
			r.gpu = "no GPUs, neither free nor addable"
		}
	}
	return r.gpu
}

func (r *reasons) held(m *Model, need int64) string {
	if r.hold == "" {
		r.hold = "no room for " + strconv.FormatInt(need, 10) + " " + plural(int(need), "replica", "replicas") +
			" beside other models' current replicas"
	}
	return r.hold
}

func (r *reasons) room(m *Model, s shortage, need int64) string {
	if r.noRoom[s] == "" {
		var b strings.Builder
		b.WriteString("not enough ")
		req := m.PerReplica
		var each string
		switch s {
		case shortGPU:
			if req.GPUType != "" {
				b.WriteString("free or addable " + req.GPUType + " GPUs")
			} else {
				b.WriteString("free or addable GPUs of one product")
			}
			each = strconv.Itoa(req.GPUs) + " " + plural(req.GPUs, "GPU", "GPUs")
		case shortCPU:
			b.WriteString("free CPU")
			each = formatMilliCPU(req.MilliCPU) + " CPU"
		case shortMemory:
			b.WriteString("free memory")
			each = formatBytes(req.MemoryBytes)
		default:
			b.WriteString("room")
		}
		b.WriteString(" for " + strconv.FormatInt(need, 10) + " " + plural(int(need), "replica", "replicas"))
		if each != "" {
			b.WriteString(" of " + each)
		}
		r.noRoom[s] = b.String()
	}
	return r.noRoom[s]
}

// formatMilliCPU writes CPU as Kubernetes does: "500m", or "2" for whole
// cores.
func formatMilliCPU(m int64) string {
	if m%1000 == 0 {
		return strconv.FormatInt(m/1000, 10)
	}
	return strconv.FormatInt(m, 10) + "m"
}

// formatBytes writes bytes with the largest binary suffix that divides
// them, as Kubernetes quantities do: "512Mi", "16Gi", "1000".
func formatBytes(n int64) string {
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"Ti", 1 << 40}, {"Gi", 1 << 30}, {"Mi", 1 << 20}, {"Ki", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}
