package front

import "sync"

// retryBudget bounds the extra load retries and hedges put on the fleet,
// shared by every request through one Front, as Envoy's retry budget
// does: a request may send another copy only while the copies already
// sent again are fewer than Percent of the requests in flight, or than
// MinConcurrency, whichever is more. A copy's slot is held until its
// request ends, so however many clusters fail, the copies sent again
// stay within Percent of the load (plus MinConcurrency).
type retryBudget struct {
	mu       sync.Mutex
	percent  float64
	minimum  int
	requests int // in flight
	retries  int // slots held by the requests in flight
}

// begin counts a request in flight; its end must be told with end.
func (b *retryBudget) begin() {
	b.mu.Lock()
	b.requests++
	b.mu.Unlock()
}

// take asks for a slot for one more copy of a request.
func (b *retryBudget) take() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.retries >= max(b.minimum, int(b.percent*float64(b.requests)/100)) {
		return false
	}
	b.retries++
	return true
}

// end counts a request finished and frees the slots it held.
func (b *retryBudget) end(held int) {
	b.mu.Lock()
	b.requests--
	b.retries -= held
	b.mu.Unlock()
}
