// Package otlptest runs a real OTLP receiver for tests: the OpenTelemetry
// Collector's OTLP receiver component that `make otelcol` builds from
// tools/otelcol into .cache/bin, and reads back the spans it received.
package otlptest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"meridian.dev/meridian/internal/testbin"
)

// Version is the Collector release tools/otelcol pins (mk/tracing.mk).
const Version = "v0.165.0"

// Binary returns the path of the receiver, .cache/bin/otelcol-<Version>
// of the checkout around the working directory; the error says to run
// `make otelcol`.
func Binary() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.HasPrefix(string(b), "module meridian.dev/meridian\n") {
			bin := filepath.Join(dir, ".cache", "bin", "otelcol-"+Version)
			if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
				return bin, nil
			}
			return "", fmt.Errorf("%s missing: run `make otelcol` (builds the OTLP receiver of tools/otelcol into .cache/bin)", bin)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("the OTLP receiver: not inside a Meridian checkout")
		}
		dir = parent
	}
}

// Collector is a running receiver.
type Collector struct {
	// HTTP is the OTLP/HTTP base URL (http://127.0.0.1:port) and GRPC the
	// OTLP/gRPC host:port.
	HTTP, GRPC string
	out        string
	mu         sync.Mutex
}

// Start runs the receiver on loopback ports until the test ends. Without
// the binary it fails the test naming `make otelcol` (skips it under
// go test -short).
func Start(t testing.TB) *Collector {
	t.Helper()
	bin, err := Binary()
	testbin.Need(t, err)
	httpAddr, grpcAddr := freeAddr(t), freeAddr(t)
	c := &Collector{HTTP: "http://" + httpAddr, GRPC: grpcAddr, out: filepath.Join(t.TempDir(), "spans.jsonl")}
	stderr := &testbin.Buffer{}
	cmd := exec.Command(bin, "--http", httpAddr, "--grpc", grpcAddr, "--out", c.out)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	testbin.Eventually(t, "the OTLP receiver to listen", 30*time.Second, func() (bool, string) {
		select {
		case <-exited:
			t.Fatalf("the OTLP receiver exited: %s", stderr.String())
		default:
		}
		for _, a := range []string{httpAddr, grpcAddr} {
			conn, err := net.DialTimeout("tcp", a, time.Second)
			if err != nil {
				return false, err.Error()
			}
			_ = conn.Close()
		}
		return strings.Contains(stderr.String(), "ready"), stderr.String()
	})
	return c
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().String()
}

// Span is one received span, flattened.
type Span struct {
	Service      string // its resource's service.name
	TraceID      string // hex
	SpanID       string
	ParentSpanID string // "" for a root
	Name         string
	Kind         int // OTLP's: 1 internal, 2 server, 3 client
	Start, End   time.Time
	Attrs        map[string]any // string, int64, float64 or bool
	Error        bool           // status code ERROR
}

// Spans returns every span received so far.
func (c *Collector) Spans() ([]Span, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, err := os.ReadFile(c.out)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var spans []Span
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 || line[len(line)-1] != '}' {
			continue
		}
		var doc otlpJSON
		if err := json.Unmarshal(line, &doc); err != nil {
			continue // a line still being written
		}
		for _, rs := range doc.ResourceSpans {
			service, _ := attrs(rs.Resource.Attributes)["service.name"].(string)
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					spans = append(spans, Span{
						Service: service, TraceID: s.TraceID, SpanID: s.SpanID, ParentSpanID: s.ParentSpanID,
						Name: s.Name, Kind: s.Kind, Start: nanos(s.Start), End: nanos(s.End),
						Attrs: attrs(s.Attributes), Error: s.Status.Code == 2,
					})
				}
			}
		}
	}
	return spans, sc.Err()
}

// otlpJSON is the part of OTLP's JSON encoding of traces read here.
type otlpJSON struct {
	ResourceSpans []struct {
		Resource struct {
			Attributes []keyValue `json:"attributes"`
		} `json:"resource"`
		ScopeSpans []struct {
			Spans []struct {
				TraceID      string     `json:"traceId"`
				SpanID       string     `json:"spanId"`
				ParentSpanID string     `json:"parentSpanId"`
				Name         string     `json:"name"`
				Kind         int        `json:"kind"`
				Start        string     `json:"startTimeUnixNano"`
				End          string     `json:"endTimeUnixNano"`
				Attributes   []keyValue `json:"attributes"`
				Status       struct {
					Code int `json:"code"`
				} `json:"status"`
			} `json:"spans"`
		} `json:"scopeSpans"`
	} `json:"resourceSpans"`
}

type keyValue struct {
	Key   string `json:"key"`
	Value struct {
		String *string  `json:"stringValue"`
		Int    *string  `json:"intValue"` // int64 as a JSON string
		Double *float64 `json:"doubleValue"`
		Bool   *bool    `json:"boolValue"`
	} `json:"value"`
}

func attrs(kvs []keyValue) map[string]any {
	m := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		v := kv.Value
		switch {
		case v.String != nil:
			m[kv.Key] = *v.String
		case v.Int != nil:
			n, _ := strconv.ParseInt(*v.Int, 10, 64)
			m[kv.Key] = n
		case v.Double != nil:
			m[kv.Key] = *v.Double
		case v.Bool != nil:
			m[kv.Key] = *v.Bool
		}
	}
	return m
}

func nanos(s string) time.Time {
	n, _ := strconv.ParseInt(s, 10, 64)
	return time.Unix(0, n)
}
