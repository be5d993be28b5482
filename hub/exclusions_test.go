package hub

import (
	"fmt"
	"testing"

	"meridian.dev/meridian/hub/placement"
)

func TestExclusionsAreCappedAndCounted(t *testing.T) {
	var ex []placement.Exclusion
	for i := range 50 {
		reason := "region not allowed"
		if i%5 == 0 {
			reason = "no room"
		}
		ex = append(ex, placement.Exclusion{Cluster: fmt.Sprintf("c%02d", i), Reason: reason})
	}
	got := exclusions(ex)
	if len(got) != maxExcluded+1 || got[0].Cluster != "c00" {
		t.Fatalf("%d entries starting %+v, want %d named and one summary", len(got), got[0], maxExcluded)
	}
	if last := got[maxExcluded]; last.Cluster != "(30 more)" || last.Reason != "24 × region not allowed; 6 × no room" {
		t.Errorf("summary %+v", last)
	}
	if got := exclusions(ex[:3]); len(got) != 3 {
		t.Errorf("a short list should be kept whole: %+v", got)
	}
}
