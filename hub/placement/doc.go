// Package placement decides where the hub runs each model: on which member
// clusters and with how many replicas in each. It is pure, deterministic Go
// with no Kubernetes types; the hub turns InferenceModels and Clusters into
// a Model and Clusters, calls Place (one model) or PlaceAll (the whole
// fleet, each model seeing the capacity the models before it left), and
// writes the Result back into the InferenceModel's status. The same input
// gives the same output, whatever the order of the clusters and models.
//
// A placement has four steps.
//
// Filter. A cluster is eligible unless it is unhealthy, its region is not
// in AllowedRegions (data residency: a hard rule, never relaxed for any
// other constraint), its labels do not match the Selector, it has none of
// the requested GPU product (neither free nor addable by the cluster
// autoscaler), or it has no room for max(MinPerCluster, 1) replicas. A
// replica on a free GPU needs free CPU and memory beside it; one on an
// addable GPU comes with the node the autoscaler adds, CPU and memory
// included. Every excluded cluster is listed with its reason.
//
// Score. Each eligible cluster gets three scores from 0 to 100:
//
//	proximity = 100 × (1 − (d − dmin) / max(dmax − dmin, ProximityRangeKm))
//	cost      = 100 × cmin / c
//	capacity  = 100 × fit / fitmax
//
// where d is the cluster's great-circle distance in km to the model's
// demand regions, averaged with each region's requests/s as weight (a
// region's location is the mean of its clusters' locations), c its cost per
// GPU-hour and fit the replicas of the model that fit in it; min and max
// are taken over every cluster the model may run on, with room or not, so
// that capacity coming and going elsewhere does not shift the scale.
// Without demand, proximity is 100 everywhere. The score is the weighted
// mean (Weights) of the three, plus StabilityBonus (10 points) when the
// cluster already held the model.
//
// Choose. The best cluster of each of the MinRegions best regions (regions
// ranked by their best cluster) is chosen first, for spread; then more
// clusters in score order while the chosen ones have no room for the
// baseline, up to MaxClusters. Ties are broken by cluster name.
//
// Divide. The baseline (raised so that every chosen cluster gets
// MinPerCluster, capped by MaxTotal and the clusters' room) is shared so
// that each cluster keeps what it held before when that still fits; the
// rest is added in shares weighted by each cluster's remaining room
// (capped by MaxPerCluster), like Karmada's AvailableReplicas division, or
// taken away in shares weighted by what each holds above MinPerCluster.
//
// Stability. Beside the bonus, PlaceAll lets every model's previous
// replicas hold their room until that model is placed again: replicas that
// must move (off a failed or shrunk cluster) take only room nobody holds,
// and do not push other models' replicas out in turn. Re-placing the same
// input moves nothing; losing a cluster moves the replicas it held; a
// cluster shrinking by 10% moves about the replicas that no longer fit.
//
// When constraints cannot all be met — MinRegions above the number of
// regions with an eligible cluster, MinPerCluster above MaxPerCluster or
// MinPerCluster × MinRegions above MaxTotal, an unknown region in
// AllowedRegions, too little room — the Result is not Satisfied, its
// Problem says what and why, and it still holds the best placement that
// keeps the hard rules: residency, health, selector, GPU product,
// capacity, MaxPerCluster, MaxClusters and MaxTotal.
package placement
