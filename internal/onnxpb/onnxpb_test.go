package onnxpb

import (
	"bytes"
	"encoding/hex"
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// field is one decoded wire-format field: the tests read the encoding back
// with protowire rather than trusting the writer.
type field struct {
	num protowire.Number
	typ protowire.Type
	u   uint64 // varint or fixed32 value
	b   []byte // length-delimited value
}

func decode(t *testing.T, b []byte) []field {
	t.Helper()
	var fs []field
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatalf("bad tag: %v", protowire.ParseError(n))
		}
		b = b[n:]
		f := field{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			f.u, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var v uint32
			v, n = protowire.ConsumeFixed32(b)
			f.u = uint64(v)
		case protowire.BytesType:
			f.b, n = protowire.ConsumeBytes(b)
		default:
			t.Fatalf("field %d: unexpected wire type %d", num, typ)
		}
		if n < 0 {
			t.Fatalf("field %d: %v", num, protowire.ParseError(n))
		}
		b = b[n:]
		fs = append(fs, f)
	}
	return fs
}

// only returns the fields numbered num.
func only(fs []field, num protowire.Number) []field {
	var out []field
	for _, f := range fs {
		if f.num == num {
			out = append(out, f)
		}
	}
	return out
}

func one(t *testing.T, fs []field, num protowire.Number) field {
	t.Helper()
	got := only(fs, num)
	if len(got) != 1 {
		t.Fatalf("field %d: want exactly one, got %d", num, len(got))
	}
	return got[0]
}

func TestGoldenEncodings(t *testing.T) {
	attr := func(a Attribute) []byte {
		b, err := a.marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := []struct {
		name string
		got  []byte
		want string // hex
	}{
		// version=17; the empty default domain is omitted.
		{"opset", OperatorSetID{Version: 17}.marshal(), "1011"},
		{"opset domain", OperatorSetID{Domain: "ai.onnx.ml", Version: 3}.marshal(), "0a0a61692e6f6e6e782e6d6c1003"},
		// name="k", i=0 still written, type=INT(2) at field 20 (tag a0 01).
		{"int attr zero", attr(IntAttr("k", 0)), "0a016b1800a00102"},
		{"int attr negative", attr(IntAttr("k", -1)), "0a016b18ffffffffffffffffff01a00102"},
		{"float attr", attr(FloatAttr("k", 1)), "0a016b150000803fa00101"},
		{"string attr", attr(StringAttr("mode", "TF")), "0a046d6f646522025446a00103"},
		// repeated scalars unpacked, as proto2 declares them.
		{"ints attr", attr(IntsAttr("k", []int64{0, 5})), "0a016b40004005a00107"},
		{"floats attr", attr(FloatsAttr("k", []float32{1})), "0a016b3d0000803fa00106"},
		{"strings attr", attr(StringsAttr("k", []string{"a", ""})), "0a016b4a01614a00a00108"},
		// name "x", type{tensor_type{elem_type=1, shape{dim{dim_param "n"}, dim{dim_value 0}}}}.
		{"value info", TensorInfo("x", Float, Sym("n"), Fixed(0)).marshal(), "0a0178120f0a0d080112090a0312016e0a020800"},
		{"value info unknown rank", ValueInfo{Name: "x", ElemType: String}.marshal(), "0a01781204" + "0a020808"},
		{"value info scalar", TensorInfo("x", Int64).marshal(), "0a01781206" + "0a0408071200"},
	}
	for _, c := range cases {
		if got := hex.EncodeToString(c.got); got != c.want {
			t.Errorf("%s: got %s, want %s", c.name, got, c.want)
		}
	}
}

func TestTensorEncoding(t *testing.T) {
	tb, err := (&Tensor{Name: "W", Dims: []int64{2, 1}, DataType: Float, FloatData: []float32{1.5, -2}}).marshal()
	if err != nil {
		t.Fatal(err)
	}
	fs := decode(t, tb)
	if dims := only(fs, 1); len(dims) != 2 || dims[0].u != 2 || dims[1].u != 1 {
		t.Errorf("dims: %+v", dims)
	}
	if dt := one(t, fs, 2); dt.u != uint64(Float) {
		t.Errorf("data_type %d", dt.u)
	}
	packed := one(t, fs, 4)
	if packed.typ != protowire.BytesType || len(packed.b) != 8 {
		t.Fatalf("float_data not packed: %+v", packed)
	}
	for i, want := range []float32{1.5, -2} {
		v, _ := protowire.ConsumeFixed32(packed.b[4*i:])
		if got := math.Float32frombits(v); got != want {
			t.Errorf("float_data[%d] = %v, want %v", i, got, want)
		}
	}
	if name := one(t, fs, 8); string(name.b) != "W" {
		t.Errorf("name %q", name.b)
	}

	ib, err := (&Tensor{Name: "i", Dims: []int64{3}, DataType: Int64, Int64Data: []int64{1, -1, 300}}).marshal()
	if err != nil {
		t.Fatal(err)
	}
	p := one(t, decode(t, ib), 7).b
	for _, want := range []int64{1, -1, 300} {
		v, n := protowire.ConsumeVarint(p)
		if int64(v) != want {
			t.Errorf("int64_data: got %d, want %d", int64(v), want)
		}
		p = p[n:]
	}

	rb, err := (&Tensor{Name: "r", Dims: []int64{1}, DataType: Float, RawData: []byte{0, 0, 0x80, 0x3f}}).marshal()
	if err != nil {
		t.Fatal(err)
	}
	if raw := one(t, decode(t, rb), 9); !bytes.Equal(raw.b, []byte{0, 0, 0x80, 0x3f}) {
		t.Errorf("raw_data %x", raw.b)
	}
}

func TestModelStructure(t *testing.T) {
	m := &Model{
		IRVersion:    8,
		ProducerName: "test",
		ModelVersion: 3,
		DocString:    "doc",
		OpsetImports: []OperatorSetID{{Version: 17}},
		Graph: &Graph{
			Name:      "g",
			DocString: "graph doc",
			Nodes: []Node{{
				Name: "mm", OpType: "MatMul",
				Inputs: []string{"x", "W"}, Outputs: []string{"y"},
			}, {
				Name: "sig", OpType: "Sigmoid", Domain: "",
				Inputs: []string{"y"}, Outputs: []string{"p"},
				Attributes: []Attribute{IntAttr("unused", 1)},
			}},
			Initializers: []Tensor{FloatTensor("W", []int64{2, 1}, []float32{1, 2})},
			Inputs:       []ValueInfo{TensorInfo("x", Float, Sym("batch"), Fixed(2))},
			Outputs:      []ValueInfo{TensorInfo("y", Float, Sym("batch"), Fixed(1)), TensorInfo("p", Float, Sym("batch"), Fixed(1))},
		},
	}
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := m.Marshal()
	if !bytes.Equal(b, b2) {
		t.Fatal("Marshal is not deterministic")
	}

	fs := decode(t, b)
	if v := one(t, fs, 1); v.u != 8 {
		t.Errorf("ir_version %d", v.u)
	}
	if v := one(t, fs, 2); string(v.b) != "test" {
		t.Errorf("producer_name %q", v.b)
	}
	if len(only(fs, 3)) != 0 {
		t.Error("empty producer_version was written")
	}
	if v := one(t, fs, 5); v.u != 3 {
		t.Errorf("model_version %d", v.u)
	}
	if v := one(t, fs, 6); string(v.b) != "doc" {
		t.Errorf("doc_string %q", v.b)
	}
	if v := decode(t, one(t, fs, 8).b); one(t, v, 2).u != 17 {
		t.Errorf("opset_import %+v", v)
	}

	g := decode(t, one(t, fs, 7).b)
	nodes := only(g, 1)
	if len(nodes) != 2 {
		t.Fatalf("%d nodes", len(nodes))
	}
	n0 := decode(t, nodes[0].b)
	if in := only(n0, 1); len(in) != 2 || string(in[0].b) != "x" || string(in[1].b) != "W" {
		t.Errorf("node inputs %+v", in)
	}
	if string(one(t, n0, 2).b) != "y" || string(one(t, n0, 3).b) != "mm" || string(one(t, n0, 4).b) != "MatMul" {
		t.Errorf("node 0 %+v", n0)
	}
	if len(only(n0, 7)) != 0 {
		t.Error("empty node domain was written")
	}
	n1 := decode(t, nodes[1].b)
	if a := decode(t, one(t, n1, 5).b); string(one(t, a, 1).b) != "unused" || one(t, a, 20).u != uint64(AttrInt) {
		t.Errorf("attribute %+v", a)
	}
	if string(one(t, g, 2).b) != "g" || string(one(t, g, 10).b) != "graph doc" {
		t.Error("graph name/doc_string")
	}
	if init := decode(t, one(t, g, 5).b); string(one(t, init, 8).b) != "W" {
		t.Errorf("initializer %+v", init)
	}
	if len(only(g, 11)) != 1 || len(only(g, 12)) != 2 {
		t.Errorf("inputs/outputs: %d/%d", len(only(g, 11)), len(only(g, 12)))
	}
	// Fields come out in ascending field-number order.
	for i := 1; i < len(fs); i++ {
		if fs[i].num < fs[i-1].num {
			t.Errorf("model field %d after %d", fs[i].num, fs[i-1].num)
		}
	}
}

func TestMarshalErrors(t *testing.T) {
	cases := []struct {
		name string
		m    *Model
		want string
	}{
		{"bad attribute type", &Model{Graph: &Graph{Nodes: []Node{{OpType: "X", Attributes: []Attribute{{Name: "a", Type: 99}}}}}}, "unsupported type"},
		{"unnamed attribute", &Model{Graph: &Graph{Nodes: []Node{{OpType: "X", Attributes: []Attribute{IntAttr("", 1)}}}}}, "without a name"},
		{"float data, int type", &Model{Graph: &Graph{Initializers: []Tensor{{Name: "t", Dims: []int64{1}, DataType: Int64, FloatData: []float32{1}}}}}, "needs data type FLOAT"},
		{"two data fields", &Model{Graph: &Graph{Initializers: []Tensor{{Name: "t", Dims: []int64{1}, DataType: Float, FloatData: []float32{1}, RawData: []byte{0, 0, 0, 0}}}}}, "more than one"},
		{"wrong count", &Model{Graph: &Graph{Initializers: []Tensor{FloatTensor("t", []int64{2, 2}, []float32{1})}}}, "needs 4 values"},
		{"string tensor", &Model{Graph: &Graph{Initializers: []Tensor{{Name: "t", DataType: String}}}}, "not supported"},
	}
	for _, c := range cases {
		_, err := c.m.Marshal()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got error %v, want one containing %q", c.name, err, c.want)
		}
	}
}
