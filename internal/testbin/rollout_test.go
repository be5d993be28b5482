package testbin

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	ort "github.com/yalue/onnxruntime_go"
)

// ortSentimentSession writes the model build returns to a file, checks
// its build is reproducible and, in ONNX Runtime itself, that it has the
// sentiment model's inputs and outputs, and returns a session on it with
// every graph optimisation on (so constant folding had its chance). The
// ONNX Runtime environment lasts until the test ends.
func ortSentimentSession(t *testing.T, build func() ([]byte, error)) *ort.DynamicAdvancedSession {
	t.Helper()
	lib := ORTLibrary(t)
	b, err := build()
	if err != nil {
		t.Fatal(err)
	}
	again, err := build()
	if err != nil || string(again) != string(b) {
		t.Fatalf("two builds differ (%v)", err)
	}
	path := filepath.Join(t.TempDir(), "model.onnx")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	ort.SetSharedLibraryPath(lib)
	if err := ort.InitializeEnvironment(); err != nil {
		t.Fatalf("initializing ONNX Runtime from %s: %v", lib, err)
	}
	t.Cleanup(func() { _ = ort.DestroyEnvironment() })

	ins, outs, err := ort.GetInputOutputInfo(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(ins) != 1 || ins[0].Name != "tokens" || ins[0].DataType != ort.TensorElementDataTypeString ||
		!slices.Equal(ins[0].Dimensions, ort.NewShape(-1, -1)) {
		t.Errorf("inputs %v, want tokens STRING [-1 -1]", ins)
	}
	if len(outs) != 2 || outs[0].Name != "score" || outs[1].Name != "p_pos" {
		t.Fatalf("outputs %v, want score and p_pos", outs)
	}
	for _, o := range outs {
		if o.DataType != ort.TensorElementDataTypeFloat || !slices.Equal(o.Dimensions, ort.NewShape(-1, 1)) {
			t.Errorf("output %v, want FLOAT [-1 1]", o)
		}
	}

	opts, err := ort.NewSessionOptions()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = opts.Destroy() }()
	if err := opts.SetGraphOptimizationLevel(ort.GraphOptimizationLevelEnableAll); err != nil {
		t.Fatal(err)
	}
	s, err := ort.NewDynamicAdvancedSession(path, []string{"tokens"}, []string{"score", "p_pos"}, opts)
	if err != nil {
		t.Fatalf("the model must load: %v", err)
	}
	// Registered after the environment's cleanup, so it runs before it.
	t.Cleanup(func() { _ = s.Destroy() })
	return s
}

// TestFailingSentimentModel runs FailingSentimentModel in ONNX Runtime
// itself: it loads, with every graph optimisation on, with the sentiment
// model's inputs and outputs, and every run fails, whatever the batch and
// row length.
func TestFailingSentimentModel(t *testing.T) {
	s := ortSentimentSession(t, FailingSentimentModel)
	for _, shape := range [][2]int64{{1, 1}, {1, 6}, {3, 2}, {64, 40}} {
		in, err := ort.NewStringTensor(ort.NewShape(shape[0], shape[1]))
		if err != nil {
			t.Fatal(err)
		}
		// Nil outputs: ONNX Runtime allocates them, as for a dynamic batch.
		outputs := []ort.Value{nil, nil}
		err = s.Run([]ort.Value{in}, outputs)
		_ = in.Destroy()
		for _, o := range outputs {
			if o != nil {
				_ = o.Destroy()
			}
		}
		if err == nil {
			t.Errorf("tokens %v: the run succeeded; it must fail", shape)
			continue
		}
		if !strings.Contains(err.Error(), "out_of_range") && !strings.Contains(err.Error(), "Gather") {
			t.Errorf("tokens %v: %v, want the failing Gather named", shape, err)
		}
		t.Logf("tokens %v: %v", shape, err)
	}
}

// TestDriftingSentimentModel runs DriftingSentimentModel in ONNX Runtime
// itself: it loads, with every graph optimisation on, with the sentiment
// model's inputs and outputs, and every run answers one row per input row,
// each with score -3 and p_pos sigmoid(-3), whatever the text.
func TestDriftingSentimentModel(t *testing.T) {
	s := ortSentimentSession(t, DriftingSentimentModel)
	for _, rows := range [][][]string{
		{{"i", "love", "this", "it", "is", "amazing"}, {"this", "is", "not", "good", "", ""}},
		{{"good"}},
		{{"terrible", "awful"}, {"great", "superb"}, {"", ""}, {"love", "love"}, {"meh", ""}},
	} {
		n, width := int64(len(rows)), int64(len(rows[0]))
		in, err := ort.NewStringTensor(ort.NewShape(n, width))
		if err != nil {
			t.Fatal(err)
		}
		if err := in.SetContents(slices.Concat(rows...)); err != nil {
			t.Fatal(err)
		}
		// Nil outputs: ONNX Runtime allocates them, as for a dynamic batch.
		outputs := []ort.Value{nil, nil}
		err = s.Run([]ort.Value{in}, outputs)
		_ = in.Destroy()
		t.Cleanup(func() {
			for _, o := range outputs {
				if o != nil {
					_ = o.Destroy()
				}
			}
		})
		if err != nil {
			t.Fatalf("tokens %v: %v, want a successful run", rows, err)
		}
		for i, name := range []string{"score", "p_pos"} {
			o, ok := outputs[i].(*ort.Tensor[float32])
			if !ok {
				t.Fatalf("tokens %v: %s is %T, want a float32 tensor", rows, name, outputs[i])
			}
			if !slices.Equal(o.GetShape(), ort.NewShape(n, 1)) {
				t.Errorf("tokens %v: %s shape %v, want [%d 1]", rows, name, o.GetShape(), n)
			}
			want := float64(DriftingScore)
			if name == "p_pos" {
				want = sigmoid(DriftingScore)
			}
			for r, got := range o.GetData() {
				if math.Abs(float64(got)-want) > 1e-6 {
					t.Errorf("tokens %v: row %d %s %v, want %v", rows, r, name, got, want)
				}
			}
			t.Logf("tokens %v: %s %v", rows, name, o.GetData())
		}
	}
}

// serveReplica runs the real `meridian serve` on repo (plus args) on a
// loopback port until the test ends, waits until it is ready, and returns
// its base URL and its log.
func serveReplica(t *testing.T, bin, repo string, args ...string) (string, *Buffer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	log := &Buffer{}
	cmd := exec.Command(bin, append([]string{"serve", "--listen", addr, "--models", repo,
		"--ort-lib", ORTLibrary(t), "--cache-size", "0"}, args...)...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	url := "http://" + addr
	Eventually(t, "meridian serve "+strings.Join(args, " ")+" ready", 60*time.Second, func() (bool, string) {
		select {
		case <-exited:
			t.Fatalf("meridian serve exited before it was ready:\n%s", log)
		default:
		}
		code, _ := httpDo(t, http.MethodGet, url+"/v2/health/ready", "")
		return code == http.StatusOK, fmt.Sprint(code)
	})
	return url, log
}

// httpDo sends one request and returns the status and body (status 0 when
// no answer came).
func httpDo(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	code, text, _ := httpDoHeader(t, method, url, body)
	return code, text
}

// httpDoHeader is httpDo that returns the answer's header too.
func httpDoHeader(t *testing.T, method, url, body string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error(), nil
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// headerModelVersion is inference.HeaderModelVersion: the answer header
// naming the version that answered, or failed to.
const headerModelVersion = "Meridian-Model-Version"

// inferAnswer is the part of an Open Inference Protocol answer (or error)
// the test reads.
type inferAnswer struct {
	ModelName    string `json:"model_name"`
	ModelVersion string `json:"model_version"`
	Outputs      []struct {
		Name string    `json:"name"`
		Data []float64 `json:"data"`
	} `json:"outputs"`
	Error string `json:"error"`
}

// rolloutBody scores "i love this it is amazing" (AFINN 7: love +3,
// amazing +4) and "this is not good" (-2).
const rolloutBody = `{"inputs":[{"name":"tokens","datatype":"BYTES","shape":[2,6],"data":[["i","love","this","it","is","amazing"],["this","is","not","good","",""]]}]}`

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// infer POSTs rolloutBody to path and decodes the answer.
func infer(t *testing.T, url, path string) (int, inferAnswer, http.Header) {
	t.Helper()
	code, text, h := httpDoHeader(t, http.MethodPost, url+path, rolloutBody)
	var a inferAnswer
	if err := json.Unmarshal([]byte(text), &a); err != nil {
		t.Fatalf("POST %s: %d %q: %v", path, code, text, err)
	}
	return code, a, h
}

// checkGood checks a 200 answer of sentiment version v, whose p_pos is
// sigmoid(scale × score), and returns its p_pos.
func checkGood(t *testing.T, url, path, version string, scale float64) []float64 {
	t.Helper()
	code, a, h := infer(t, url, path)
	if code != http.StatusOK || a.ModelName != "sentiment" || a.ModelVersion != version || len(a.Outputs) != 2 {
		t.Fatalf("POST %s: %d %+v, want 200 from sentiment version %s with score and p_pos", path, code, a, version)
	}
	if got := h.Get(headerModelVersion); got != version {
		t.Errorf("POST %s: %s %q, want %q", path, headerModelVersion, got, version)
	}
	for i, score := range []float64{7, -2} {
		if a.Outputs[0].Data[i] != score {
			t.Errorf("POST %s: row %d score %v, want %v", path, i, a.Outputs[0].Data[i], score)
		}
		if got, want := a.Outputs[1].Data[i], sigmoid(scale*score); math.Abs(got-want) > 1e-6 {
			t.Errorf("POST %s: row %d p_pos %v, want sigmoid(%g × %g) = %v", path, i, got, scale, score, want)
		}
	}
	return a.Outputs[1].Data
}

// checkFails checks that a request reaching sentiment's failing version
// answers 500 with an error naming the model and version, and the version
// in the Meridian-Model-Version header.
func checkFails(t *testing.T, url, method, path, body string) {
	t.Helper()
	code, text, h := httpDoHeader(t, method, url+path, body)
	var e struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal([]byte(text), &e)
	want := fmt.Sprintf("model sentiment version %d failed", FailingVersion)
	if code != http.StatusInternalServerError || !strings.Contains(e.Error, want) {
		t.Errorf("%s %s: %d %s, want 500 with an error containing %q", method, path, code, text, want)
	}
	if got := h.Get(headerModelVersion); got != fmt.Sprint(FailingVersion) {
		t.Errorf("%s %s: %s %q, want %d", method, path, headerModelVersion, got, FailingVersion)
	}
	t.Logf("%s %s: %d %s", method, path, code, strings.TrimSpace(text))
}

// checkDrifting checks a 200 answer of sentiment's drifting version to
// rolloutBody: both rows, whatever their text, score DriftingScore with
// p_pos sigmoid(DriftingScore).
func checkDrifting(t *testing.T, url, path string) {
	t.Helper()
	code, a, h := infer(t, url, path)
	version := fmt.Sprint(DriftingVersion)
	if code != http.StatusOK || a.ModelName != "sentiment" || a.ModelVersion != version || len(a.Outputs) != 2 {
		t.Fatalf("POST %s: %d %+v, want 200 from sentiment version %s with score and p_pos", path, code, a, version)
	}
	if got := h.Get(headerModelVersion); got != version {
		t.Errorf("POST %s: %s %q, want %q", path, headerModelVersion, got, version)
	}
	for i, want := range []float64{DriftingScore, sigmoid(DriftingScore)} {
		if len(a.Outputs[i].Data) != 2 {
			t.Errorf("POST %s: %s %v, want 2 rows", path, a.Outputs[i].Name, a.Outputs[i].Data)
		}
		for r, got := range a.Outputs[i].Data {
			if math.Abs(got-want) > 1e-6 {
				t.Errorf("POST %s: row %d %s %v, want %v", path, r, a.Outputs[i].Name, got, want)
			}
		}
	}
}

// analyze POSTs text to /analyze and checks the answer is 200 with label
// and confidence; it returns the answer's version header.
func analyze(t *testing.T, url, text, label string, confidence float64) string {
	t.Helper()
	body, err := json.Marshal(map[string]string{"text": text})
	if err != nil {
		t.Fatal(err)
	}
	code, answer, h := httpDoHeader(t, http.MethodPost, url+"/analyze", string(body))
	var a struct {
		Label string  `json:"label"`
		Score float64 `json:"score"`
	}
	_ = json.Unmarshal([]byte(answer), &a)
	if code != http.StatusOK || a.Label != label || math.Abs(a.Score-confidence) > 1e-6 {
		t.Errorf("POST /analyze %q: %d %s, want 200 %s with score %v", text, code, answer, label, confidence)
	}
	return h.Get(headerModelVersion)
}

// TestRolloutModels serves RolloutModels with the real `meridian serve`:
// every version loads and the replica is ready; versions 1 and 2 answer
// with their own calibrations; every request that reaches version 3 fails
// with 500 naming the model and version, and the replica stays ready (a
// rollback has to notice the errors, not a readiness probe); version 4,
// the newest, which unversioned requests and /analyze reach, answers
// every request with score -3, so /analyze calls "I love this" NEGATIVE.
// Then the per-version replicas the agent runs (--only-version): version
// 3 alone starts ready and fails every request; version 4 alone answers
// NEGATIVE for "I love this"; version 2 alone answers POSITIVE.
func TestRolloutModels(t *testing.T) {
	repo := RolloutModels(t)
	for _, rel := range []string{"sentiment/config.yaml", "sentiment/1/model.onnx", "sentiment/2/model.onnx",
		"sentiment/3/model.onnx", "sentiment/4/model.onnx", "textdir/config.yaml", "textdir/1/model.onnx"} {
		if st, err := os.Stat(filepath.Join(repo, rel)); err != nil || !st.Mode().IsRegular() {
			t.Fatalf("%s: %v, want a regular file", rel, err)
		}
	}
	bin, err := Build(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}

	t.Run("every version", func(t *testing.T) {
		url, log := serveReplica(t, bin, repo)
		for _, path := range []string{"/v2/health/ready", "/v2/models/sentiment/versions/4/ready",
			"/v2/models/sentiment/versions/3/ready", "/v2/models/sentiment/versions/1/ready", "/v2/models/textdir/ready"} {
			if code, body := httpDo(t, http.MethodGet, url+path, ""); code != http.StatusOK {
				t.Errorf("GET %s: %d %s, want 200", path, code, body)
			}
		}
		if code, body := httpDo(t, http.MethodGet, url+"/v2/models/sentiment", ""); code != http.StatusOK || !strings.Contains(body, `"versions":["1","2","3","4"]`) {
			t.Errorf("GET /v2/models/sentiment: %d %s, want versions 1, 2, 3 and 4", code, body)
		}

		p1 := checkGood(t, url, "/v2/models/sentiment/versions/1/infer", "1", 1)
		p2 := checkGood(t, url, "/v2/models/sentiment/versions/2/infer", "2", 0.5)
		if !(p1[0] > p2[0] && p2[0] > 0.5 && p1[1] < p2[1] && p2[1] < 0.5) {
			t.Errorf("p_pos version 1 %v, version 2 %v: version 2 must be the softer", p1, p2)
		}

		checkFails(t, url, http.MethodPost, "/v2/models/sentiment/versions/3/infer", rolloutBody)
		checkDrifting(t, url, "/v2/models/sentiment/versions/4/infer")
		// The newest version is the drifting one: unversioned requests and
		// /analyze reach it, and answer, wrongly.
		checkDrifting(t, url, "/v2/models/sentiment/infer")
		if v := analyze(t, url, "I love this", "NEGATIVE", sigmoid(-DriftingScore)); v != fmt.Sprint(DriftingVersion) {
			t.Errorf("POST /analyze: %s %q, want %d", headerModelVersion, v, DriftingVersion)
		}
		if code, body := httpDo(t, http.MethodGet, url+"/v2/health/ready", ""); code != http.StatusOK {
			t.Errorf("after the failures GET /v2/health/ready: %d %s, want 200", code, body)
		}
		checkGood(t, url, "/v2/models/sentiment/versions/2/infer", "2", 0.5)
		Eventually(t, "the failures logged with their model and version", 5*time.Second, func() bool {
			return strings.Contains(log.String(), "inference failed") && strings.Contains(log.String(), "version=3")
		})
	})

	t.Run("only version 3", func(t *testing.T) {
		url, _ := serveReplica(t, bin, repo, "--only-version", fmt.Sprintf("sentiment=%d", FailingVersion))
		if code, body := httpDo(t, http.MethodGet, url+"/v2/models/sentiment", ""); code != http.StatusOK || !strings.Contains(body, `"versions":["3"]`) {
			t.Errorf("GET /v2/models/sentiment: %d %s, want version 3 alone", code, body)
		}
		checkFails(t, url, http.MethodPost, "/v2/models/sentiment/infer", rolloutBody)
		checkFails(t, url, http.MethodPost, "/analyze", `{"text":"good"}`)
		if code, body := httpDo(t, http.MethodGet, url+"/v2/health/ready", ""); code != http.StatusOK {
			t.Errorf("after the failures GET /v2/health/ready: %d %s, want 200", code, body)
		}
	})

	t.Run("only version 4", func(t *testing.T) {
		url, _ := serveReplica(t, bin, repo, "--only-version", fmt.Sprintf("sentiment=%d", DriftingVersion))
		if code, body := httpDo(t, http.MethodGet, url+"/v2/models/sentiment", ""); code != http.StatusOK || !strings.Contains(body, `"versions":["4"]`) {
			t.Errorf("GET /v2/models/sentiment: %d %s, want version 4 alone", code, body)
		}
		checkDrifting(t, url, "/v2/models/sentiment/infer")
		// NEGATIVE with confidence 1 - sigmoid(-3) = sigmoid(3).
		if v := analyze(t, url, "I love this", "NEGATIVE", sigmoid(-DriftingScore)); v != fmt.Sprint(DriftingVersion) {
			t.Errorf("POST /analyze: %s %q, want %d", headerModelVersion, v, DriftingVersion)
		}
		analyze(t, url, "this is terrible", "NEGATIVE", sigmoid(-DriftingScore))
		if code, body := httpDo(t, http.MethodGet, url+"/v2/health/ready", ""); code != http.StatusOK {
			t.Errorf("GET /v2/health/ready: %d %s, want 200", code, body)
		}
	})

	t.Run("only version 2", func(t *testing.T) {
		url, _ := serveReplica(t, bin, repo, "--only-version", "sentiment=2")
		checkGood(t, url, "/v2/models/sentiment/infer", "2", 0.5)
		// sigmoid(7 / 2): love +3, amazing +4, halved by version 2.
		analyze(t, url, "I love this, it is amazing", "POSITIVE", sigmoid(3.5))
		// sigmoid(3 / 2): love +3; where version 4 says NEGATIVE.
		if v := analyze(t, url, "I love this", "POSITIVE", sigmoid(1.5)); v != "2" {
			t.Errorf("POST /analyze: %s %q, want 2", headerModelVersion, v)
		}
	})
}
