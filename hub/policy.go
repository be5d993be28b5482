package hub

import (
	"context"
	"fmt"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "meridian.dev/meridian/crds/v1alpha1"
)

// allowedEndpoints returns the report's cluster endpoint and models with
// every endpoint the policy refuses emptied (the balancer skips a model
// without one), and why each was refused. A member cannot make the
// balancer send client requests to its metadata service or loopback.
func (h *Hub) allowedEndpoints(rep *v1.ClusterReport) (endpoint string, models []v1.ModelLoad, refused []string) {
	p := h.endpoints
	endpoint = rep.Spec.Endpoint
	if endpoint != "" {
		if err := p.Check(endpoint); err != nil {
			refused = append(refused, "cluster: "+err.Error())
			endpoint = ""
		}
	}
	models = rep.Status.Models
	copied := false
	for i, m := range rep.Status.Models {
		if m.Endpoint == "" {
			continue
		}
		if err := p.Check(m.Endpoint); err != nil {
			if !copied {
				models, copied = append([]v1.ModelLoad(nil), rep.Status.Models...), true
			}
			models[i].Endpoint = ""
			refused = append(refused, fmt.Sprintf("model %s/%s: %v", m.Namespace, m.Name, err))
		}
	}
	return endpoint, models, refused
}

// setEndpointsCondition records on c whether its agent's endpoints were
// all allowed, logging a newly refused one.
func (h *Hub) setEndpointsCondition(c *v1.Cluster, refused []string) {
	if len(refused) == 0 {
		v1.SetCondition(&c.Status.Conditions, v1.ConditionEndpointsAllowed, true, v1.ReasonEndpointsAllowed, "every endpoint the agent reports may be sent requests", c.Generation)
		return
	}
	msg := fmt.Sprintf("the hub dropped endpoints the agent reports, so no request is sent there: %s (fix the agent's --endpoint or the model's Service)", strings.Join(refused, "; "))
	if v1.SetCondition(&c.Status.Conditions, v1.ConditionEndpointsAllowed, false, v1.ReasonEndpointRefused, msg, c.Generation) {
		h.log.Warn("a member reports endpoints that may not be sent requests; dropped them", "cluster", c.Name, "message", msg)
	}
}

// refuseSource records on im that its model repository is not allowed,
// placing nothing and leaving any earlier placement as it was: the
// repository never reaches a member.
func (h *Hub) refuseSource(ctx context.Context, im *v1.InferenceModel, why error) error {
	base := im.DeepCopy()
	msg := why.Error()
	if v1.SetCondition(&im.Status.Conditions, v1.ConditionPlaced, false, v1.ReasonModelSourceNotAllowed, msg, im.Generation) {
		h.log.Warn("not placing an InferenceModel whose model repository is not allowed", "inferencemodel", client.ObjectKeyFromObject(im), "err", why)
	}
	im.Status.ObservedGeneration = im.Generation
	return h.client.Status().Patch(ctx, im, client.MergeFrom(base))
}
