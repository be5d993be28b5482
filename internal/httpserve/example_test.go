package httpserve_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"meridian.dev/meridian/internal/httpserve"
)

// A handler reads its body under the server's body deadline and answers
// a late one 408; the server carries every other limit.
func ExampleNew() {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		switch {
		case errors.Is(err, httpserve.ErrBodyTimeout):
			http.Error(w, "the body did not arrive in time", http.StatusRequestTimeout)
			return
		case err != nil:
			return // too large (MaxBytesReader answered) or the client left
		}
		fmt.Fprintf(w, "%d bytes", len(body))
	})
	srv, err := httpserve.New(handler, httpserve.Options{
		Name:         "example",
		WriteTimeout: time.Minute, // above the slowest answer
		Registerer:   prometheus.NewRegistry(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() { done <- httpserve.Serve(ctx, srv, ln, 5*time.Second) }()

	resp, err := http.Post("http://"+ln.Addr().String(), "text/plain", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	answer, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	fmt.Println(resp.Status, string(answer))
	stop()
	fmt.Println("drained:", <-done)
	// Output:
	// 200 OK 0 bytes
	// drained: <nil>
}
