package inference

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestDecodeJSONDataAllTypes(t *testing.T) {
	le := binary.LittleEndian
	cases := []struct {
		dt   DataType
		data string
		raw  []byte
	}{
		{BOOL, `[true,false]`, []byte{1, 0}},
		{UINT8, `[0,255]`, []byte{0, 255}},
		{INT8, `[-128,127]`, []byte{0x80, 0x7f}},
		{UINT16, `[65535,1]`, le.AppendUint16(le.AppendUint16(nil, 65535), 1)},
		{INT16, `[-2,3]`, le.AppendUint16(le.AppendUint16(nil, 0xfffe), 3)},
		{INT32, `[[-1],[7]]`, le.AppendUint32(le.AppendUint32(nil, 0xffffffff), 7)},
		{UINT32, `[4294967295,0]`, le.AppendUint32(le.AppendUint32(nil, 0xffffffff), 0)},
		{INT64, `[ -9223372036854775808 , 9223372036854775807 ]`, le.AppendUint64(le.AppendUint64(nil, 1<<63), 1<<63-1)},
		{UINT64, `[18446744073709551615,2]`, le.AppendUint64(le.AppendUint64(nil, math.MaxUint64), 2)},
		{FP32, `[[1.5],[-2e-3]]`, le.AppendUint32(le.AppendUint32(nil, math.Float32bits(1.5)), math.Float32bits(-2e-3))},
		{FP64, `[0.1,1e300]`, le.AppendUint64(le.AppendUint64(nil, math.Float64bits(0.1)), math.Float64bits(1e300))},
		{FP16, `[1,-0.5]`, []byte{0x00, 0x3c, 0x00, 0xb8}},
	}
	for _, c := range cases {
		tensor := &Tensor{Name: "in", Datatype: c.dt, Shape: []int64{2, 1}}
		if err := decodeJSONData(tensor, []byte(c.data)); err != nil {
			t.Errorf("%s %s: %v", c.dt, c.data, err)
			continue
		}
		if !reflect.DeepEqual(tensor.Raw, c.raw) {
			t.Errorf("%s %s: raw %v, want %v", c.dt, c.data, tensor.Raw, c.raw)
		}
		// And back: the response encoder writes the same numbers.
		out := string(appendJSONData(nil, tensor))
		var back, want []any
		_ = json.Unmarshal([]byte("["+out+"]"), &back)
		_ = json.Unmarshal([]byte(strings.NewReplacer("[[", "[", "]]", "]", "],[", ",").Replace(c.data)), &want)
		if c.dt != FP32 && c.dt != FP16 && !reflect.DeepEqual(back, want) {
			t.Errorf("%s: encoded %s, want %v", c.dt, out, want)
		}
	}
	for _, c := range []struct {
		dt   DataType
		data string
		want string
	}{
		{UINT8, `[256,1]`, "out of range"},
		{INT8, `[1.5,1]`, "not a number of this type"},
		{UINT32, `[-1,1]`, "not a number"},
		{BOOL, `[1,0]`, "true or false"},
		{FP16, `[70000,1]`, "out of range"},
		{FP32, `[1e39,1]`, "out of range"},
		{BYTES, `["a\x"]`, "invalid"},
		{BYTES, `["abc`, "unterminated"},
	} {
		tensor := &Tensor{Name: "in", Datatype: c.dt, Shape: []int64{2}}
		err := decodeJSONData(tensor, []byte(c.data))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %s: got %v, want %q", c.dt, c.data, err, c.want)
		}
	}
}

func TestFloat16RoundTrip(t *testing.T) {
	for _, f := range []float32{0, 1, -1, 0.5, 65504, -65504, 6.1035156e-05, 5.9604645e-08, 0.33325195} {
		if got := float16ToFloat32(float16bits(f)); got != f {
			t.Errorf("%v -> %#04x -> %v", f, float16bits(f), got)
		}
	}
	if h := float16bits(1 + 1.0/4096); h != 0x3c00 { // ties round to even
		t.Errorf("1+2^-12 rounded to %#04x", h)
	}
}

func TestBinaryBytesTensor(t *testing.T) {
	var blob []byte
	for _, s := range []string{"héllo", "", "x"} {
		blob = binary.LittleEndian.AppendUint32(blob, uint32(len(s)))
		blob = append(blob, s...)
	}
	header := `{"inputs":[{"name":"t","datatype":"BYTES","shape":[3],"parameters":{"binary_data_size":` + itoa(len(blob)) + `}}]}`
	req, err := DecodeInferRequest(append([]byte(header), blob...), int64(len(header)))
	if err != nil {
		t.Fatal(err)
	}
	if got := req.Inputs[0].Strings; !reflect.DeepEqual(got, []string{"héllo", "", "x"}) {
		t.Fatalf("strings %q", got)
	}
	out, hl := EncodeInferResponse(&InferResponse{ModelName: "m", ModelVersion: "1", Outputs: req.Inputs, Binary: []bool{true}})
	if string(out[hl:]) != string(blob) {
		t.Fatalf("BYTES output blob %q, want %q", out[hl:], blob)
	}
	for _, bad := range [][]byte{blob[:len(blob)-1], append(blob, 0)} {
		h := `{"inputs":[{"name":"t","datatype":"BYTES","shape":[3],"parameters":{"binary_data_size":` + itoa(len(bad)) + `}}]}`
		if _, err := DecodeInferRequest(append([]byte(h), bad...), int64(len(h))); err == nil {
			t.Errorf("accepted a malformed BYTES blob of %d bytes", len(bad))
		}
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestEncodeInferResponseIsValidJSON(t *testing.T) {
	nan := binary.LittleEndian.AppendUint32(nil, math.Float32bits(float32(math.NaN())))
	out, hl := EncodeInferResponse(&InferResponse{
		ModelName: "m\"odel", ModelVersion: "1", ID: "id\n1",
		Outputs: []*Tensor{
			{Name: "p", Datatype: FP32, Shape: []int64{2}, Raw: append(nan, 0, 0, 0x80, 0x3f)},
			{Name: "s", Datatype: BYTES, Shape: []int64{1}, Strings: []string{"quote\" \x00"}},
		},
	})
	if hl != -1 {
		t.Fatalf("all-JSON response has header length %d", hl)
	}
	var v map[string]any
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	if !strings.Contains(string(out), `"data":[null,1]`) {
		t.Errorf("NaN should be written as null: %s", out)
	}
}

func TestConcatPadsAndSliceRowsSplits(t *testing.T) {
	a := &Tensor{Name: "t", Datatype: BYTES, Shape: []int64{1, 2}, Strings: []string{"a", "b"}}
	b := &Tensor{Name: "t", Datatype: BYTES, Shape: []int64{2, 3}, Strings: []string{"c", "d", "e", "f", "g", "h"}}
	got := concat([]*Tensor{a, b}, true)
	if !reflect.DeepEqual(got.Shape, []int64{3, 3}) || !reflect.DeepEqual(got.Strings, []string{"a", "b", "", "c", "d", "e", "f", "g", "h"}) {
		t.Fatalf("padded concat: %v %q", got.Shape, got.Strings)
	}
	n := &Tensor{Name: "n", Datatype: INT16, Shape: []int64{1, 1}, Raw: []byte{1, 0}}
	m := &Tensor{Name: "n", Datatype: INT16, Shape: []int64{1, 2}, Raw: []byte{2, 0, 3, 0}}
	if got := concat([]*Tensor{n, m}, true); !reflect.DeepEqual(got.Raw, []byte{1, 0, 0, 0, 2, 0, 3, 0}) {
		t.Fatalf("padded numeric concat: %v", got.Raw)
	}
	out := &Tensor{Name: "o", Datatype: FP32, Shape: []int64{3, 2}, Raw: make([]byte, 24)}
	for i := range out.Raw {
		out.Raw[i] = byte(i)
	}
	s := out.sliceRows(1, 2)
	if !reflect.DeepEqual(s.Shape, []int64{2, 2}) || s.Raw[0] != 8 || len(s.Raw) != 16 {
		t.Fatalf("sliceRows: %v %v", s.Shape, s.Raw)
	}
}

func TestTokenize(t *testing.T) {
	for in, want := range map[string][]string{
		"I love this, it is AMAZING!":     {"i", "love", "this", "it", "is", "amazing"},
		"Can't stand it — a cover-up.":    {"can't", "stand", "it", "a", "cover-up"},
		"It doesn’t work 'quoted' -dash-": {"it", "doesn't", "work", "quoted", "dash"},
		"Ünïcode wörds 123":               {"ünïcode", "wörds", "123"},
		"  ... ":                          nil,
	} {
		if got := Tokenize(in); !reflect.DeepEqual(got, want) {
			t.Errorf("Tokenize(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzDecodeInferRequest feeds arbitrary bodies to the decoder: it must
// never panic, and whatever it accepts must be internally consistent. The
// seed corpus runs in every `make test`; `make fuzz` explores further.
func FuzzDecodeInferRequest(f *testing.F) {
	f.Add([]byte(`{"inputs":[{"name":"x","datatype":"FP32","shape":[1,2],"data":[1,2]}]}`), int64(-1))
	f.Add([]byte(`{"id":"a","inputs":[{"name":"t","datatype":"BYTES","shape":[2],"data":["a","\u00e9"]}],"outputs":[{"name":"o","parameters":{"binary_data":true}}]}`), int64(-1))
	f.Add([]byte(`{"inputs":[{"name":"x","datatype":"INT64","shape":[2,2],"data":[[1,2],[3,4]]}],"parameters":{"binary_data_output":true,"timeout":5}}`), int64(-1))
	f.Add([]byte(`{"inputs":[{"name":"x","datatype":"UINT8","shape":[3],"parameters":{"binary_data_size":3}}]}abc`), int64(78))
	f.Add([]byte(`{"inputs":[{"name":"x","datatype":"BOOL","shape":[1],"data":[true]}]}`), int64(-1))
	f.Add([]byte(`{"inputs":[{"name":"x","datatype":"FP16","shape":[9999999999,9999999999],"data":[1]}]}`), int64(-1))
	f.Add([]byte(`{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[[[[[1e999]]]]]}]}`), int64(-1))
	f.Add([]byte(`{"inputs":[{"name":"x","datatype":"BYTES","shape":[1],"parameters":{"binary_data_size":4}}]}`+"\xff\xff\xff\xff"), int64(77))
	f.Add([]byte(`{"inputs":`), int64(-1))
	f.Fuzz(func(t *testing.T, body []byte, headerLength int64) {
		req, err := DecodeInferRequest(body, headerLength)
		if err != nil {
			return
		}
		for _, in := range req.Inputs {
			if err := in.Validate(); err != nil {
				t.Fatalf("accepted an invalid tensor: %v", err)
			}
		}
		out, hl := EncodeInferResponse(&InferResponse{ModelName: "m", ModelVersion: "1", ID: req.ID, Outputs: req.Inputs})
		if hl != -1 || !json.Valid(out) {
			t.Fatalf("echoing the inputs gave invalid JSON: %s", out)
		}
	})
}
