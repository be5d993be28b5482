package loadgen_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"meridian.dev/meridian/internal/loadgen"
)

// Offer 100 requests per second for 100ms to a server, with at most 64 in
// flight, and read what was offered and what came of it.
func ExampleRun() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Cluster", "us-east")
	}))
	defer srv.Close()
	rep, err := loadgen.Run(context.Background(), loadgen.Options{
		Phases:      loadgen.Constant(100, 100*time.Millisecond),
		MaxInFlight: 64,
		MaxLateness: time.Second, // generous: examples run on busy machines
	}, func(ctx context.Context) (string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		if err != nil {
			return "", err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("status %d", resp.StatusCode)
		}
		return resp.Header.Get("X-Cluster"), nil
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("offered", rep.Offered, "sent", rep.Sent, "ok", rep.OK, "dropped", rep.Dropped, "from us-east", rep.Labels["us-east"])
	fmt.Println("load", rep.Verdict())
	// Output:
	// offered 10 sent 10 ok 10 dropped 0 from us-east 10
	// load offered
}
