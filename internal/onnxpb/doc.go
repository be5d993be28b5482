// Package onnxpb writes ONNX models (the ModelProto of onnx/onnx.proto) in
// protobuf wire format, using only google.golang.org/protobuf/encoding/protowire.
//
// It is deliberately tiny: there is no generated .pb.go code and no reader,
// just plain Go structs for the handful of messages a hand-built graph needs
// (Model, OperatorSetID, Graph, Node, Attribute, Tensor, ValueInfo with a
// tensor type and shape) and a Marshal method on Model. Each field is written
// with the field number of onnx.proto (IR version 8 / onnx 1.12 and later;
// the numbers used here have not changed since they were introduced):
//
//	ModelProto         ir_version=1 producer_name=2 producer_version=3
//	                   model_version=5 doc_string=6 graph=7 opset_import=8
//	OperatorSetIdProto domain=1 version=2
//	GraphProto         node=1 name=2 initializer=5 doc_string=10
//	                   input=11 output=12
//	NodeProto          input=1 output=2 name=3 op_type=4 attribute=5
//	                   doc_string=6 domain=7
//	AttributeProto     name=1 f=2 i=3 s=4 floats=7 ints=8 strings=9 type=20
//	TensorProto        dims=1 data_type=2 float_data=4 (packed)
//	                   int64_data=7 (packed) name=8 raw_data=9
//	ValueInfoProto     name=1 type=2
//	TypeProto          tensor_type=1
//	TypeProto.Tensor   elem_type=1 shape=2
//	TensorShapeProto   dim=1
//	  .Dimension       dim_value=1 dim_param=2
//
// Encoding rules. onnx.proto is proto2, so repeated scalars are written
// unpacked unless the schema says [packed = true] (only TensorProto's
// float_data and int64_data here); every protobuf parser accepts either
// form. Optional strings and the model version are omitted when empty or
// zero, which reads back as the same default. Values whose zero is
// meaningful are always written: ir_version, opset version, an attribute's
// type and its value field (an INT attribute of 0 is still present), and a
// dimension's dim_value (a dimension of size 0). Fields are emitted in
// ascending field-number order and nothing depends on map iteration, so the
// same Model always marshals to the same bytes.
package onnxpb
