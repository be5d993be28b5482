package inference

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unsafe"

	ort "github.com/yalue/onnxruntime_go"
)

// LibraryEnv names the environment variable that points at
// libonnxruntime.so when --ort-lib is not given.
const LibraryEnv = "MERIDIAN_ORT_LIB"

// libraryName is the file `make deps` fetches (ONNX Runtime 1.24.1).
const libraryName = "libonnxruntime.so.1"

// FindLibrary returns the ONNX Runtime shared library to load: explicit if
// set, else $MERIDIAN_ORT_LIB, else .cache/onnxruntime/libonnxruntime.so.1
// under the working directory or beside the binary's parent (where
// `make deps` puts it). The error says how to get it.
func FindLibrary(explicit string) (string, error) {
	if explicit == "" {
		explicit = os.Getenv(LibraryEnv)
	}
	if explicit != "" {
		if _, err := os.Stat(explicit); err != nil {
			return "", fmt.Errorf("ONNX Runtime library: %w", err)
		}
		return explicit, nil
	}
	candidates := []string{filepath.Join(".cache", "onnxruntime", libraryName)}
	if exe, err := os.Executable(); err == nil {
		dir := filepath.Dir(exe)
		candidates = append(candidates,
			filepath.Join(dir, "..", ".cache", "onnxruntime", libraryName),
			filepath.Join(dir, libraryName))
	}
	for _, c := range candidates {
		if _, err := os.Stat(c); err == nil {
			return filepath.Abs(c)
		}
	}
	return "", fmt.Errorf("ONNX Runtime library %s not found (looked in %s); run `make deps` in the Meridian checkout, or pass --ort-lib / set %s",
		libraryName, strings.Join(candidates, ", "), LibraryEnv)
}

var (
	initOnce sync.Once
	initErr  error
)

// InitRuntime loads the ONNX Runtime library and creates the process-wide
// environment. Later calls return the first call's result.
func InitRuntime(libraryPath string) error {
	initOnce.Do(func() {
		ort.SetSharedLibraryPath(libraryPath)
		if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
			initErr = fmt.Errorf("loading ONNX Runtime from %s: %w (Meridian needs ONNX Runtime 1.24.x; run `make deps`)", libraryPath, err)
		}
	})
	return initErr
}

// Device selects the ONNX Runtime execution provider.
type Device string

// The supported devices.
const (
	CPU  Device = "cpu"
	CUDA Device = "cuda"
)

// IOInfo describes one model input or output; -1 marks a dynamic dimension.
type IOInfo struct {
	Name     string   `json:"name"`
	Datatype DataType `json:"datatype"`
	Shape    []int64  `json:"shape"`
}

// session is one ONNX Runtime session shared by all workers of a model
// version; DynamicAdvancedSession.Run is safe for concurrent use.
type session struct {
	ort     *ort.DynamicAdvancedSession
	inputs  []IOInfo
	outputs []IOInfo
	device  Device
}

func openSession(spec ModelSpec, device Device) (*session, error) {
	ins, outs, err := ort.GetInputOutputInfo(spec.Path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", spec.Path, err)
	}
	s := &session{device: device}
	if s.inputs, err = ioInfos(ins); err != nil {
		return nil, err
	}
	if s.outputs, err = ioInfos(outs); err != nil {
		return nil, err
	}
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	defer func() { _ = opts.Destroy() }()
	if n := spec.Config.IntraOpThreads; n > 0 {
		if err := opts.SetIntraOpNumThreads(n); err != nil {
			return nil, err
		}
	}
	// Idle ORT threads would otherwise spin for a while after each run,
	// taking cores from the HTTP front and from other models.
	if err := opts.AddSessionConfigEntry("session.intra_op.allow_spinning", "0"); err != nil {
		return nil, err
	}
	if device == CUDA {
		if err := appendCUDA(opts); err != nil {
			return nil, err
		}
	}
	s.ort, err = ort.NewDynamicAdvancedSession(spec.Path, names(s.inputs), names(s.outputs), opts)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", spec.Path, err)
	}
	return s, nil
}

func appendCUDA(opts *ort.SessionOptions) error {
	cuda, err := ort.NewCUDAProviderOptions()
	if err == nil {
		defer func() { _ = cuda.Destroy() }()
		err = opts.AppendExecutionProviderCUDA(cuda)
	}
	if err != nil {
		return fmt.Errorf("--device cuda: the CUDA execution provider is not available (%w); it needs an NVIDIA driver, CUDA 12 and cuDNN 9, and libonnxruntime_providers_cuda.so beside the ONNX Runtime library; use --device cpu otherwise", err)
	}
	return nil
}

func names(infos []IOInfo) []string {
	out := make([]string, len(infos))
	for i, in := range infos {
		out[i] = in.Name
	}
	return out
}

func ioInfos(infos []ort.InputOutputInfo) ([]IOInfo, error) {
	out := make([]IOInfo, len(infos))
	for i, in := range infos {
		dt, ok := fromORT[in.DataType]
		if in.OrtValueType != ort.ONNXTypeTensor || !ok {
			return nil, fmt.Errorf("%s: %s %s is not supported (tensors of numbers or strings only)", in.Name, in.OrtValueType, in.DataType)
		}
		out[i] = IOInfo{Name: in.Name, Datatype: dt, Shape: append([]int64(nil), in.Dimensions...)}
	}
	return out, nil
}

var fromORT = map[ort.TensorElementDataType]DataType{
	ort.TensorElementDataTypeBool: BOOL, ort.TensorElementDataTypeUint8: UINT8,
	ort.TensorElementDataTypeUint16: UINT16, ort.TensorElementDataTypeUint32: UINT32,
	ort.TensorElementDataTypeUint64: UINT64, ort.TensorElementDataTypeInt8: INT8,
	ort.TensorElementDataTypeInt16: INT16, ort.TensorElementDataTypeInt32: INT32,
	ort.TensorElementDataTypeInt64: INT64, ort.TensorElementDataTypeFloat16: FP16,
	ort.TensorElementDataTypeFloat: FP32, ort.TensorElementDataTypeDouble: FP64,
	ort.TensorElementDataTypeString: BYTES,
}

var toORT = func() map[DataType]ort.TensorElementDataType {
	m := make(map[DataType]ort.TensorElementDataType, len(fromORT))
	for k, v := range fromORT {
		m[v] = k
	}
	return m
}()

// run feeds the inputs (in the model's input order) and returns every
// output.
func (s *session) run(inputs []*Tensor) ([]*Tensor, error) {
	values := make([]ort.Value, len(inputs))
	defer func() {
		for _, v := range values {
			if v != nil {
				_ = v.Destroy()
			}
		}
	}()
	for i, t := range inputs {
		v, err := toValue(t)
		if err != nil {
			return nil, fmt.Errorf("input %q: %w", t.Name, err)
		}
		values[i] = v
	}
	outs := make([]ort.Value, len(s.outputs))
	if err := s.ort.Run(values, outs); err != nil {
		return nil, err
	}
	result := make([]*Tensor, len(outs))
	var errs []error
	for i, v := range outs {
		t, err := fromValue(v)
		_ = v.Destroy()
		if err != nil {
			errs = append(errs, fmt.Errorf("output %q: %w", s.outputs[i].Name, err))
			continue
		}
		t.Name = s.outputs[i].Name
		result[i] = t
	}
	return result, errors.Join(errs...)
}

func toValue(t *Tensor) (ort.Value, error) {
	shape := ort.NewShape(t.Shape...)
	if t.Datatype == BYTES {
		st, err := ort.NewStringTensor(shape)
		if err != nil {
			return nil, err
		}
		if err := st.SetContents(t.Strings); err != nil {
			_ = st.Destroy()
			return nil, err
		}
		return st, nil
	}
	return ort.NewCustomDataTensor(shape, t.Raw, toORT[t.Datatype])
}

func fromValue(v ort.Value) (*Tensor, error) {
	t := &Tensor{Shape: append([]int64(nil), v.GetShape()...)}
	switch x := v.(type) {
	case *ort.StringTensor:
		s, err := x.GetContents()
		t.Datatype, t.Strings = BYTES, s
		return t, err
	case *ort.CustomDataTensor:
		dt, ok := fromORT[ort.TensorElementDataType(x.DataType())]
		if !ok {
			return nil, fmt.Errorf("unsupported element type %d", x.DataType())
		}
		t.Datatype, t.Raw = dt, x.GetData()
	case *ort.Tensor[float32]:
		t.Datatype, t.Raw = FP32, asBytes(x.GetData())
	case *ort.Tensor[float64]:
		t.Datatype, t.Raw = FP64, asBytes(x.GetData())
	case *ort.Tensor[int64]:
		t.Datatype, t.Raw = INT64, asBytes(x.GetData())
	case *ort.Tensor[int32]:
		t.Datatype, t.Raw = INT32, asBytes(x.GetData())
	case *ort.Tensor[int16]:
		t.Datatype, t.Raw = INT16, asBytes(x.GetData())
	case *ort.Tensor[int8]:
		t.Datatype, t.Raw = INT8, asBytes(x.GetData())
	case *ort.Tensor[uint64]:
		t.Datatype, t.Raw = UINT64, asBytes(x.GetData())
	case *ort.Tensor[uint32]:
		t.Datatype, t.Raw = UINT32, asBytes(x.GetData())
	case *ort.Tensor[uint16]:
		t.Datatype, t.Raw = UINT16, asBytes(x.GetData())
	case *ort.Tensor[uint8]:
		t.Datatype, t.Raw = UINT8, x.GetData()
	case *ort.Tensor[bool]:
		t.Datatype, t.Raw = BOOL, asBytes(x.GetData())
	default:
		return nil, fmt.Errorf("unsupported output value %T", v)
	}
	return t, nil
}

// asBytes views a numeric slice as its little-endian bytes (amd64 and
// arm64 are little-endian). The Go-managed slice outlives the ORT value.
func asBytes[T any](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	var zero T
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), len(s)*int(unsafe.Sizeof(zero)))
}
