package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ConditionType names a condition in a Meridian object's status.
type ConditionType string

// Condition types. ModelDeployment: Ready, Progressing, Degraded and, when
// it adopts objects, AdoptionHealthy. InferenceModel: Placed and Ready.
// Cluster: Ready, IdentityAgreed and EndpointsAllowed. ClusterReport: HubConnected (pull
// membership).
const (
	// ConditionReady: a ModelDeployment has a ready replica; an
	// InferenceModel has every placed replica ready; a Cluster's agent
	// reports a fresh heartbeat.
	ConditionReady ConditionType = "Ready"
	// ConditionProgressing: a ModelDeployment's replicas are changing.
	ConditionProgressing ConditionType = "Progressing"
	// ConditionDegraded: something keeps a ModelDeployment from serving as
	// asked (a failing replica, pending replicas, a refused adoption).
	ConditionDegraded ConditionType = "Degraded"
	// ConditionAdoptionHealthy: the objects a ModelDeployment adopted can
	// work as written.
	ConditionAdoptionHealthy ConditionType = "AdoptionHealthy"
	// ConditionPlaced: the hub found a placement satisfying the
	// InferenceModel's policy.
	ConditionPlaced ConditionType = "Placed"
	// ConditionIdentityAgreed: a Cluster's agent reports the region and
	// zone the hub has for it. The hub's own are the ones used; a member
	// cannot move itself to another region (and past residency rules).
	ConditionIdentityAgreed ConditionType = "IdentityAgreed"
	// ConditionEndpointsAllowed: every endpoint a Cluster's agent reports
	// (the cluster's and its models') may be sent requests: http or https,
	// and not a link-local, cloud metadata, unspecified or multicast
	// address, nor loopback unless the hub runs a fleet on one machine.
	// The hub drops the endpoints that may not, so the balancer never
	// sends there.
	ConditionEndpointsAllowed ConditionType = "EndpointsAllowed"
	// ConditionHubConnected: a member in pull mode reaches the hub with a
	// valid credential and its last sync succeeded. Replicas keep serving
	// when it is False.
	ConditionHubConnected ConditionType = "HubConnected"
)

// ConditionReason says, in CamelCase, why a condition has its status.
// Reasons other packages define (the autoscaler's decisions, adoption
// diagnoses) are converted to it.
type ConditionReason string

// Condition reasons.
const (
	ReasonReplicasReady    ConditionReason = "ReplicasReady"
	ReasonNoReadyReplica   ConditionReason = "NoReadyReplica"
	ReasonReplicasStarting ConditionReason = "ReplicasStarting"
	ReasonScaling          ConditionReason = "Scaling"
	ReasonScaledToZero     ConditionReason = "ScaledToZero"
	ReasonReplicaFailing   ConditionReason = "ReplicaFailing"
	ReasonReplicasPending  ConditionReason = "ReplicasPending"
	ReasonAdoptionRefused  ConditionReason = "AdoptionRefused"
	ReasonApplyFailed      ConditionReason = "ApplyFailed"
	ReasonNameTaken        ConditionReason = "NameTaken"
	ReasonAsExpected       ConditionReason = "AsExpected"

	ReasonPlaced        ConditionReason = "Placed"
	ReasonUnsatisfiable ConditionReason = "Unsatisfiable"
	ReasonWaiting       ConditionReason = "Waiting"
	ReasonAllReady      ConditionReason = "AllReady"
	// ReasonModelSourceNotAllowed: spec.model.repository is not under the
	// hub's --allowed-model-sources; nothing is placed or changed.
	ReasonModelSourceNotAllowed ConditionReason = "ModelSourceNotAllowed"

	ReasonReportFresh          ConditionReason = "ReportFresh"
	ReasonAPIServerUnreachable ConditionReason = "APIServerUnreachable"
	ReasonNoReport             ConditionReason = "NoReport"
	ReasonHeartbeatStale       ConditionReason = "HeartbeatStale"
	ReasonSaturated            ConditionReason = "Saturated"
	ReasonRevoked              ConditionReason = "Revoked"

	ReasonIdentityMatches  ConditionReason = "IdentityMatches"
	ReasonIdentityConflict ConditionReason = "IdentityConflict"

	ReasonEndpointsAllowed ConditionReason = "EndpointsAllowed"
	ReasonEndpointRefused  ConditionReason = "EndpointRefused"

	ReasonSynced             ConditionReason = "Synced"
	ReasonCredentialRejected ConditionReason = "CredentialRejected"
	ReasonHubUnreachable     ConditionReason = "HubUnreachable"
	ReasonNotJoined          ConditionReason = "NotJoined"
)

// SetCondition sets condition t in conds to True when ok, else False,
// with reason and message, observed at generation gen. Its transition time
// changes only when its status does. It reports whether anything changed.
func SetCondition(conds *[]metav1.Condition, t ConditionType, ok bool, reason ConditionReason, msg string, gen int64) bool {
	status := metav1.ConditionFalse
	if ok {
		status = metav1.ConditionTrue
	}
	return meta.SetStatusCondition(conds, metav1.Condition{Type: string(t), Status: status, Reason: string(reason), Message: msg, ObservedGeneration: gen})
}

// IsConditionTrue reports whether condition t is in conds and True.
func IsConditionTrue(conds []metav1.Condition, t ConditionType) bool {
	return meta.IsStatusConditionTrue(conds, string(t))
}
