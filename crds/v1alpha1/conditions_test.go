package v1alpha1

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestSetCondition(t *testing.T) {
	var conds []metav1.Condition
	if !SetCondition(&conds, ConditionReady, true, ReasonReplicasReady, "1 of 1 replicas ready", 3) {
		t.Fatal("a new condition is a change")
	}
	if !IsConditionTrue(conds, ConditionReady) || conds[0].Reason != "ReplicasReady" || conds[0].ObservedGeneration != 3 {
		t.Fatalf("%+v", conds)
	}
	since := conds[0].LastTransitionTime
	if SetCondition(&conds, ConditionReady, true, ReasonReplicasReady, "1 of 1 replicas ready", 3) {
		t.Error("the same condition again is no change")
	}
	SetCondition(&conds, ConditionReady, false, ReasonNoReadyReplica, "0 of 1 replicas ready", 4)
	if IsConditionTrue(conds, ConditionReady) || conds[0].Status != metav1.ConditionFalse || conds[0].Reason != "NoReadyReplica" {
		t.Errorf("%+v", conds)
	}
	if conds[0].LastTransitionTime.Before(&since) {
		t.Error("the transition time went back")
	}
	if IsConditionTrue(conds, ConditionPlaced) {
		t.Error("a missing condition is not true")
	}
}
