package testbin

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"meridian.dev/meridian/internal/onnxpb"
)

// FailingVersion is the version of sentiment in RolloutModels that loads
// and reports ready but fails every inference: the version a rollout must
// roll back from.
const FailingVersion = 3

// RolloutModels builds, in t.TempDir(), a model repository for tests of
// progressive rollouts and automatic rollback, and returns its path:
//
//	sentiment/config.yaml    the bundled sentiment config (text: on, so /analyze works)
//	sentiment/1/model.onnx   the bundled version 1: p_pos = sigmoid(score)
//	sentiment/2/model.onnx   the bundled version 2: p_pos = sigmoid(score / 2)
//	sentiment/3/model.onnx   FailingSentimentModel: loads, then fails every run
//	textdir/config.yaml, textdir/1/model.onnx   the bundled textdir (`make deps`)
//
// Every file is a copy of the bundled models (Models), so the repository
// stands alone. A replica serving it starts and turns ready; requests to
// versions 1 and 2 answer 200, while any request that reaches version 3
// (POST /v2/models/sentiment/versions/3/infer, and POST /analyze or an
// unversioned infer, which get the newest version) answers 500 with an
// error naming the model and version. Serving it needs ORTLibrary; a
// missing textdir model fails the test saying to run `make deps` (see
// Need).
func RolloutModels(t testing.TB) string {
	t.Helper()
	src, dst := Models(t), t.TempDir()
	for _, rel := range []string{
		"sentiment/config.yaml",
		"sentiment/1/model.onnx",
		"sentiment/2/model.onnx",
		"textdir/config.yaml",
		"textdir/1/model.onnx",
	} {
		from := filepath.Join(src, rel)
		if _, err := os.Stat(from); err != nil {
			Need(t, fmt.Errorf("%s missing: run `make deps` (the sentiment models are committed; textdir is fetched)", from))
		}
		if err := copyFile(from, filepath.Join(dst, rel)); err != nil {
			t.Fatal(err)
		}
	}
	b, err := FailingSentimentModel()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dst, "sentiment", fmt.Sprint(FailingVersion), "model.onnx")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

func copyFile(from, to string) error {
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

// FailingSentimentModel returns an ONNX model (IR 8, opset 17) with the
// sentiment model's interface — input tokens STRING [batch, tokens],
// outputs score and p_pos FLOAT [batch, 1] — that ONNX Runtime loads
// without complaint but that fails every run:
//
//	shape  = Shape(tokens)                        [batch, tokens], both >= 1
//	bad    = Gather(one_value FLOAT [1], shape)   index out of range: fails here
//	rows   = Gather(shape, [0])                   [batch]
//	score  = Expand(ReduceSum(bad), [rows, 1])    FLOAT [batch, 1]
//	p_pos  = Sigmoid(score)
//
// The failing Gather reads indices from the input's shape, which has
// symbolic dimensions, so no optimisation can fold it away at load time;
// and the shape of every valid input ([0, T] and [N, 0] are rejected by
// the server before a run) indexes past the one-element table. The
// outputs' shapes are those of the real model, so the graph is
// consistent and shape inference has nothing to object to.
func FailingSentimentModel() ([]byte, error) {
	m := &onnxpb.Model{
		IRVersion:    8,
		ProducerName: "meridian internal/testbin",
		ModelVersion: FailingVersion,
		DocString: "A model made to fail, for rollback tests: the sentiment model's inputs and outputs, " +
			"loads and reports ready, and every run fails (Gather indexed by the input's shape, out of range).",
		OpsetImports: []onnxpb.OperatorSetID{{Domain: "", Version: 17}},
		Graph: &onnxpb.Graph{
			Name: "failing_sentiment",
			Inputs: []onnxpb.ValueInfo{
				onnxpb.TensorInfo("tokens", onnxpb.String, onnxpb.Sym("batch"), onnxpb.Sym("tokens")),
			},
			Outputs: []onnxpb.ValueInfo{
				onnxpb.TensorInfo("score", onnxpb.Float, onnxpb.Sym("batch"), onnxpb.Fixed(1)),
				onnxpb.TensorInfo("p_pos", onnxpb.Float, onnxpb.Sym("batch"), onnxpb.Fixed(1)),
			},
			Initializers: []onnxpb.Tensor{
				onnxpb.FloatTensor("one_value", []int64{1}, []float32{0}),
				{Name: "first", Dims: []int64{1}, DataType: onnxpb.Int64, Int64Data: []int64{0}},
				{Name: "one", Dims: []int64{1}, DataType: onnxpb.Int64, Int64Data: []int64{1}},
			},
			Nodes: []onnxpb.Node{
				{Name: "input_shape", OpType: "Shape", Inputs: []string{"tokens"}, Outputs: []string{"shape"}},
				{
					Name: "out_of_range", OpType: "Gather", Inputs: []string{"one_value", "shape"}, Outputs: []string{"bad"},
					DocString: "indices [batch, tokens] into a one-element table: out of range on every valid input",
				},
				{
					Name: "sum", OpType: "ReduceSum", Inputs: []string{"bad"}, Outputs: []string{"bad_sum"},
					Attributes: []onnxpb.Attribute{onnxpb.IntAttr("keepdims", 0)},
				},
				{Name: "rows", OpType: "Gather", Inputs: []string{"shape", "first"}, Outputs: []string{"rows"}},
				{
					Name: "output_shape", OpType: "Concat", Inputs: []string{"rows", "one"}, Outputs: []string{"output_shape"},
					Attributes: []onnxpb.Attribute{onnxpb.IntAttr("axis", 0)},
				},
				{Name: "score", OpType: "Expand", Inputs: []string{"bad_sum", "output_shape"}, Outputs: []string{"score"}},
				{Name: "positive_probability", OpType: "Sigmoid", Inputs: []string{"score"}, Outputs: []string{"p_pos"}},
			},
		},
	}
	return m.Marshal()
}
