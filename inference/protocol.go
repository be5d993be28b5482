package inference

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// HeaderLength is the binary tensor extension's header: the length of the
// JSON part of a body whose binary tensors follow it.
const HeaderLength = "Inference-Header-Content-Length"

// HeaderModelVersion names, in every answer of /infer and /analyze, the
// model version that answered (or would have): clients see which side of
// a canary or A/B split they are on, and a cluster's front counts each
// version's requests by it.
const HeaderModelVersion = "Meridian-Model-Version"

// HeaderPrediction names, in every good answer of /analyze, the label
// predicted: a cluster's front counts each version's labels by it, which
// is what a rollout's drift check compares.
const HeaderPrediction = "Meridian-Prediction"

// InferRequest is a decoded Open Inference Protocol v2 infer request.
type InferRequest struct {
	ID     string
	Inputs []*Tensor
	// Outputs lists the outputs asked for; empty means all of them.
	Outputs []RequestedOutput
	// BinaryOutputs asks for every output in binary form unless an
	// output says otherwise.
	BinaryOutputs bool
	// Timeout is the client's deadline for this request (the Triton
	// "timeout" parameter, in microseconds); 0 means the server default.
	Timeout time.Duration
}

// RequestedOutput is one entry of the request's "outputs".
type RequestedOutput struct {
	Name   string
	Binary bool
}

type wireParameters struct {
	BinaryDataSize   *int64 `json:"binary_data_size,omitempty"`
	BinaryData       *bool  `json:"binary_data,omitempty"`
	BinaryDataOutput bool   `json:"binary_data_output,omitempty"`
	Timeout          int64  `json:"timeout,omitempty"`
}

type wireInput struct {
	Name       string          `json:"name"`
	Shape      []int64         `json:"shape"`
	Datatype   DataType        `json:"datatype"`
	Parameters *wireParameters `json:"parameters"`
	Data       json.RawMessage `json:"data"`
}

type wireRequest struct {
	ID         string          `json:"id"`
	Parameters *wireParameters `json:"parameters"`
	Inputs     []wireInput     `json:"inputs"`
	Outputs    []struct {
		Name       string          `json:"name"`
		Parameters *wireParameters `json:"parameters"`
	} `json:"outputs"`
}

// DecodeInferRequest parses an infer request body. headerLength is the
// value of the Inference-Header-Content-Length header, or -1 when absent
// (the whole body is JSON). Every input is checked against its shape and
// datatype; the errors say what is wrong in terms a client can act on.
func DecodeInferRequest(body []byte, headerLength int64) (*InferRequest, error) {
	header, blobs := body, []byte(nil)
	if headerLength >= 0 {
		if headerLength > int64(len(body)) {
			return nil, fmt.Errorf("%s is %d but the body has only %d bytes", HeaderLength, headerLength, len(body))
		}
		header, blobs = body[:headerLength], body[headerLength:]
	}
	var w wireRequest
	if err := json.Unmarshal(header, &w); err != nil {
		return nil, fmt.Errorf("request is not valid JSON: %w", err)
	}
	if len(w.Inputs) == 0 {
		return nil, errors.New(`request has no "inputs"`)
	}
	req := &InferRequest{ID: w.ID}
	if p := w.Parameters; p != nil {
		req.BinaryOutputs = p.BinaryDataOutput
		if p.Timeout < 0 {
			return nil, errors.New(`parameter "timeout" must be >= 0 microseconds`)
		}
		req.Timeout = time.Duration(p.Timeout) * time.Microsecond
	}
	seen := make(map[string]bool, len(w.Inputs))
	for i := range w.Inputs {
		in := &w.Inputs[i]
		if in.Name == "" {
			return nil, fmt.Errorf("input %d has no name", i)
		}
		if seen[in.Name] {
			return nil, fmt.Errorf("input %q appears twice", in.Name)
		}
		seen[in.Name] = true
		t := &Tensor{Name: in.Name, Datatype: in.Datatype, Shape: in.Shape}
		if !t.Datatype.Valid() {
			return nil, fmt.Errorf("input %q: unsupported datatype %q", in.Name, in.Datatype)
		}
		if in.Shape == nil {
			return nil, fmt.Errorf("input %q has no shape", in.Name)
		}
		if err := checkShape(in.Shape); err != nil {
			return nil, fmt.Errorf("input %q: %w", in.Name, err)
		}
		var err error
		if in.Parameters != nil && in.Parameters.BinaryDataSize != nil {
			size := *in.Parameters.BinaryDataSize
			if size < 0 || size > int64(len(blobs)) {
				return nil, fmt.Errorf("input %q: binary_data_size %d but only %d binary bytes remain", in.Name, size, len(blobs))
			}
			err = decodeBinary(t, blobs[:size])
			blobs = blobs[size:]
		} else {
			if len(in.Data) == 0 {
				return nil, fmt.Errorf("input %q has no data", in.Name)
			}
			err = decodeJSONData(t, in.Data)
		}
		if err != nil {
			return nil, err
		}
		if err := t.Validate(); err != nil {
			return nil, err
		}
		req.Inputs = append(req.Inputs, t)
	}
	if len(blobs) != 0 {
		return nil, fmt.Errorf("%d binary bytes follow the JSON header but no input claims them", len(blobs))
	}
	for _, o := range w.Outputs {
		if o.Name == "" {
			return nil, errors.New("a requested output has no name")
		}
		binary := req.BinaryOutputs
		if o.Parameters != nil && o.Parameters.BinaryData != nil {
			binary = *o.Parameters.BinaryData
		}
		req.Outputs = append(req.Outputs, RequestedOutput{Name: o.Name, Binary: binary})
	}
	return req, nil
}

// decodeBinary reads a tensor in the binary extension's layout: numeric
// elements little-endian, BYTES elements each prefixed by a 4-byte
// little-endian length.
func decodeBinary(t *Tensor, b []byte) error {
	if t.Datatype != BYTES {
		t.Raw = b
		return nil
	}
	n := Elements(t.Shape)
	for int64(len(t.Strings)) < n && len(b) >= 4 {
		l := binary.LittleEndian.Uint32(b)
		if uint64(l) > uint64(len(b)-4) {
			return fmt.Errorf("input %q: BYTES element %d claims %d bytes, only %d remain", t.Name, len(t.Strings), l, len(b)-4)
		}
		t.Strings = append(t.Strings, string(b[4:4+l]))
		b = b[4+l:]
	}
	if len(b) != 0 {
		return fmt.Errorf("input %q: %d binary bytes left over after %d BYTES elements", t.Name, len(b), n)
	}
	return nil
}

// decodeJSONData reads "data", flat or nested to any depth as the protocol
// allows, straight into the tensor's storage. It stops at the element
// count the shape allows, so a lying shape cannot make it allocate more
// than the body already holds.
func decodeJSONData(t *Tensor, data []byte) error {
	n := Elements(t.Shape)
	size := t.Datatype.Size()
	if t.Datatype == BYTES {
		t.Strings = make([]string, 0, min(n, int64(len(data))/2+1))
	} else {
		t.Raw = make([]byte, 0, min(n, int64(len(data))/2+1)*int64(size))
	}
	count := int64(0)
	for i := 0; i < len(data); {
		c := data[i]
		switch {
		case c == '[' || c == ']' || c == ',' || c == ' ' || c == '\n' || c == '\t' || c == '\r':
			i++
			continue
		}
		if count == n {
			return fmt.Errorf("input %q: data has more than the %d elements shape %v holds", t.Name, n, t.Shape)
		}
		var tok []byte
		if c == '"' {
			end := stringEnd(data, i)
			if end < 0 {
				return fmt.Errorf("input %q: unterminated string in data", t.Name)
			}
			tok, i = data[i:end], end
		} else {
			j := i
			for j < len(data) && data[j] != ',' && data[j] != ']' && data[j] != ' ' && data[j] != '\n' && data[j] != '\t' && data[j] != '\r' {
				j++
			}
			tok, i = data[i:j], j
		}
		if err := appendElement(t, tok); err != nil {
			return fmt.Errorf("input %q element %d: %w", t.Name, count, err)
		}
		count++
	}
	if count != n {
		return fmt.Errorf("input %q: shape %v holds %d elements but data has %d", t.Name, t.Shape, n, count)
	}
	return nil
}

// stringEnd returns the index just past the JSON string starting at i.
func stringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

func appendElement(t *Tensor, tok []byte) error {
	if t.Datatype == BYTES {
		if tok[0] != '"' {
			return fmt.Errorf("BYTES elements must be strings, got %s", tok)
		}
		if bytes.IndexByte(tok, '\\') < 0 {
			t.Strings = append(t.Strings, string(tok[1:len(tok)-1]))
			return nil
		}
		var s string
		if err := json.Unmarshal(tok, &s); err != nil {
			return err
		}
		t.Strings = append(t.Strings, s)
		return nil
	}
	if tok[0] == '"' {
		return fmt.Errorf("%s elements must be numbers, got the string %s", t.Datatype, tok)
	}
	s := string(tok)
	le := binary.LittleEndian
	switch t.Datatype {
	case BOOL:
		switch s {
		case "true":
			t.Raw = append(t.Raw, 1)
		case "false":
			t.Raw = append(t.Raw, 0)
		default:
			return fmt.Errorf("BOOL elements must be true or false, got %s", s)
		}
	case FP32, FP64, FP16:
		bits := 64
		if t.Datatype == FP32 {
			bits = 32
		}
		f, err := strconv.ParseFloat(s, bits)
		if err != nil {
			return fmt.Errorf("%s element %s: %w", t.Datatype, s, numErr(err))
		}
		switch t.Datatype {
		case FP32:
			t.Raw = le.AppendUint32(t.Raw, math.Float32bits(float32(f)))
		case FP64:
			t.Raw = le.AppendUint64(t.Raw, math.Float64bits(f))
		default:
			if math.Abs(f) > 65504 {
				return fmt.Errorf("FP16 element %s is out of range", s)
			}
			t.Raw = le.AppendUint16(t.Raw, float16bits(float32(f)))
		}
	case INT8, INT16, INT32, INT64:
		v, err := strconv.ParseInt(s, 10, t.Datatype.Size()*8)
		if err != nil {
			return fmt.Errorf("%s element %s: %w", t.Datatype, s, numErr(err))
		}
		t.Raw = appendInt(t.Raw, uint64(v), t.Datatype.Size())
	default: // unsigned
		v, err := strconv.ParseUint(s, 10, t.Datatype.Size()*8)
		if err != nil {
			return fmt.Errorf("%s element %s: %w", t.Datatype, s, numErr(err))
		}
		t.Raw = appendInt(t.Raw, v, t.Datatype.Size())
	}
	return nil
}

func numErr(err error) error {
	if errors.Is(err, strconv.ErrRange) {
		return errors.New("out of range")
	}
	return errors.New("not a number of this type")
}

func appendInt(b []byte, v uint64, size int) []byte {
	for i := 0; i < size; i++ {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

// float16bits converts to IEEE 754 half precision, rounding to nearest even.
func float16bits(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23&0xff) - 127 + 15
	mant := b & 0x7fffff
	switch {
	case exp >= 31:
		return sign | 0x7c00
	case exp <= 0:
		if exp < -10 {
			return sign
		}
		mant |= 0x800000
		shift := uint32(14 - exp)
		half := uint16(mant >> shift)
		if rem := mant & (1<<shift - 1); rem > 1<<(shift-1) || (rem == 1<<(shift-1) && half&1 == 1) {
			half++
		}
		return sign | half
	}
	half := sign | uint16(exp)<<10 | uint16(mant>>13)
	if rem := mant & 0x1fff; rem > 0x1000 || (rem == 0x1000 && half&1 == 1) {
		half++
	}
	return half
}

// float16ToFloat32 widens an IEEE 754 half to float32.
func float16ToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp == 0:
		if mant == 0 {
			return math.Float32frombits(sign)
		}
		for mant&0x400 == 0 {
			mant <<= 1
			exp--
		}
		exp++
		mant &= 0x3ff
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// InferResponse is what EncodeInferResponse writes.
type InferResponse struct {
	ModelName    string
	ModelVersion string
	ID           string
	Outputs      []*Tensor
	// Binary marks, per output, those sent in binary form.
	Binary []bool
}

// EncodeInferResponse writes the response body. headerLength is -1 when the
// body is all JSON, else the length of its JSON part (binary outputs
// follow it, in order).
func EncodeInferResponse(r *InferResponse) (body []byte, headerLength int) {
	b := make([]byte, 0, 256)
	b = append(b, `{"model_name":`...)
	b = appendJSONString(b, r.ModelName)
	b = append(b, `,"model_version":`...)
	b = appendJSONString(b, r.ModelVersion)
	if r.ID != "" {
		b = append(b, `,"id":`...)
		b = appendJSONString(b, r.ID)
	}
	b = append(b, `,"outputs":[`...)
	var blobs [][]byte
	for i, t := range r.Outputs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b = appendJSONString(b, t.Name)
		b = append(b, `,"datatype":"`...)
		b = append(b, t.Datatype...)
		b = append(b, `","shape":[`...)
		for j, d := range t.Shape {
			if j > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, d, 10)
		}
		b = append(b, ']')
		if r.Binary != nil && r.Binary[i] {
			blob := binaryBlob(t)
			blobs = append(blobs, blob)
			b = append(b, `,"parameters":{"binary_data_size":`...)
			b = strconv.AppendInt(b, int64(len(blob)), 10)
			b = append(b, "}}"...)
			continue
		}
		b = append(b, `,"data":[`...)
		b = appendJSONData(b, t)
		b = append(b, "]}"...)
	}
	b = append(b, "]}"...)
	if blobs == nil {
		return b, -1
	}
	header := len(b)
	for _, blob := range blobs {
		b = append(b, blob...)
	}
	return b, header
}

func binaryBlob(t *Tensor) []byte {
	if t.Datatype != BYTES {
		return t.Raw
	}
	var b []byte
	for _, s := range t.Strings {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	return b
}

func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s)
	return append(b, q...)
}

// appendJSONData writes the elements flat; NaN and ±Inf, which JSON cannot
// carry, are written as null.
func appendJSONData(b []byte, t *Tensor) []byte {
	le := binary.LittleEndian
	if t.Datatype == BYTES {
		for i, s := range t.Strings {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, s)
		}
		return b
	}
	size := t.Datatype.Size()
	for i := 0; i+size <= len(t.Raw); i += size {
		if i > 0 {
			b = append(b, ',')
		}
		e := t.Raw[i : i+size]
		switch t.Datatype {
		case BOOL:
			b = strconv.AppendBool(b, e[0] != 0)
		case FP32:
			b = appendFloat(b, float64(math.Float32frombits(le.Uint32(e))), 32)
		case FP64:
			b = appendFloat(b, math.Float64frombits(le.Uint64(e)), 64)
		case FP16:
			b = appendFloat(b, float64(float16ToFloat32(le.Uint16(e))), 32)
		case INT8:
			b = strconv.AppendInt(b, int64(int8(e[0])), 10)
		case INT16:
			b = strconv.AppendInt(b, int64(int16(le.Uint16(e))), 10)
		case INT32:
			b = strconv.AppendInt(b, int64(int32(le.Uint32(e))), 10)
		case INT64:
			b = strconv.AppendInt(b, int64(le.Uint64(e)), 10)
		case UINT8:
			b = strconv.AppendUint(b, uint64(e[0]), 10)
		case UINT16:
			b = strconv.AppendUint(b, uint64(le.Uint16(e)), 10)
		case UINT32:
			b = strconv.AppendUint(b, uint64(le.Uint32(e)), 10)
		case UINT64:
			b = strconv.AppendUint(b, le.Uint64(e), 10)
		}
	}
	return b
}

func appendFloat(b []byte, f float64, bits int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, "null"...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, bits)
}
