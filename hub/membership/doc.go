// Package membership is pull-mode membership: a member cluster joins the
// hub with a short-lived bootstrap token, and from then on its agent pulls
// its ModelDeployments from the hub and pushes its ClusterReport there. The
// hub holds no credential for the member, and reaches nothing: a member
// behind NAT (on premises, at the edge) joins as one in a cloud does.
//
// On the hub, member NAME has:
//
//   - the namespace meridian-member-NAME (labelled meridian.dev/member),
//     where the hub writes the member's ModelDeployments, each named
//     <namespace>.<name> after the namespace and name it gets in the
//     member, and reads back their status;
//   - the ClusterReport member.NAME, the member's own report of itself;
//   - the Cluster NAME, whose region, zone, provider and labels the hub's
//     admin set with `meridian member add` and the member cannot change;
//   - two ServiceAccounts in its namespace, of one generation each Add
//     makes anew: "bootstrap-<gen>", which may only ask for a token of
//     "agent-<gen>", and "agent-<gen>", which may read its
//     ModelDeployments, write their status, write its ClusterReport (by
//     name: no other) and renew its own token. Nothing else: the API
//     server's RBAC authorizer refuses a member everything of another.
//
// Add creates all of it and returns a Bundle holding a bootstrap token;
// Exchange turns that into the agent's own credential, which Renew keeps
// fresh; Revoke deletes the ServiceAccounts, so every token of the member
// is refused at once (bound tokens die with their ServiceAccount), and marks
// its Cluster Unreachable so its models are placed elsewhere.
//
// Provider is the hub's side: a multicluster-runtime provider that engages
// each member namespace as a cluster, so the hub places, watches and
// probes pull members through the same code as the members it reaches
// with a kubeconfig (push mode).
package membership
