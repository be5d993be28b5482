package oipgrpc_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"meridian.dev/meridian/inference/oip"
	"meridian.dev/meridian/internal/oipgrpc"
)

// frame is a message as a unary gRPC call's body carries it.
func frame(msg []byte) []byte {
	b := []byte{0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(len(msg)))
	return append(b, msg...)
}

func marshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestModel(t *testing.T) {
	infer := marshal(t, &oip.ModelInferRequest{
		Id:               "req-1", // a field before and after the name, in any order
		ModelName:        "sentiment",
		ModelVersion:     "2",
		Inputs:           []*oip.ModelInferRequest_InferInputTensor{{Name: "text", Datatype: "BYTES", Shape: []int64{1}}},
		RawInputContents: [][]byte{[]byte("\x04\x00\x00\x00good")},
	})
	twice := protowire.AppendString(protowire.AppendTag(bytes.Clone(infer), 1, protowire.BytesType), "secret")
	compressed := frame(infer)
	compressed[0] = 1
	cases := []struct {
		name, path string
		body       []byte
		want, err  string
	}{
		{"infer", oipgrpc.Service + "ModelInfer", frame(infer), "sentiment", ""},
		{"metadata", oipgrpc.Service + "ModelMetadata", frame(marshal(t, &oip.ModelMetadataRequest{Name: "textdir", Version: "1"})), "textdir", ""},
		{"ready", oipgrpc.Service + "ModelReady", frame(marshal(t, &oip.ModelReadyRequest{Name: "textdir"})), "textdir", ""},
		{"the last name wins, as in a decoder", oipgrpc.Service + "ModelInfer", frame(twice), "secret", ""},
		{"server-level", oipgrpc.Service + "ServerLive", frame(nil), "", "names no model"},
		{"another service", "/grpc.health.v1.Health/Check", frame(infer), "", "names no model"},
		{"no name", oipgrpc.Service + "ModelInfer", frame(marshal(t, &oip.ModelInferRequest{Id: "x"})), "", "names no model"},
		{"compressed", oipgrpc.Service + "ModelInfer", compressed, "", "send it uncompressed"},
		{"two messages", oipgrpc.Service + "ModelInfer", append(frame(infer), frame(infer)...), "", "exactly one message"},
		{"cut short", oipgrpc.Service + "ModelInfer", frame(infer)[:20], "", "exactly one message"},
		{"no header", oipgrpc.Service + "ModelInfer", []byte{0, 0}, "", "not one gRPC message"},
		{"malformed", oipgrpc.Service + "ModelInfer", frame([]byte{0x0a, 0x7f, 'a'}), "", "malformed"},
	}
	for _, tc := range cases {
		got, err := oipgrpc.Model(tc.path, tc.body)
		if got != tc.want || (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: %q, %v; want %q and an error containing %q", tc.name, got, err, tc.want, tc.err)
		}
	}
	if _, err := oipgrpc.Model(oipgrpc.Service+"ServerReady", nil); !errors.Is(err, oipgrpc.ErrNoModel) {
		t.Errorf("server-level call: %v, want ErrNoModel", err)
	}
}

func call(body []byte) *http.Request {
	r, _ := http.NewRequest(http.MethodPost, "http://x"+oipgrpc.Service+"ModelInfer", bytes.NewReader(body))
	r.ProtoMajor = 2
	r.Header.Set("Content-Type", "application/grpc")
	return r
}

func TestReadModelPutsTheBodyBack(t *testing.T) {
	body := frame(marshal(t, &oip.ModelInferRequest{ModelName: "sentiment", RawInputContents: [][]byte{make([]byte, 4096)}}))
	r := call(body)
	if m, err := oipgrpc.ReadModel(r, 1<<20); m != "sentiment" || err != nil {
		t.Fatalf("ReadModel: %q %v", m, err)
	}
	if again, _ := io.ReadAll(r.Body); !bytes.Equal(again, body) {
		t.Error("the handler does not get the body the client sent")
	}
	// Over the limit: no model, and the handler still reads every byte
	// (to refuse the call with its own limit).
	r = call(body)
	if m := oipgrpc.PolicyModel(r, 100); m != oipgrpc.Unreadable {
		t.Errorf("over the limit: %q, want Unreadable", m)
	}
	if again, _ := io.ReadAll(r.Body); !bytes.Equal(again, body) {
		t.Errorf("over the limit the handler reads %d of %d bytes", len(again), len(body))
	}
	if m := oipgrpc.PolicyModel(call(frame(nil)), 100); m != oipgrpc.Unreadable {
		t.Errorf("a message with no model: %q, want Unreadable", m)
	}
}

func TestIsCall(t *testing.T) {
	for ct, want := range map[string]bool{"application/grpc": true, "application/grpc+proto": true, "application/grpc;charset=x": true, "application/grpc-web": false, "application/json": false} {
		r := call(nil)
		r.Header.Set("Content-Type", ct)
		if oipgrpc.IsCall(r) != want {
			t.Errorf("%s over HTTP/2: %v", ct, !want)
		}
	}
	r := call(nil)
	r.ProtoMajor = 1
	if oipgrpc.IsCall(r) {
		t.Error("an HTTP/1.1 request is not a gRPC call")
	}
}

func FuzzModel(f *testing.F) {
	f.Add(frame([]byte{0x0a, 3, 'a', 'b', 'c'}))
	f.Add(frame([]byte{0x12, 1, '2', 0x0a, 1, 'm'}))
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := oipgrpc.Model(oipgrpc.Service+"ModelInfer", body)
		if (m == "") == (err == nil) {
			t.Fatalf("model %q with error %v", m, err)
		}
		if err == nil {
			var req oip.ModelInferRequest
			if perr := proto.Unmarshal(body[5:], &req); perr == nil && req.ModelName != m {
				t.Fatalf("read %q, a decoder reads %q", m, req.ModelName)
			}
		}
	})
}
