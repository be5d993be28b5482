package process

import (
	"cmp"
	crand "crypto/rand"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"meridian.dev/meridian/inference"
)

// HeaderModelVersion is the answer header naming the version that
// answered.
const HeaderModelVersion = inference.HeaderModelVersion

// HeaderPrediction is the answer header naming the predicted label.
const HeaderPrediction = inference.HeaderPrediction

// ReplicaSet is what a Front sends requests to: a Supervisor.
type ReplicaSet interface {
	Replicas() []Replica
}

// Pool is the replicas of one model version.
type Pool struct {
	// Version they serve; 0 means every version of the repository (the
	// request's path, or the newest, decides).
	Version int64
	// Weight is the pool's share of requests that name no version, in
	// percent of the routes' total.
	Weight int32
	// Replicas of the version.
	Replicas ReplicaSet
}

// Affinity keeps each user on one version.
type Affinity struct {
	// Mode is None, ClientIP, Header or Cookie (v1alpha1.SessionAffinity).
	Mode string
	// Key is the header or cookie name.
	Key string
}

// Routes are a front's pools and how it chooses between them.
type Routes struct {
	Pools    []Pool
	Affinity Affinity
	// tries[i] is the order pools are tried in when Pools[i] is chosen:
	// it first, then the others by weight. Made once, by SetRoutes.
	tries [][]Pool
}

// SetRoutes replaces the pools and the split at once: requests already
// routed finish where they went.
func (f *Front) SetRoutes(r Routes) {
	r.Pools = slices.Clone(r.Pools)
	// Newest first: the buckets of the hash go to the newest version
	// first, so a user on it stays there while its weight grows.
	slices.SortFunc(r.Pools, func(a, b Pool) int { return int(b.Version - a.Version) })
	r.tries = make([][]Pool, len(r.Pools))
	for i := range r.Pools {
		rest := slices.Delete(slices.Clone(r.Pools), i, i+1)
		slices.SortStableFunc(rest, func(a, b Pool) int { return int(b.Weight - a.Weight) })
		r.tries[i] = append([]Pool{r.Pools[i]}, rest...)
	}
	f.routes.Store(&r)
}

// choose returns the pools to try for r, the chosen one first, then the
// others by weight as fallbacks (when r names no version: named false).
func (rt *Routes) choose(w http.ResponseWriter, r *http.Request, v int64, named bool) ([]Pool, error) {
	if rt == nil || len(rt.Pools) == 0 {
		return []Pool{{}}, nil // no replicas yet: pick finds none, "no ready replica"
	}
	if named {
		for _, p := range rt.Pools {
			if p.Version == v || p.Version == 0 {
				return []Pool{p}, nil
			}
		}
		return nil, fmt.Errorf("version %d is not served in this cluster (serving %s)", v, rt.versions())
	}
	if len(rt.Pools) == 1 {
		return rt.tries[0], nil
	}
	var total int32
	for _, p := range rt.Pools {
		total += p.Weight
	}
	chosen := 0
	if total > 0 {
		bucket := rt.bucket(w, r, total)
		for i, p := range rt.Pools {
			if bucket < p.Weight {
				chosen = i
				break
			}
			bucket -= p.Weight
		}
	}
	return rt.tries[chosen], nil
}

// bucket places r in [0, total): by the hash of its user's key under
// session affinity, else at random.
func (rt *Routes) bucket(w http.ResponseWriter, r *http.Request, total int32) int32 {
	key := ""
	switch rt.Affinity.Mode {
	case "ClientIP":
		key = clientIP(r)
	case "Header":
		key = r.Header.Get(cmp.Or(rt.Affinity.Key, "Meridian-Session"))
	case "Cookie":
		name := cmp.Or(rt.Affinity.Key, "meridian-session")
		if c, err := r.Cookie(name); err == nil && c.Value != "" {
			key = c.Value
		} else {
			key = newSessionID()
			http.SetCookie(w, &http.Cookie{Name: name, Value: key, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
		}
	}
	if key == "" {
		return rand.Int32N(total) //nolint:gosec // a split, not a secret
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	// Buckets of 100 whatever the total, so a user keeps the bucket when
	// weights change; totals other than 100 scale it.
	return int32(h.Sum32()%100) * total / 100
}

// clientIP is the first X-Forwarded-For address (the balancer's front
// adds it), else the connection's.
func clientIP(r *http.Request) string {
	if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
		first, _, _ := strings.Cut(xff, ",")
		return strings.TrimSpace(first)
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func newSessionID() string {
	b := make([]byte, 12)
	_, _ = crand.Read(b)
	return hex.EncodeToString(b)
}

// pathVersion is the version in /v2/models/{model}/versions/{v}/...
func pathVersion(path string) (int64, bool) {
	rest, ok := strings.CutPrefix(path, "/v2/models/")
	if !ok {
		return 0, false
	}
	if _, rest, ok = strings.Cut(rest, "/versions/"); !ok {
		return 0, false
	}
	v, _, _ := strings.Cut(rest, "/")
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}

func (rt *Routes) versions() string {
	var out []string
	for _, p := range rt.Pools {
		out = append(out, strconv.FormatInt(p.Version, 10))
	}
	return strings.Join(out, ", ")
}
