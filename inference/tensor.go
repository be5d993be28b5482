package inference

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
)

// DataType is an Open Inference Protocol tensor element type name.
type DataType string

// The element types the server accepts and returns.
const (
	BOOL   DataType = "BOOL"
	UINT8  DataType = "UINT8"
	UINT16 DataType = "UINT16"
	UINT32 DataType = "UINT32"
	UINT64 DataType = "UINT64"
	INT8   DataType = "INT8"
	INT16  DataType = "INT16"
	INT32  DataType = "INT32"
	INT64  DataType = "INT64"
	FP16   DataType = "FP16"
	FP32   DataType = "FP32"
	FP64   DataType = "FP64"
	BYTES  DataType = "BYTES"
)

// Size is the width of one element in bytes; 0 for BYTES, whose elements
// vary in length, and for unknown types.
func (d DataType) Size() int {
	switch d {
	case BOOL, UINT8, INT8:
		return 1
	case UINT16, INT16, FP16:
		return 2
	case UINT32, INT32, FP32:
		return 4
	case UINT64, INT64, FP64:
		return 8
	}
	return 0
}

// Valid reports whether d is one of the supported element types.
func (d DataType) Valid() bool { return d == BYTES || d.Size() > 0 }

// Tensor is one named input or output. Numeric elements are kept as their
// little-endian bytes (the layout ONNX Runtime and the OIP binary extension
// use), so a tensor moves from the wire to the model without conversion.
type Tensor struct {
	Name     string
	Datatype DataType
	Shape    []int64
	// Raw holds the elements of a numeric tensor, row-major, little-endian.
	Raw []byte
	// Strings holds the elements of a BYTES tensor, row-major.
	Strings []string
}

// Elements is the number of elements the shape describes.
func Elements(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	return n
}

// maxElements bounds any one tensor's element count so that shape
// arithmetic cannot overflow; the body limit bounds real sizes far below it.
const maxElements = 1 << 40

// checkShape rejects negative dimensions and element counts that overflow.
func checkShape(shape []int64) error {
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return fmt.Errorf("shape %v has a negative dimension", shape)
		}
		if d > 0 && n > maxElements/d {
			return fmt.Errorf("shape %v has too many elements", shape)
		}
		n *= d
	}
	return nil
}

// Validate checks that the data agrees with the datatype and shape and,
// for floating-point tensors, that every element is finite.
func (t *Tensor) Validate() error {
	if !t.Datatype.Valid() {
		return fmt.Errorf("input %q: unsupported datatype %q", t.Name, t.Datatype)
	}
	if err := checkShape(t.Shape); err != nil {
		return fmt.Errorf("input %q: %w", t.Name, err)
	}
	n := Elements(t.Shape)
	if t.Datatype == BYTES {
		if int64(len(t.Strings)) != n {
			return fmt.Errorf("input %q: shape %v needs %d elements, got %d", t.Name, t.Shape, n, len(t.Strings))
		}
		return nil
	}
	if want := n * int64(t.Datatype.Size()); int64(len(t.Raw)) != want {
		return fmt.Errorf("input %q: shape %v of %s needs %d bytes, got %d", t.Name, t.Shape, t.Datatype, want, len(t.Raw))
	}
	return checkFinite(t)
}

// checkFinite rejects NaN and ±Inf: a model fed them answers garbage, and
// JSON cannot carry them back.
func checkFinite(t *Tensor) error {
	switch t.Datatype {
	case FP32:
		// An exponent of all ones is NaN or ±Inf; testing the bits avoids
		// converting 27k floats per image.
		for i := 0; i+4 <= len(t.Raw); i += 4 {
			if binary.LittleEndian.Uint32(t.Raw[i:])&0x7f800000 == 0x7f800000 {
				f := math.Float32frombits(binary.LittleEndian.Uint32(t.Raw[i:]))
				return fmt.Errorf("input %q: element %d is %v; only finite numbers are accepted", t.Name, i/4, f)
			}
		}
	case FP64:
		for i := 0; i+8 <= len(t.Raw); i += 8 {
			f := math.Float64frombits(binary.LittleEndian.Uint64(t.Raw[i:]))
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return fmt.Errorf("input %q: element %d is %v; only finite numbers are accepted", t.Name, i/8, f)
			}
		}
	case FP16:
		for i := 0; i+2 <= len(t.Raw); i += 2 {
			if binary.LittleEndian.Uint16(t.Raw[i:])&0x7c00 == 0x7c00 {
				return fmt.Errorf("input %q: element %d is NaN or infinite; only finite numbers are accepted", t.Name, i/2)
			}
		}
	}
	return nil
}

// rows is the size of the batch dimension, the first one.
func (t *Tensor) rows() int64 {
	if len(t.Shape) == 0 {
		return 0
	}
	return t.Shape[0]
}

// rowElements is the number of elements in one row of the batch.
func (t *Tensor) rowElements() int64 { return Elements(t.Shape[1:]) }

// shapeKey describes the non-batch part of the shape, which must agree for
// two requests to share a batch. When padded, the last dimension is left
// out: requests differing only there are padded to the longest.
func (t *Tensor) shapeKey(padded bool) string {
	var b strings.Builder
	b.WriteString(string(t.Datatype))
	dims := t.Shape[1:]
	if padded && len(dims) > 0 {
		dims = dims[:len(dims)-1]
	}
	for _, d := range dims {
		fmt.Fprintf(&b, ",%d", d)
	}
	return b.String()
}

// concat joins the tensors along the batch dimension. When pad is set, the
// last dimension is grown to the longest among them, filling with zero
// bytes or empty strings.
func concat(parts []*Tensor, pad bool) *Tensor {
	first := parts[0]
	out := &Tensor{Name: first.Name, Datatype: first.Datatype, Shape: append([]int64(nil), first.Shape...)}
	var rows int64
	last := len(out.Shape) - 1
	for _, p := range parts {
		rows += p.rows()
		if pad && last > 0 && p.Shape[last] > out.Shape[last] {
			out.Shape[last] = p.Shape[last]
		}
	}
	out.Shape[0] = rows
	if len(parts) == 1 && (!pad || last < 1 || out.Shape[last] == first.Shape[last]) {
		out.Raw, out.Strings = first.Raw, first.Strings
		return out
	}
	size := int64(out.Datatype.Size())
	if out.Datatype == BYTES {
		out.Strings = make([]string, 0, Elements(out.Shape))
	} else {
		out.Raw = make([]byte, 0, Elements(out.Shape)*size)
	}
	for _, p := range parts {
		if !pad || last < 1 || p.Shape[last] == out.Shape[last] {
			out.Raw = append(out.Raw, p.Raw...)
			out.Strings = append(out.Strings, p.Strings...)
			continue
		}
		// Pad each innermost run from p.Shape[last] to out.Shape[last].
		have, want := p.Shape[last], out.Shape[last]
		runs := Elements(p.Shape[:last])
		for r := int64(0); r < runs; r++ {
			if out.Datatype == BYTES {
				out.Strings = append(out.Strings, p.Strings[r*have:(r+1)*have]...)
				for i := have; i < want; i++ {
					out.Strings = append(out.Strings, "")
				}
				continue
			}
			out.Raw = append(out.Raw, p.Raw[r*have*size:(r+1)*have*size]...)
			out.Raw = append(out.Raw, make([]byte, (want-have)*size)...)
		}
	}
	return out
}

// sliceRows returns rows [from, from+n) of a batched output, sharing its
// memory.
func (t *Tensor) sliceRows(from, n int64) *Tensor {
	shape := append([]int64{n}, t.Shape[1:]...)
	out := &Tensor{Name: t.Name, Datatype: t.Datatype, Shape: shape}
	per := t.rowElements()
	if t.Datatype == BYTES {
		out.Strings = t.Strings[from*per : (from+n)*per]
	} else {
		size := int64(t.Datatype.Size())
		out.Raw = t.Raw[from*per*size : (from+n)*per*size]
	}
	return out
}
