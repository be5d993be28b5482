// Package metricsreg is Meridian's one policy for registering Prometheus
// collectors: every component registers all of its collectors or none,
// and returns the error to its caller, which fails to start — a process
// that would serve without some of its documented metrics says so at
// once instead of exporting less than its docs promise.
package metricsreg

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers every collector on reg, or none of them: on the
// first failure it unregisters those already registered and returns an
// error naming the component. A nil reg registers nothing.
func Register(reg prometheus.Registerer, component string, cs ...prometheus.Collector) error {
	if reg == nil {
		return nil
	}
	for i, c := range cs {
		err := reg.Register(c)
		if err == nil {
			continue
		}
		for _, done := range cs[:i] {
			reg.Unregister(done)
		}
		var already prometheus.AlreadyRegisteredError
		if errors.As(err, &already) {
			return fmt.Errorf("%s metrics are already registered on this registry; give each %s its own: %w", component, component, err)
		}
		return fmt.Errorf("registering %s metrics: %w", component, err)
	}
	return nil
}
