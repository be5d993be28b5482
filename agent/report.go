package agent

import (
	"context"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"meridian.dev/meridian/agent/kube"
	v1 "meridian.dev/meridian/crds/v1alpha1"
)

// report keeps the cluster's ClusterReport current until ctx ends: the
// identity in spec; heartbeat, capacity and per-model load in status.
func (a *Agent) report(ctx context.Context) error {
	t := time.NewTicker(a.opts.ReportPeriod)
	defer t.Stop()
	for {
		if err := a.writeReport(ctx); err != nil {
			a.metrics.reports.WithLabelValues("error").Inc()
			a.log.Warn("writing the ClusterReport; will retry", "err", err, "in", a.opts.ReportPeriod)
		} else {
			a.metrics.reports.WithLabelValues("ok").Inc()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (a *Agent) writeReport(ctx context.Context) error {
	rep := &v1.ClusterReport{}
	err := a.client.Get(ctx, client.ObjectKey{Name: v1.ClusterReportName}, rep)
	if apierrors.IsNotFound(err) {
		rep = &v1.ClusterReport{ObjectMeta: metav1.ObjectMeta{Name: v1.ClusterReportName}, Spec: a.opts.Identity}
		if err := a.client.Create(ctx, rep); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	if !rep.Spec.Equal(a.opts.Identity) {
		rep.Spec = a.opts.Identity
		if err := a.client.Update(ctx, rep); err != nil {
			return err
		}
	}
	base := rep.DeepCopy()
	rep.Status.Heartbeat = &metav1.Time{Time: time.Now()}
	rep.Status.Models = a.models()
	if a.opts.Runtime == v1.RuntimeKubernetes {
		if rep.Status.Capacity, err = kube.MeasureCapacity(ctx, a.client, a.opts.Capacity); err != nil {
			return err
		}
	} else {
		rep.Status.Capacity = a.capacity()
	}
	return a.client.Status().Patch(ctx, rep, client.MergeFrom(base))
}

// models is the load of every ModelDeployment this agent runs, by name.
func (a *Agent) models() []v1.ModelLoad {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]v1.ModelLoad, 0, len(a.locals)+len(a.kubeLoads))
	for _, l := range a.kubeLoads {
		out = append(out, l)
	}
	for _, l := range a.locals {
		l.mu.Lock()
		if l.load.Name != "" {
			out = append(out, l.load)
		}
		l.mu.Unlock()
	}
	slices.SortFunc(out, func(x, y v1.ModelLoad) int {
		return strings.Compare(x.Namespace+"/"+x.Name, y.Namespace+"/"+y.Name)
	})
	return out
}

// capacity is the configured site capacity minus what the replicas
// request: the headroom the hub may still place into.
func (a *Agent) capacity() v1.Capacity {
	c := *a.opts.Process.Capacity.DeepCopy()
	freeCPU, freeMem := c.CPU.DeepCopy(), c.Memory.DeepCopy()
	gpus := map[string]int32{}
	a.mu.Lock()
	for _, l := range a.locals {
		l.mu.Lock()
		n := int64(l.current)
		res := l.spec.Resources
		l.mu.Unlock()
		cpu, mem := res.CPU.DeepCopy(), res.Memory.DeepCopy()
		cpu.Mul(n)
		mem.Mul(n)
		freeCPU.Sub(cpu)
		freeMem.Sub(mem)
		if res.GPU != nil {
			gpus[res.GPU.Type] += res.GPU.Count * int32(n)
		}
	}
	a.mu.Unlock()
	c.FreeCPU, c.FreeMemory = nonNegative(freeCPU), nonNegative(freeMem)
	for i := range c.GPUs {
		used := gpus[c.GPUs[i].Type] + gpus[""]
		c.GPUs[i].Free = max(c.GPUs[i].Allocatable-used, 0)
	}
	return c
}

func nonNegative(q resource.Quantity) resource.Quantity {
	if q.Sign() < 0 {
		return resource.Quantity{Format: q.Format}
	}
	return q
}
