package kube

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// AutoscalerNodeGroup is one node group as the Cluster Autoscaler's status
// ConfigMap describes it.
type AutoscalerNodeGroup struct {
	// Name of the group as the cloud provider knows it.
	Name string
	// Health is "Healthy" or "Unhealthy".
	Health string
	// ScaleUp is the group's scale-up state: "NoActivity", "InProgress",
	// "Backoff", … (empty when the status does not say).
	ScaleUp string
	// MinSize and MaxSize bound the group's node count.
	MinSize, MaxSize int32
	// TargetSize is the node count the cloud provider is asked for (the
	// status's cloudProviderTarget).
	TargetSize int32
}

// Headroom is how many nodes the group may still grow by.
func (g AutoscalerNodeGroup) Headroom() int32 { return max(0, g.MaxSize-g.TargetSize) }

// CanScaleUp reports whether the Cluster Autoscaler would grow the group now:
// it skips unhealthy groups and groups backing off after a failed scale-up.
func (g AutoscalerNodeGroup) CanScaleUp() bool {
	return g.Health != "Unhealthy" && g.ScaleUp != "Backoff"
}

// ParseAutoscalerStatus reads the "status" value of the Cluster Autoscaler's
// status ConfigMap (kube-system/cluster-autoscaler-status) and returns its
// node groups. It understands both formats the Cluster Autoscaler has
// written:
//
//   - YAML (cluster-autoscaler 1.30 and later, kubernetes/autoscaler#6375):
//     the clusterstate API's ClusterAutoscalerStatus with autoscalerStatus, clusterWide and
//     nodeGroups, each group with name, health.status,
//     health.cloudProviderTarget, health.minSize, health.maxSize,
//     health.nodeCounts and scaleUp.status;
//   - human-readable text (earlier versions), which starts with
//     "Cluster-autoscaler status at <time>:" and lists groups under
//     "NodeGroups:" as "Name: <group>" followed by a line like
//     "Health: Healthy (ready=1 … cloudProviderTarget=1 (minSize=1, maxSize=7))"
//     ("min=", "max=" in the oldest).
//
// A status that lists no groups, such as the one the Cluster Autoscaler
// writes while it is Initializing, yields none. Text in neither format, and
// a group without its sizes, is an error. The Cluster Autoscaler drops
// groups from a status that would exceed 1MB, so a group may be missing.
func ParseAutoscalerStatus(status string) ([]AutoscalerNodeGroup, error) {
	trimmed := strings.TrimSpace(status)
	if trimmed == "" {
		return nil, errors.New("the Cluster Autoscaler status is empty")
	}
	if isTextStatus(trimmed) {
		return parseTextStatus(trimmed)
	}
	return parseYAMLStatus(trimmed)
}

// yamlStatus is the part of the clusterstate API's ClusterAutoscalerStatus
// (k8s.io/autoscaler cluster-autoscaler/clusterstate/api) read here.
type yamlStatus struct {
	AutoscalerStatus string `json:"autoscalerStatus"`
	NodeGroups       []struct {
		Name   string `json:"name"`
		Health struct {
			Status     string `json:"status"`
			NodeCounts struct {
				Registered struct {
					Total *int32 `json:"total"`
				} `json:"registered"`
			} `json:"nodeCounts"`
			CloudProviderTarget *int32 `json:"cloudProviderTarget"`
			MinSize             *int32 `json:"minSize"`
			MaxSize             *int32 `json:"maxSize"`
		} `json:"health"`
		ScaleUp struct {
			Status string `json:"status"`
		} `json:"scaleUp"`
	} `json:"nodeGroups"`
}

func parseYAMLStatus(text string) ([]AutoscalerNodeGroup, error) {
	var top map[string]json.RawMessage
	if err := yaml.Unmarshal([]byte(text), &top); err != nil {
		return nil, fmt.Errorf("the Cluster Autoscaler status is neither its text format nor YAML: %w", err)
	}
	known := false
	for _, k := range []string{"autoscalerStatus", "clusterWide", "nodeGroups"} {
		if _, ok := top[k]; ok {
			known = true
		}
	}
	if !known {
		return nil, errors.New("the Cluster Autoscaler status YAML has none of autoscalerStatus, clusterWide, nodeGroups")
	}
	var s yamlStatus
	if err := yaml.Unmarshal([]byte(text), &s); err != nil {
		return nil, fmt.Errorf("reading the Cluster Autoscaler status YAML: %w", err)
	}
	groups := make([]AutoscalerNodeGroup, 0, len(s.NodeGroups))
	for i, ng := range s.NodeGroups {
		if ng.Name == "" {
			return nil, fmt.Errorf("the Cluster Autoscaler status: nodeGroups[%d] has no name", i)
		}
		h := ng.Health
		target := h.CloudProviderTarget
		if target == nil {
			target = h.NodeCounts.Registered.Total
		}
		if h.MaxSize == nil || target == nil {
			return nil, fmt.Errorf("the Cluster Autoscaler status: node group %q lacks health.maxSize or health.cloudProviderTarget", ng.Name)
		}
		g := AutoscalerNodeGroup{
			Name: ng.Name, Health: h.Status, ScaleUp: ng.ScaleUp.Status,
			MaxSize: *h.MaxSize, TargetSize: *target,
		}
		if h.MinSize != nil {
			g.MinSize = *h.MinSize
		}
		groups = append(groups, g)
	}
	return groups, nil
}

const textStatusPrefix = "Cluster-autoscaler status at "

func isTextStatus(s string) bool {
	if strings.HasPrefix(s, textStatusPrefix) {
		return true
	}
	for _, line := range strings.Split(s, "\n") {
		switch strings.TrimSpace(line) {
		case "Cluster-wide:", "NodeGroups:":
			return true
		}
	}
	return false
}

var (
	textSizes    = regexp.MustCompile(`cloudProviderTarget=(\d+)\s*\(\s*min(?:Size)?=(\d+),\s*max(?:Size)?=(\d+)\s*\)`)
	textCategory = regexp.MustCompile(`^([A-Za-z-]+):\s*(.*)$`)
)

// parseTextStatus reads the human-readable status of cluster-autoscaler
// before 1.30:
//
//	Cluster-autoscaler status at 2019-09-02 14:57:47.683724023 +0000 UTC:
//	Cluster-wide:
//	  Health:      Healthy (ready=2 unready=0 … registered=2 longUnregistered=0)
//	                LastProbeTime:      …
//	  ScaleUp:     NoActivity (ready=2 registered=2)
//	  …
//	NodeGroups:
//	  Name:        work-default-eks-spot1
//	  Health:      Healthy (ready=1 … cloudProviderTarget=1 (minSize=1, maxSize=7))
//	  ScaleUp:     NoActivity (ready=1 cloudProviderTarget=1)
//	  ScaleDown:   NoCandidates (candidates=0)
func parseTextStatus(text string) ([]AutoscalerNodeGroup, error) {
	var (
		groups   []AutoscalerNodeGroup
		inGroups bool
		cur      *AutoscalerNodeGroup
		sized    bool
	)
	finish := func() error {
		if cur == nil {
			return nil
		}
		if !sized {
			return fmt.Errorf("the Cluster Autoscaler status: node group %q has no Health line with cloudProviderTarget=N (minSize=N, maxSize=N)", cur.Name)
		}
		groups = append(groups, *cur)
		cur, sized = nil, false
		return nil
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64*1024), 2<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "NodeGroups:" {
			inGroups = true
			continue
		}
		if !inGroups {
			continue
		}
		m := textCategory.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		key, value := m[1], strings.TrimSpace(m[2])
		switch key {
		case "Name":
			if err := finish(); err != nil {
				return nil, err
			}
			if value == "" {
				return nil, errors.New("the Cluster Autoscaler status: a node group has an empty Name")
			}
			cur = &AutoscalerNodeGroup{Name: value}
		case "Health":
			if cur == nil {
				return nil, errors.New("the Cluster Autoscaler status: a node group's Health comes before its Name")
			}
			cur.Health = firstWord(value)
			sz := textSizes.FindStringSubmatch(value)
			if sz == nil {
				continue
			}
			var n [3]int32
			for i := range n {
				v, err := strconv.ParseInt(sz[i+1], 10, 32)
				if err != nil {
					return nil, fmt.Errorf("the Cluster Autoscaler status: node group %q: %w", cur.Name, err)
				}
				n[i] = int32(v)
			}
			cur.TargetSize, cur.MinSize, cur.MaxSize = n[0], n[1], n[2]
			sized = true
		case "ScaleUp":
			if cur != nil {
				cur.ScaleUp = firstWord(value)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading the Cluster Autoscaler status: %w", err)
	}
	if err := finish(); err != nil {
		return nil, err
	}
	return groups, nil
}

func firstWord(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		return f[0]
	}
	return ""
}
