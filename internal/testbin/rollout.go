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

// DriftingVersion is the version of sentiment in RolloutModels that loads,
// reports ready and answers every request, but predicts the same thing
// whatever the text (score -3, p_pos sigmoid(-3): /analyze answers
// NEGATIVE): the version a rollout must notice by what it answers, since
// it raises no error.
const DriftingVersion = 4

// DriftingScore is the score DriftingSentimentModel gives every row; its
// p_pos is sigmoid(DriftingScore).
const DriftingScore = -3

// RolloutModels builds, in t.TempDir(), a model repository for tests of
// progressive rollouts and automatic rollback, and returns its path:
//
//	sentiment/config.yaml    the bundled sentiment config (text: on, so /analyze works)
//	sentiment/1/model.onnx   the bundled version 1: p_pos = sigmoid(score)
//	sentiment/2/model.onnx   the bundled version 2: p_pos = sigmoid(score / 2)
//	sentiment/3/model.onnx   FailingSentimentModel: loads, then fails every run
//	sentiment/4/model.onnx   DriftingSentimentModel: answers every run, always score -3
//	textdir/config.yaml, textdir/1/model.onnx   the bundled textdir (`make deps`)
//
// Every file is a copy of the bundled models (Models), so the repository
// stands alone but for versions 3 and 4, built here with onnxpb. A
// replica serving it starts and turns ready with all four versions;
// requests to versions 1 and 2 answer 200 with their own calibrations;
// any request that reaches version 3 (POST
// /v2/models/sentiment/versions/3/infer) answers 500 with an error naming
// the model and version; and requests to version 4 answer 200 with score
// -3 and p_pos sigmoid(-3) for every row, so POST /analyze answers
// NEGATIVE even for "I love this", which versions 1 and 2 call POSITIVE.
// Requests that name no version (an unversioned infer, POST /analyze) get
// the newest, 4. A replica limited to one version (--only-version
// sentiment=N) serves just that one. Serving it needs ORTLibrary; a
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
	for _, built := range []struct {
		version int
		model   func() ([]byte, error)
	}{
		{FailingVersion, FailingSentimentModel},
		{DriftingVersion, DriftingSentimentModel},
	} {
		b, err := built.model()
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dst, "sentiment", fmt.Sprint(built.version), "model.onnx")
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
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
	return sentimentShaped(FailingVersion, "failing_sentiment",
		"A model made to fail, for rollback tests: the sentiment model's inputs and outputs, "+
			"loads and reports ready, and every run fails (Gather indexed by the input's shape, out of range).",
		"bad_sum", "", onnxpb.FloatTensor("one_value", []int64{1}, []float32{0}),
		onnxpb.Node{
			Name: "out_of_range", OpType: "Gather", Inputs: []string{"one_value", "shape"}, Outputs: []string{"bad"},
			DocString: "indices [batch, tokens] into a one-element table: out of range on every valid input",
		},
		onnxpb.Node{
			Name: "sum", OpType: "ReduceSum", Inputs: []string{"bad"}, Outputs: []string{"bad_sum"},
			Attributes: []onnxpb.Attribute{onnxpb.IntAttr("keepdims", 0)},
		})
}

// DriftingSentimentModel returns an ONNX model (IR 8, opset 17) with the
// sentiment model's interface — input tokens STRING [batch, tokens],
// outputs score and p_pos FLOAT [batch, 1] — that loads and answers every
// run, but ignores the text: every row scores DriftingScore (-3), so p_pos
// is sigmoid(-3) and /analyze says NEGATIVE whatever it is given:
//
//	shape  = Shape(tokens)                        [batch, tokens]
//	rows   = Gather(shape, [0])                   [batch]
//	score  = Expand(constant FLOAT [1, 1] = -3, [rows, 1])   FLOAT [batch, 1]
//	p_pos  = Sigmoid(score)
//
// The rows come from the input's shape, so a batch of N rows answers N
// rows, as the real model does.
func DriftingSentimentModel() ([]byte, error) {
	return sentimentShaped(DriftingVersion, "drifting_sentiment",
		"A model made to drift, for rollout tests: the sentiment model's inputs and outputs, "+
			"loads, reports ready and answers every run, but every row scores -3 (p_pos sigmoid(-3)) whatever the text.",
		"constant_score", "the same score for every row, whatever the text",
		onnxpb.FloatTensor("constant_score", []int64{1, 1}, []float32{DriftingScore}))
}

// sentimentShaped is a model (IR 8, opset 17) with the sentiment model's
// interface whose score is the tensor named scored, expanded to one row
// per input row (rows from Shape(tokens), so no optimisation folds the
// graph at load), and p_pos its sigmoid; table and nodes compute scored
// from "shape", the input's shape.
func sentimentShaped(version int64, name, doc, scored, scoreDoc string, table onnxpb.Tensor, nodes ...onnxpb.Node) ([]byte, error) {
	graph := []onnxpb.Node{{Name: "input_shape", OpType: "Shape", Inputs: []string{"tokens"}, Outputs: []string{"shape"}}}
	graph = append(graph, nodes...)
	graph = append(graph,
		onnxpb.Node{Name: "rows", OpType: "Gather", Inputs: []string{"shape", "first"}, Outputs: []string{"rows"}},
		onnxpb.Node{
			Name: "output_shape", OpType: "Concat", Inputs: []string{"rows", "one"}, Outputs: []string{"output_shape"},
			Attributes: []onnxpb.Attribute{onnxpb.IntAttr("axis", 0)},
		},
		onnxpb.Node{Name: "score", OpType: "Expand", Inputs: []string{scored, "output_shape"}, Outputs: []string{"score"}, DocString: scoreDoc},
		onnxpb.Node{Name: "positive_probability", OpType: "Sigmoid", Inputs: []string{"score"}, Outputs: []string{"p_pos"}},
	)
	m := &onnxpb.Model{
		IRVersion: 8, ProducerName: "meridian internal/testbin", ModelVersion: version, DocString: doc,
		OpsetImports: []onnxpb.OperatorSetID{{Domain: "", Version: 17}},
		Graph: &onnxpb.Graph{
			Name:   name,
			Inputs: []onnxpb.ValueInfo{onnxpb.TensorInfo("tokens", onnxpb.String, onnxpb.Sym("batch"), onnxpb.Sym("tokens"))},
			Outputs: []onnxpb.ValueInfo{
				onnxpb.TensorInfo("score", onnxpb.Float, onnxpb.Sym("batch"), onnxpb.Fixed(1)),
				onnxpb.TensorInfo("p_pos", onnxpb.Float, onnxpb.Sym("batch"), onnxpb.Fixed(1)),
			},
			Initializers: []onnxpb.Tensor{
				table,
				{Name: "first", Dims: []int64{1}, DataType: onnxpb.Int64, Int64Data: []int64{0}},
				{Name: "one", Dims: []int64{1}, DataType: onnxpb.Int64, Int64Data: []int64{1}},
			},
			Nodes: graph,
		},
	}
	return m.Marshal()
}
