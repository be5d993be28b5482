package placement

// StabilityBonus is the number of points, on the 0 to 100 score scale,
// added to a cluster that already holds replicas of the model in
// `previous`. A cluster that is not yet used must beat a used one by more
// than this to take its place, so small changes in capacity, cost or demand
// do not move replicas back and forth (hysteresis).
const StabilityBonus = 10.0

// ProximityRangeKm is the smallest distance, in km, between the nearest
// and the farthest candidate that spans the whole proximity scale (100 to
// 0). Candidates closer together than this to the demand score on a
// gentler slope, so a few hundred km make little difference.
const ProximityRangeKm = 2000.0

// Resources is an amount of capacity in a cluster.
type Resources struct {
	// MilliCPU is CPU in thousandths of a core.
	MilliCPU int64
	// MemoryBytes is memory in bytes.
	MemoryBytes int64
	// GPUs counts whole GPUs by product (the node label
	// nvidia.com/gpu.product, e.g. "NVIDIA-H100-80GB-HBM3").
	GPUs map[string]int
}

// Cluster is one member cluster as placement sees it. The hub fills it
// from the Cluster object and the member's last report.
type Cluster struct {
	// Name identifies the cluster; names are unique in a fleet. Ties
	// between equal scores are broken by name.
	Name string
	// Region the cluster is in, e.g. "eu-west".
	Region string
	// Labels are matched against a model's Selector.
	Labels map[string]string
	// Lat and Lon are the cluster's location in decimal degrees; they mean
	// something only when HasLocation is true.
	Lat, Lon float64
	// HasLocation says whether Lat and Lon are known. A cluster without a
	// location is placed at its region's location (the mean of the
	// region's other clusters), or scores 0 on proximity when the region
	// has none.
	HasLocation bool
	// Healthy clusters may receive replicas; unhealthy ones never do.
	Healthy bool
	// CostPerGPUHour is the price of one GPU for one hour, in any currency
	// as long as every cluster uses the same one. It ranks clusters by cost
	// for every model, GPU or not.
	CostPerGPUHour float64
	// Free is what the cluster can give to the models being placed: its
	// allocatable capacity minus what everything else requests. It must
	// not count the replicas that `previous` describes (the hub adds them
	// back), or keeping them would look impossible.
	Free Resources
	// Addable counts GPUs by product that the cluster autoscaler can still
	// add (node-group maxima minus current size). A replica placed on an
	// addable GPU needs no free CPU or memory: the node the autoscaler adds
	// for it brings them. Replicas go on free GPUs first.
	Addable map[string]int
}

// Request is what one replica of a model requests.
type Request struct {
	// MilliCPU is CPU in thousandths of a core; 0 asks for none.
	MilliCPU int64
	// MemoryBytes is memory in bytes; 0 asks for none.
	MemoryBytes int64
	// GPUs is the number of whole GPUs; 0 makes a CPU-only replica.
	GPUs int
	// GPUType is the GPU product every GPU of the replica must be; empty
	// accepts any product (each replica's GPUs are still of one product).
	// It is ignored when GPUs is 0.
	GPUType string
}

// Weights weigh the three score criteria against each other. Each is
// usually 0 to 100; only their ratios matter, 0 ignores a criterion, and
// with all three 0 every eligible cluster scores the same (ties are broken
// by the stability bonus, then by name).
type Weights struct {
	// Proximity favours clusters near the model's demand.
	Proximity int32
	// Cost favours clusters with a lower CostPerGPUHour.
	Cost int32
	// Capacity favours clusters where more replicas fit.
	Capacity int32
}

// Demand is the request rate from users in one region.
type Demand struct {
	// Region the users are in. Its location is the mean location of the
	// fleet's clusters in that region; demand from a region no located
	// cluster is in is ignored.
	Region string
	// RequestsPerSecond from that region; values <= 0 are ignored.
	RequestsPerSecond float64
}

// Model is one model to place, with its policy.
type Model struct {
	// Key identifies the model (the hub uses "namespace/name"); PlaceAll
	// returns results by Key and reads `previous` by it.
	Key string
	// PerReplica is what each replica requests.
	PerReplica Request
	// MinPerCluster is the fewest replicas a chosen cluster receives (0
	// allows an assignment with no replicas, for scale to zero). A cluster
	// must have room for max(MinPerCluster, 1) replicas to be eligible.
	MinPerCluster int32
	// MaxPerCluster is the most replicas a cluster receives; 0 means no
	// cap beyond the cluster's room.
	MaxPerCluster int32
	// Replicas is the baseline total to place across the fleet; 0 means
	// MinPerCluster × MinRegions. The total is raised when the chosen
	// clusters' MinPerCluster add up to more, and capped by MaxTotal.
	Replicas int32
	// MaxTotal caps the replicas placed across the fleet; 0 means no cap.
	MaxTotal int32
	// AllowedRegions is the data-residency rule: when not empty, replicas
	// are only ever placed in these regions. It is never relaxed.
	AllowedRegions []string
	// Selector limits placement to clusters whose labels include every
	// key and value in it (matchLabels); empty matches every cluster.
	Selector map[string]string
	// MinRegions is how many distinct regions must run the model; 0 means 1.
	MinRegions int32
	// MaxClusters caps how many clusters run the model; 0 means no cap.
	MaxClusters int32
	// Weights weigh the score criteria.
	Weights Weights
	// Demand is where the model's users are. With none, proximity scores
	// every cluster the same.
	Demand []Demand
}

// Assignment is the share of a model placed on one cluster.
type Assignment struct {
	// Cluster name.
	Cluster string
	// Region of the cluster.
	Region string
	// Replicas placed there.
	Replicas int32
	// Score is the cluster's score for this model, 0 to 100 plus the
	// StabilityBonus when it already held replicas.
	Score float64
	// Reason says why the cluster was chosen and how it scored.
	Reason string
}

// Exclusion is a cluster the filter kept the model off, and why.
type Exclusion struct {
	// Cluster name.
	Cluster string
	// Reason it was left out, e.g. "region eu-west not allowed".
	Reason string
}

// Result is the placement of one model.
type Result struct {
	// Assignments are the chosen clusters, sorted by cluster name.
	Assignments []Assignment
	// Excluded are the clusters the filter left out, sorted by cluster
	// name, each with its reason. A cluster in neither list passed the
	// filter but was not needed.
	Excluded []Exclusion
	// Eligible is the number of clusters that passed the filter.
	Eligible int
	// Replicas is the sum of the Assignments' replicas.
	Replicas int32
	// Satisfied is true when every constraint of the model is met.
	Satisfied bool
	// Problem, when not Satisfied, says what cannot be met and why, e.g.
	// "needs 3 regions, only 2 allowed regions have a healthy cluster with
	// room: eu-west, us-east". Several problems are joined with "; ".
	Problem string
}
