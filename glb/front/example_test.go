package front_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"

	"meridian.dev/meridian/glb/front"
)

// regions is a Router that prefers one region's cluster and falls back to
// the other.
type regions struct{ primary, fallback *url.URL }

func (rs regions) Route(_ *http.Request, model string, _ netip.Addr) []front.Candidate {
	if model != "sentiment" {
		return nil
	}
	return []front.Candidate{
		{Cluster: "eu-west", URL: rs.primary, Tier: 0},
		{Cluster: "us-east", URL: rs.fallback, Tier: 1},
	}
}

func Example() {
	// Two member clusters; the preferred one has no replica ready.
	euWest := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, `{"error":"no replica ready"}`, http.StatusServiceUnavailable)
	}))
	defer euWest.Close()
	usEast := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"model_name":"sentiment","outputs":[]}`)
	}))
	defer usEast.Close()
	primary, _ := url.Parse(euWest.URL)
	fallback, _ := url.Parse(usEast.URL)

	f, err := front.New(regions{primary, fallback}, front.Options{AllowLocalEndpoints: true}) // the regions are on loopback here
	if err != nil {
		panic(err)
	}
	pop := httptest.NewServer(f)
	defer pop.Close()

	resp, err := http.Post(pop.URL+"/analyze", "application/json", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, resp.Header.Get(front.ClusterHeader), string(body))
	// Output: 200 us-east {"model_name":"sentiment","outputs":[]}
}
