package geo_test

import (
	"fmt"

	"meridian.dev/meridian/glb/geo"
)

// The great-circle distance between Ashburn, Virginia and Dublin.
func ExampleHaversine() {
	fmt.Printf("%.0f km\n", geo.Haversine(39.04, -77.49, 53.35, -6.26))
	// Output: 5462 km
}
