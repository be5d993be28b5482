package inference

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"meridian.dev/meridian/internal/onnxpb"
)

// The tests run the real ONNX Runtime on the real bundled models; `make
// deps` (run by `make test`) fetches both.
func TestMain(m *testing.M) {
	lib, err := FindLibrary(filepath.Join("..", ".cache", "onnxruntime", libraryName))
	if err == nil {
		err = InitRuntime(lib)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "inference tests need ONNX Runtime: %v\nrun `make deps` from the repository root\n", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// bundled is the path of a bundled model's version 1.
func bundled(name string) string { return filepath.Join("..", "models", name, "1", "model.onnx") }

// repoModel is one model of a test repository: its config.yaml and, per
// version, the model file's bytes.
type repoModel struct {
	name     string
	config   string
	versions map[int64][]byte
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run `make deps`)", err)
	}
	return b
}

// newRepo writes a model repository into a temporary directory.
func newRepo(t *testing.T, models ...repoModel) string {
	t.Helper()
	root := t.TempDir()
	for _, m := range models {
		dir := filepath.Join(root, m.name)
		for v, b := range m.versions {
			vdir := filepath.Join(dir, fmt.Sprint(v))
			if err := os.MkdirAll(vdir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(vdir, "model.onnx"), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if m.config != "" {
			if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(m.config), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

// scaleModel builds y = x * k: input x FP32 [N,1], output y FP32 [N,1].
func scaleModel(t *testing.T, k float32) []byte {
	t.Helper()
	m := onnxpb.Model{
		IRVersion:    8,
		OpsetImports: []onnxpb.OperatorSetID{{Version: 17}},
		Graph: &onnxpb.Graph{
			Name:         "scale",
			Nodes:        []onnxpb.Node{{OpType: "Mul", Inputs: []string{"x", "k"}, Outputs: []string{"y"}}},
			Initializers: []onnxpb.Tensor{onnxpb.FloatTensor("k", []int64{1}, []float32{k})},
			Inputs:       []onnxpb.ValueInfo{onnxpb.TensorInfo("x", onnxpb.Float, onnxpb.Sym("N"), onnxpb.Fixed(1))},
			Outputs:      []onnxpb.ValueInfo{onnxpb.TensorInfo("y", onnxpb.Float, onnxpb.Sym("N"), onnxpb.Fixed(1))},
		},
	}
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type testServer struct {
	*Server
	url string
	reg *prometheus.Registry
}

// start serves a repository on a real loopback port until the test ends.
func start(t *testing.T, opts Options) *testServer {
	t.Helper()
	opts.Registry = prometheus.NewRegistry()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		srv.Close()
	})
	return &testServer{Server: srv, url: hs.URL, reg: opts.Registry}
}

// startBundled serves the bundled models with the cache off.
func startBundled(t *testing.T) *testServer {
	return start(t, Options{ModelRepository: filepath.Join("..", "models")})
}

// post sends a body and returns the status and the body read back.
func post(t *testing.T, url, body string, header ...string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metric returns the value of a counter or gauge, or the sample count of a
// histogram, whose labels include all of the given ones; 0 if absent.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	count, _ := histogram(t, reg, name, labels)
	return count
}

// histogram returns a histogram's sample count and sum (or a counter's or
// gauge's value as count).
func histogram(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (float64, float64) {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var count, sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if !hasLabels(m, labels) {
				continue
			}
			switch {
			case m.Histogram != nil:
				count += float64(m.Histogram.GetSampleCount())
				sum += m.Histogram.GetSampleSum()
			case m.Counter != nil:
				count += m.Counter.GetValue()
			case m.Gauge != nil:
				count += m.Gauge.GetValue()
			}
		}
	}
	return count, sum
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	found := 0
	for _, l := range m.GetLabel() {
		if v, ok := want[l.GetName()]; ok && v == l.GetValue() {
			found++
		}
	}
	return found == len(want)
}

// eventually polls cond for up to five seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// binaryBody builds a binary-extension request body: the JSON header
// followed by the raw tensor bytes.
func binaryBody(header string, blobs ...[]byte) (string, string) {
	var b bytes.Buffer
	b.WriteString(header)
	for _, blob := range blobs {
		b.Write(blob)
	}
	return b.String(), fmt.Sprint(len(header))
}
