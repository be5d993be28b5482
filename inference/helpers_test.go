package inference

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"meridian.dev/meridian/internal/onnxpb"
	"meridian.dev/meridian/internal/testbin"
)

// noRuntime is why ONNX Runtime did not load, kept only under go test
// -short; without -short TestMain stops on it.
var noRuntime error

// The tests run the real ONNX Runtime on the real bundled models; `make
// deps` (run by `make test`) fetches both. Under go test -short without
// them, the tests that need them skip (needRuntime) and the rest run.
func TestMain(m *testing.M) {
	flag.Parse()
	lib, err := testbin.FindORTLibrary()
	if err == nil {
		err = InitRuntime(lib)
	}
	if err != nil {
		if !testing.Short() {
			fmt.Fprintf(os.Stderr, "inference tests need ONNX Runtime: %v\n", err)
			os.Exit(1)
		}
		noRuntime = err
	}
	os.Exit(m.Run())
}

// needRuntime skips the test when ONNX Runtime did not load (only under
// go test -short).
func needRuntime(t *testing.T) {
	t.Helper()
	if noRuntime != nil {
		testbin.Need(t, noRuntime)
	}
}

// bundled is the path of a bundled model's version 1.
func bundled(t *testing.T, name string) string {
	return filepath.Join(testbin.Models(t), name, "1", "model.onnx")
}

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
	needRuntime(t)
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
	return start(t, Options{ModelRepository: testbin.Models(t)})
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
