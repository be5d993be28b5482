package hub_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/hub"
	"meridian.dev/meridian/internal/modelsource"
	"meridian.dev/meridian/internal/testbin"
)

// An InferenceModel whose repository is outside the hub's allowed model
// sources is not placed, and says why; one inside them is placed, with its
// repository passed on to the members.
func TestModelRepositoryOutsideTheAllowedSourcesIsNotPlaced(t *testing.T) {
	cp := startNSControlPlane(t)
	c := cp.Client
	ctx := context.Background()
	allowed, err := modelsource.Parse("--allowed-model-sources", []string{"/srv/models"})
	if err != nil {
		t.Fatal(err)
	}
	runHub(t, cp, hub.Options{ResyncPeriod: time.Hour, AllowedModelSources: allowed})
	for name := range nsRegions {
		testbin.Eventually(t, name+" Ready", 30*time.Second, func() bool { return clusterHealth(t, c, name) == v1.HealthReady })
	}

	bad := nearModel("elsewhere", "eu-west")
	bad.Spec.Model.Repository = "/home/someone/models"
	good := nearModel("allowed", "eu-west")
	good.Spec.Model.Repository = "/srv/models/team-a"
	for _, im := range []*v1.InferenceModel{bad, good} {
		if err := c.Create(ctx, im); err != nil {
			t.Fatal(err)
		}
	}
	testbin.Eventually(t, "the allowed one placed", 30*time.Second, func() bool {
		md := modelDeployment(t, c, "member-eu", "allowed")
		return md != nil && md.Spec.Model.Repository == "/srv/models/team-a"
	})
	got := &v1.InferenceModel{}
	testbin.Eventually(t, "the other refused", 30*time.Second, func() bool {
		return c.Get(ctx, client.ObjectKeyFromObject(bad), got) == nil && meta.FindStatusCondition(got.Status.Conditions, string(v1.ConditionPlaced)) != nil
	})
	cond := meta.FindStatusCondition(got.Status.Conditions, string(v1.ConditionPlaced))
	if cond.Status != "False" || cond.Reason != string(v1.ReasonModelSourceNotAllowed) || !strings.Contains(cond.Message, "--allowed-model-sources") {
		t.Errorf("Placed condition %+v: want False, ModelSourceNotAllowed, saying what to do", cond)
	}
	if len(got.Status.Clusters) != 0 {
		t.Errorf("placed on %+v", got.Status.Clusters)
	}
	for name := range nsRegions {
		if modelDeployment(t, c, name, "elsewhere") != nil {
			t.Errorf("a ModelDeployment with the refused repository reached %s", name)
		}
	}
}
