package onnxpb

import (
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// DataType is TensorProto.DataType: the element type of a tensor.
type DataType int32

// The tensor element types this package is used with.
const (
	Float  DataType = 1 // float32
	Int64  DataType = 7 // int64
	String DataType = 8 // UTF-8 string
)

// AttributeType is AttributeProto.AttributeType: which value field of an
// Attribute is in use.
type AttributeType int32

// The attribute types this package can write.
const (
	AttrFloat   AttributeType = 1
	AttrInt     AttributeType = 2
	AttrString  AttributeType = 3
	AttrFloats  AttributeType = 6
	AttrInts    AttributeType = 7
	AttrStrings AttributeType = 8
)

// Model is ModelProto, the top-level container of an .onnx file.
type Model struct {
	IRVersion       int64 // IR version the model targets, e.g. 8
	ProducerName    string
	ProducerVersion string
	ModelVersion    int64
	DocString       string // Markdown allowed
	Graph           *Graph
	OpsetImports    []OperatorSetID // at least one, for the default domain ""
}

// OperatorSetID is OperatorSetIdProto: an (operator-set domain, version) pair.
// The empty Domain is the default ONNX domain ("ai.onnx").
type OperatorSetID struct {
	Domain  string
	Version int64
}

// Graph is GraphProto. Nodes must be in topological order.
type Graph struct {
	Name         string
	DocString    string
	Nodes        []Node
	Initializers []Tensor // constant tensors, referenced by name from nodes
	Inputs       []ValueInfo
	Outputs      []ValueInfo
}

// Node is NodeProto: one operator invocation.
type Node struct {
	Name       string
	OpType     string // e.g. "MatMul"
	Domain     string // "" for the default ONNX domain
	DocString  string
	Inputs     []string
	Outputs    []string
	Attributes []Attribute
}

// Attribute is AttributeProto. Type selects the value field that is written;
// the other value fields are ignored. The constructors FloatAttr, IntAttr,
// StringAttr, FloatsAttr, IntsAttr and StringsAttr fill in Type for you.
type Attribute struct {
	Name    string
	Type    AttributeType
	F       float32
	I       int64
	S       []byte
	Floats  []float32
	Ints    []int64
	Strings [][]byte
}

// FloatAttr returns a FLOAT attribute.
func FloatAttr(name string, v float32) Attribute {
	return Attribute{Name: name, Type: AttrFloat, F: v}
}

// IntAttr returns an INT attribute.
func IntAttr(name string, v int64) Attribute { return Attribute{Name: name, Type: AttrInt, I: v} }

// StringAttr returns a STRING attribute.
func StringAttr(name, v string) Attribute {
	return Attribute{Name: name, Type: AttrString, S: []byte(v)}
}

// FloatsAttr returns a FLOATS attribute.
func FloatsAttr(name string, v []float32) Attribute {
	return Attribute{Name: name, Type: AttrFloats, Floats: v}
}

// IntsAttr returns an INTS attribute.
func IntsAttr(name string, v []int64) Attribute {
	return Attribute{Name: name, Type: AttrInts, Ints: v}
}

// StringsAttr returns a STRINGS attribute.
func StringsAttr(name string, v []string) Attribute {
	b := make([][]byte, len(v))
	for i, s := range v {
		b[i] = []byte(s)
	}
	return Attribute{Name: name, Type: AttrStrings, Strings: b}
}

// Tensor is TensorProto, used for graph initializers. Exactly one of
// FloatData (DataType Float), Int64Data (DataType Int64) or RawData
// (fixed-width little-endian elements of any non-string type) holds the
// values; string tensors are not supported.
type Tensor struct {
	Name      string
	Dims      []int64
	DataType  DataType
	FloatData []float32
	Int64Data []int64
	RawData   []byte
}

// FloatTensor returns a Float tensor with the given name, shape and
// row-major values.
func FloatTensor(name string, dims []int64, values []float32) Tensor {
	return Tensor{Name: name, Dims: dims, DataType: Float, FloatData: values}
}

// ValueInfo is ValueInfoProto restricted to tensor types
// (TypeProto.tensor_type): a graph input or output.
type ValueInfo struct {
	Name     string
	ElemType DataType
	// Shape is the tensor's shape. nil writes no shape at all (rank
	// unknown); a non-nil empty slice declares a scalar.
	Shape []Dim
}

// Dim is TensorShapeProto.Dimension: a fixed size, or a symbolic one when
// Param is not empty (e.g. "batch").
type Dim struct {
	Value int64
	Param string
}

// Sym returns a symbolic dimension named name.
func Sym(name string) Dim { return Dim{Param: name} }

// Fixed returns a dimension of fixed size n.
func Fixed(n int64) Dim { return Dim{Value: n} }

// TensorInfo returns the ValueInfo of a tensor input or output with the given
// shape (no dims: a scalar; build a ValueInfo with a nil Shape for a tensor
// of unknown rank).
func TensorInfo(name string, elem DataType, shape ...Dim) ValueInfo {
	if shape == nil {
		shape = []Dim{}
	}
	return ValueInfo{Name: name, ElemType: elem, Shape: shape}
}

// Marshal encodes m as a binary ModelProto, the content of an .onnx file.
// It checks only what the encoding depends on (attribute types, tensor
// data fields); it does not validate the graph.
func (m *Model) Marshal() ([]byte, error) {
	var b []byte
	b = appendInt(b, 1, m.IRVersion)
	b = appendString(b, 2, m.ProducerName)
	b = appendString(b, 3, m.ProducerVersion)
	if m.ModelVersion != 0 {
		b = appendInt(b, 5, m.ModelVersion)
	}
	b = appendString(b, 6, m.DocString)
	if m.Graph != nil {
		g, err := m.Graph.marshal()
		if err != nil {
			return nil, err
		}
		b = appendMessage(b, 7, g)
	}
	for _, o := range m.OpsetImports {
		b = appendMessage(b, 8, o.marshal())
	}
	return b, nil
}

func (o OperatorSetID) marshal() []byte {
	var b []byte
	b = appendString(b, 1, o.Domain)
	return appendInt(b, 2, o.Version)
}

func (g *Graph) marshal() ([]byte, error) {
	var b []byte
	for i := range g.Nodes {
		n, err := g.Nodes[i].marshal()
		if err != nil {
			return nil, err
		}
		b = appendMessage(b, 1, n)
	}
	b = appendString(b, 2, g.Name)
	for i := range g.Initializers {
		t, err := g.Initializers[i].marshal()
		if err != nil {
			return nil, err
		}
		b = appendMessage(b, 5, t)
	}
	b = appendString(b, 10, g.DocString)
	for _, v := range g.Inputs {
		b = appendMessage(b, 11, v.marshal())
	}
	for _, v := range g.Outputs {
		b = appendMessage(b, 12, v.marshal())
	}
	return b, nil
}

func (n *Node) marshal() ([]byte, error) {
	var b []byte
	for _, s := range n.Inputs {
		b = appendBytes(b, 1, []byte(s))
	}
	for _, s := range n.Outputs {
		b = appendBytes(b, 2, []byte(s))
	}
	b = appendString(b, 3, n.Name)
	b = appendString(b, 4, n.OpType)
	for i := range n.Attributes {
		a, err := n.Attributes[i].marshal()
		if err != nil {
			return nil, fmt.Errorf("onnxpb: node %q (%s): %w", n.Name, n.OpType, err)
		}
		b = appendMessage(b, 5, a)
	}
	b = appendString(b, 6, n.DocString)
	b = appendString(b, 7, n.Domain)
	return b, nil
}

func (a *Attribute) marshal() ([]byte, error) {
	if a.Name == "" {
		return nil, fmt.Errorf("attribute without a name")
	}
	b := appendString(nil, 1, a.Name)
	switch a.Type {
	case AttrFloat:
		b = protowire.AppendTag(b, 2, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, math.Float32bits(a.F))
	case AttrInt:
		b = appendInt(b, 3, a.I)
	case AttrString:
		b = appendBytes(b, 4, a.S)
	case AttrFloats:
		for _, f := range a.Floats {
			b = protowire.AppendTag(b, 7, protowire.Fixed32Type)
			b = protowire.AppendFixed32(b, math.Float32bits(f))
		}
	case AttrInts:
		for _, v := range a.Ints {
			b = appendInt(b, 8, v)
		}
	case AttrStrings:
		for _, s := range a.Strings {
			b = appendBytes(b, 9, s)
		}
	default:
		return nil, fmt.Errorf("attribute %q: unsupported type %d", a.Name, a.Type)
	}
	return appendInt(b, 20, int64(a.Type)), nil
}

func (t *Tensor) marshal() ([]byte, error) {
	fields := 0
	for _, set := range []bool{t.FloatData != nil, t.Int64Data != nil, t.RawData != nil} {
		if set {
			fields++
		}
	}
	switch {
	case fields > 1:
		return nil, fmt.Errorf("onnxpb: tensor %q: more than one data field set", t.Name)
	case t.FloatData != nil && t.DataType != Float:
		return nil, fmt.Errorf("onnxpb: tensor %q: float_data needs data type FLOAT, not %d", t.Name, t.DataType)
	case t.Int64Data != nil && t.DataType != Int64:
		return nil, fmt.Errorf("onnxpb: tensor %q: int64_data needs data type INT64, not %d", t.Name, t.DataType)
	case t.DataType == String:
		return nil, fmt.Errorf("onnxpb: tensor %q: string tensors are not supported", t.Name)
	}
	n := int64(1)
	for _, d := range t.Dims {
		n *= d
	}
	if got := int64(len(t.FloatData) + len(t.Int64Data)); t.RawData == nil && got != n {
		return nil, fmt.Errorf("onnxpb: tensor %q: shape %v needs %d values, have %d", t.Name, t.Dims, n, got)
	}

	var b []byte
	for _, d := range t.Dims {
		b = appendInt(b, 1, d)
	}
	b = appendInt(b, 2, int64(t.DataType))
	if len(t.FloatData) > 0 {
		p := make([]byte, 0, 4*len(t.FloatData))
		for _, f := range t.FloatData {
			p = protowire.AppendFixed32(p, math.Float32bits(f))
		}
		b = appendBytes(b, 4, p)
	}
	if len(t.Int64Data) > 0 {
		var p []byte
		for _, v := range t.Int64Data {
			p = protowire.AppendVarint(p, uint64(v))
		}
		b = appendBytes(b, 7, p)
	}
	b = appendString(b, 8, t.Name)
	if t.RawData != nil {
		b = appendBytes(b, 9, t.RawData)
	}
	return b, nil
}

// marshal writes ValueInfoProto{name, type: TypeProto{tensor_type: {elem_type, shape}}}.
func (v ValueInfo) marshal() []byte {
	tensor := appendInt(nil, 1, int64(v.ElemType))
	if v.Shape != nil {
		var shape []byte
		for _, d := range v.Shape {
			var dim []byte
			if d.Param != "" {
				dim = appendBytes(dim, 2, []byte(d.Param))
			} else {
				dim = appendInt(dim, 1, d.Value)
			}
			shape = appendMessage(shape, 1, dim)
		}
		tensor = appendMessage(tensor, 2, shape)
	}
	typ := appendMessage(nil, 1, tensor)

	b := appendString(nil, 1, v.Name)
	return appendMessage(b, 2, typ)
}

// appendInt writes an int32/int64/enum field (varint, two's complement for
// negative values, as protobuf does for int64).
func appendInt(b []byte, num protowire.Number, v int64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(v))
}

// appendString writes an optional string field, omitting it when empty.
func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	return appendBytes(b, num, []byte(s))
}

// appendBytes writes a length-delimited field (string, bytes or packed
// scalars), even when empty.
func appendBytes(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

// appendMessage writes an embedded message field.
func appendMessage(b []byte, num protowire.Number, msg []byte) []byte {
	return appendBytes(b, num, msg)
}
