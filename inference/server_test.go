package inference

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"meridian.dev/meridian/internal/testbin"
)

type analyzeAnswer struct {
	Label string  `json:"label"`
	Score float64 `json:"score"`
	Error string  `json:"error"`
}

func analyze(t *testing.T, url, body string) (int, analyzeAnswer) {
	t.Helper()
	code, text, _ := post(t, url+"/analyze", body)
	var a analyzeAnswer
	if err := json.Unmarshal([]byte(text), &a); err != nil {
		t.Fatalf("/analyze answered %d %q: %v", code, text, err)
	}
	return code, a
}

// sentimentP is p_pos of the bundled sentiment model's version 2, the
// newest, which /analyze and unversioned requests get: sigmoid(score / 2)
// (version 1's is sigmoid(score)).
func sentimentP(score float64) float64 { return 1 / (1 + math.Exp(-score/2)) }

func TestAnalyze(t *testing.T) {
	s := startBundled(t)
	cases := []struct {
		text  string
		label string
		sum   float64 // the AFINN sum, the model's score
	}{
		{"I love this, it is amazing", Positive, 7},    // love +3, amazing +4
		{"This is terrible. I HATE it!", Negative, -6}, // terrible -3, hate -3
		{"this is not good", Negative, -2},             // the phrase "not good" (-2) outweighs "good" (+3)
		{"It doesn’t work", Neutral, 0},                // no AFINN word: typographic apostrophe normalised, still neutral
		{"the weather is", Neutral, 0},
		{"!!! ???", Neutral, 0}, // no words at all
	}
	for _, c := range cases {
		// The confidence in the label, from version 2's p_pos.
		want := 1.0
		switch p := sentimentP(c.sum); c.label {
		case Positive:
			want = p
		case Negative:
			want = 1 - p
		}
		code, a := analyze(t, s.url, fmt.Sprintf(`{"text": %q}`, c.text))
		if code != http.StatusOK || a.Label != c.label || math.Abs(a.Score-want) > 1e-6 {
			t.Errorf("%q: got %d %+v, want %s with score %.6f (version 2: sigmoid(%g / 2))", c.text, code, a, c.label, want, c.sum)
		}
	}
	// Each answer names the version that answered and its label, for the
	// cluster's front to count.
	if _, _, h := post(t, s.url+"/analyze", `{"text": "I love this"}`); h.Get(HeaderModelVersion) != "2" || h.Get(HeaderPrediction) != Positive {
		t.Errorf("headers %s=%q %s=%q, want 2 and %s", HeaderModelVersion, h.Get(HeaderModelVersion), HeaderPrediction, h.Get(HeaderPrediction), Positive)
	}
}

// TestSentimentVersions: the bundled sentiment model has two versions that
// load side by side. Both score alike; version 1's p_pos is
// sigmoid(score), version 2's sigmoid(score / 2); a request that names no
// version gets the newest, 2.
func TestSentimentVersions(t *testing.T) {
	s := startBundled(t)
	body := `{"inputs":[{"name":"tokens","datatype":"BYTES","shape":[2,6],"data":[["i","love","this","it","is","amazing"],["this","is","not","good","",""]]}]}`
	for _, c := range []struct {
		path, version string
		scale         float64 // p_pos = sigmoid(scale × score)
	}{
		{"/v2/models/sentiment/versions/1/infer", "1", 1},
		{"/v2/models/sentiment/versions/2/infer", "2", 0.5},
		{"/v2/models/sentiment/infer", "2", 0.5},
	} {
		code, text, _ := post(t, s.url+c.path, body)
		if code != http.StatusOK {
			t.Errorf("%s: %d %s", c.path, code, text)
			continue
		}
		a := decodeAnswer(t, text)
		if a.ModelName != "sentiment" || a.ModelVersion != c.version || len(a.Outputs) != 2 ||
			a.Outputs[0].Name != "score" || a.Outputs[1].Name != "p_pos" {
			t.Errorf("%s: answer %+v, want sentiment version %s with score and p_pos", c.path, a, c.version)
			continue
		}
		for i, score := range []float64{7, -2} {
			if got := a.Outputs[0].Data[i]; got != score {
				t.Errorf("%s: row %d score %v, want %v", c.path, i, got, score)
			}
			if got, want := a.Outputs[1].Data[i], 1/(1+math.Exp(-c.scale*score)); math.Abs(got-want) > 1e-6 {
				t.Errorf("%s: row %d p_pos %v, want sigmoid(%g × %g) = %v", c.path, i, got, c.scale, score, want)
			}
		}
	}
	code, body2 := get(t, s.url+"/v2/models/sentiment")
	if code != http.StatusOK || !strings.Contains(body2, `"versions":["1","2"]`) {
		t.Errorf("GET /v2/models/sentiment: %d %s, want versions 1 and 2", code, body2)
	}
}

func TestAnalyzeBadInput(t *testing.T) {
	s := startBundled(t)
	for _, c := range []struct{ body, want string }{
		{`{"text": ""}`, "text is empty"},
		{`{"text": "   \n"}`, "text is empty"},
		{`{}`, `{"text": "..."}`},
		{`{"text": 5}`, "cannot unmarshal"},
		{`{"text": "unterminated`, "unexpected end"},
		{`not json`, "invalid character"},
	} {
		code, a := analyze(t, s.url, c.body)
		if code != http.StatusBadRequest || !strings.Contains(a.Error, c.want) {
			t.Errorf("%s: got %d %q, want 400 containing %q", c.body, code, a.Error, c.want)
		}
	}
	if code, a := analyze(t, s.url, `{"text":"good"}`); code != http.StatusOK || a.Label != Positive {
		t.Fatalf("server stopped serving after bad input: %d %+v", code, a)
	}
}

type inferAnswer struct {
	ModelName    string `json:"model_name"`
	ModelVersion string `json:"model_version"`
	ID           string `json:"id"`
	Outputs      []struct {
		Name     string    `json:"name"`
		Datatype string    `json:"datatype"`
		Shape    []int64   `json:"shape"`
		Data     []float64 `json:"data"`
	} `json:"outputs"`
	Error string `json:"error"`
}

func decodeAnswer(t *testing.T, text string) inferAnswer {
	t.Helper()
	var a inferAnswer
	if err := json.Unmarshal([]byte(text), &a); err != nil {
		t.Fatalf("answer %q: %v", text, err)
	}
	return a
}

// stripes is a 3x48x192 image of dark stripes on a light ground.
func stripes() []float32 {
	img := make([]float32, 3*48*192)
	for i := range img {
		y, x := i/192%48, i%192
		img[i] = 0.9
		if y > 14 && y < 34 && x%12 < 7 {
			img[i] = -0.8
		}
	}
	return img
}

func floatsJSON(v []float32) string {
	var b strings.Builder
	for i, f := range v {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprint(&b, f)
	}
	return b.String()
}

func TestTextdirJSONAndBinaryAgree(t *testing.T) {
	s := startBundled(t)
	img := stripes()
	body := `{"id":"req-1","inputs":[{"name":"x","datatype":"FP32","shape":[1,3,48,192],"data":[` + floatsJSON(img) + `]}]}`
	code, text, _ := post(t, s.url+"/v2/models/textdir/infer", body)
	if code != http.StatusOK {
		t.Fatalf("JSON infer: %d %s", code, text)
	}
	a := decodeAnswer(t, text)
	if a.ModelName != "textdir" || a.ModelVersion != "1" || a.ID != "req-1" || len(a.Outputs) != 1 {
		t.Fatalf("unexpected answer %+v", a)
	}
	p := a.Outputs[0].Data
	if len(p) != 2 || math.Abs(p[0]+p[1]-1) > 1e-5 || a.Outputs[0].Datatype != "FP32" {
		t.Fatalf("want two probabilities summing to 1, got %+v", a.Outputs[0])
	}

	// The same image through the binary extension, answer in binary too.
	raw := make([]byte, 0, 4*len(img))
	for _, f := range img {
		raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(f))
	}
	header := fmt.Sprintf(`{"inputs":[{"name":"x","datatype":"FP32","shape":[1,3,48,192],"parameters":{"binary_data_size":%d}}],"outputs":[{"name":"softmax_0.tmp_0","parameters":{"binary_data":true}}]}`, len(raw))
	bb, hl := binaryBody(header, raw)
	code, text, h := post(t, s.url+"/v2/models/textdir/versions/1/infer", bb, HeaderLength, hl, "Content-Type", "application/octet-stream")
	if code != http.StatusOK {
		t.Fatalf("binary infer: %d %s", code, text)
	}
	var n int
	if _, err := fmt.Sscan(h.Get(HeaderLength), &n); err != nil || n > len(text) {
		t.Fatalf("response %s header %q", HeaderLength, h.Get(HeaderLength))
	}
	if !strings.Contains(text[:n], `"binary_data_size":8`) || len(text)-n != 8 {
		t.Fatalf("want 8 binary bytes after the JSON header, got header %s and %d bytes", text[:n], len(text)-n)
	}
	for i := range 2 {
		got := math.Float32frombits(binary.LittleEndian.Uint32([]byte(text[n+4*i:])))
		if math.Abs(float64(got)-p[i]) > 1e-6 {
			t.Errorf("binary probability %d = %v, JSON said %v", i, got, p[i])
		}
	}
}

func TestSentimentBatchOfRowsWithBytes(t *testing.T) {
	s := startBundled(t)
	body := `{"inputs":[{"name":"tokens","datatype":"BYTES","shape":[3,3],"data":[["i","love","it"],["so","bad",""],["kind","of","\u00e9"]]}],"outputs":[{"name":"score"}]}`
	code, text, _ := post(t, s.url+"/v2/models/sentiment/infer", body)
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, text)
	}
	a := decodeAnswer(t, text)
	if len(a.Outputs) != 1 || a.Outputs[0].Name != "score" {
		t.Fatalf("asked only for score, got %+v", a.Outputs)
	}
	want := []float64{3, -3, 0} // love +3; bad -3; "kind of" is 0
	for i, w := range want {
		if a.Outputs[0].Data[i] != w {
			t.Errorf("row %d score = %v, want %v", i, a.Outputs[0].Data[i], w)
		}
	}
}

func TestMetadataAndHealth(t *testing.T) {
	s := startBundled(t)
	for _, c := range []struct {
		path string
		code int
		want string
	}{
		{"/v2/health/live", 200, `"live":true`},
		{"/v2/health/ready", 200, `"ready":true`},
		{"/v2", 200, `"binary_tensor_data"`},
		{"/v2/models/textdir", 200, `"inputs":[{"name":"x","datatype":"FP32","shape":[-1,3,-1,-1]}]`},
		{"/v2/models/textdir", 200, `"device":"cpu"`},
		{"/v2/models/sentiment/versions/1", 200, `"versions":["1"]`},
		{"/v2/models/sentiment/ready", 200, `"ready":true`},
		{"/v2/models/nope", 404, `"error":"unknown model \"nope\""`},
		{"/v2/models/sentiment/versions/7", 404, `has no version \"7\"`},
		{"/v2/models/nope/ready", 404, `unknown model`},
		{"/nowhere", 404, `no route`},
	} {
		code, body := get(t, s.url+c.path)
		if code != c.code || !strings.Contains(body, c.want) {
			t.Errorf("GET %s: %d %s, want %d containing %s", c.path, code, body, c.code, c.want)
		}
	}
	code, body, _ := post(t, s.url+"/v2/repository/index", "")
	if code != 200 || !strings.Contains(body, `{"name":"textdir","version":"1","state":"READY"}`) ||
		!strings.Contains(body, `{"name":"sentiment","version":"1","state":"READY"},{"name":"sentiment","version":"2","state":"READY"}`) {
		t.Errorf("repository index: %d %s", code, body)
	}
}

func TestInferBadInput(t *testing.T) {
	s := start(t, Options{ModelRepository: testbin.Models(t), MaxBodyBytes: 200_000})
	tokens := func(shape, data string) string {
		return `{"inputs":[{"name":"tokens","datatype":"BYTES","shape":` + shape + `,"data":` + data + `}]}`
	}
	x := func(dt, shape, data string) string {
		return `{"inputs":[{"name":"x","datatype":"` + dt + `","shape":` + shape + `,"data":` + data + `}]}`
	}
	nan := make([]byte, 4*3*48*192)
	binary.LittleEndian.PutUint32(nan[40:], math.Float32bits(float32(math.NaN())))
	nanBody, nanLen := binaryBody(fmt.Sprintf(`{"inputs":[{"name":"x","datatype":"FP32","shape":[1,3,48,192],"parameters":{"binary_data_size":%d}}]}`, len(nan)), nan)
	cases := []struct {
		name, model, body string
		header            []string
		code              int
		want              string
	}{
		{"malformed JSON", "sentiment", `{"inputs":[`, nil, 400, "not valid JSON"},
		{"no inputs", "sentiment", `{"inputs":[]}`, nil, 400, `no "inputs"`},
		{"unknown datatype", "sentiment", `{"inputs":[{"name":"tokens","datatype":"STRING","shape":[1,1],"data":["a"]}]}`, nil, 400, `unsupported datatype "STRING"`},
		{"wrong datatype", "textdir", x("FP64", "[1,3,48,192]", "[0]"), nil, 400, "holds 27648 elements but data has 1"},
		{"wrong datatype for model", "sentiment", `{"inputs":[{"name":"tokens","datatype":"FP32","shape":[1,1],"data":[1]}]}`, nil, 400, "must be BYTES, got FP32"},
		{"wrong rank", "sentiment", tokens("[2]", `["a","b"]`), nil, 400, "must have shape [-1 -1], got [2]"},
		{"wrong channel count", "textdir", x("FP32", "[1,4,1,1]", "[1,2,3,4]"), nil, 400, "must have shape [-1 3 -1 -1]"},
		{"too few elements", "sentiment", tokens("[1,3]", `["a","b"]`), nil, 400, "holds 3 elements but data has 2"},
		{"too many elements", "sentiment", tokens("[1,1]", `["a","b"]`), nil, 400, "more than the 1 elements"},
		{"negative dim", "sentiment", tokens("[1,-1]", `["a"]`), nil, 400, "negative dimension"},
		{"empty dim", "sentiment", tokens("[0,1]", `[]`), nil, 400, "empty dimension"},
		{"string for a number", "textdir", x("FP32", "[1]", `["1"]`), nil, 400, "must be numbers"},
		{"number for a string", "sentiment", tokens("[1,1]", `[1]`), nil, 400, "must be strings"},
		{"infinity", "textdir", x("FP32", "[1]", `[1e999]`), nil, 400, "out of range"},
		{"NaN token", "textdir", x("FP32", "[1]", `[NaN]`), nil, 400, "not valid JSON"},
		{"NaN in binary", "textdir", nanBody, []string{HeaderLength, nanLen}, 400, "element 10 is NaN"},
		{"header longer than body", "textdir", `{}`, []string{HeaderLength, "99"}, 400, "only 2 bytes"},
		{"bad header", "textdir", `{}`, []string{HeaderLength, "x"}, 400, "not a byte count"},
		{"missing input", "sentiment", `{"inputs":[{"name":"words","datatype":"BYTES","shape":[1,1],"data":["a"]}]}`, nil, 400, `missing input "tokens"`},
		{"extra input", "sentiment", `{"inputs":[{"name":"tokens","datatype":"BYTES","shape":[1,1],"data":["a"]},{"name":"more","datatype":"BYTES","shape":[1],"data":["a"]}]}`, nil, 400, `no input "more"`},
		{"duplicate input", "sentiment", `{"inputs":[{"name":"tokens","datatype":"BYTES","shape":[1,1],"data":["a"]},{"name":"tokens","datatype":"BYTES","shape":[1,1],"data":["a"]}]}`, nil, 400, "appears twice"},
		{"unknown output", "sentiment", `{"inputs":[{"name":"tokens","datatype":"BYTES","shape":[1,1],"data":["a"]}],"outputs":[{"name":"logits"}]}`, nil, 400, `no output "logits"`},
		{"batch over max", "sentiment", tokens("[65,1]", "["+strings.Repeat(`"a",`, 64)+`"a"]`), nil, 400, "more than max_batch_size 64"},
		{"negative timeout", "sentiment", `{"parameters":{"timeout":-1},"inputs":[{"name":"tokens","datatype":"BYTES","shape":[1,1],"data":["a"]}]}`, nil, 400, "timeout"},
		{"body over limit", "textdir", x("FP32", "[1,3,48,192]", "["+strings.Repeat("0.5,", 60000)+"0]"), nil, 413, "over the 200000-byte limit"},
		{"unknown model", "nope", `{}`, nil, 404, `unknown model "nope"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, text, _ := post(t, s.url+"/v2/models/"+c.model+"/infer", c.body, c.header...)
			var a inferAnswer
			_ = json.Unmarshal([]byte(text), &a)
			if code != c.code || !strings.Contains(a.Error, c.want) {
				t.Errorf("got %d %s, want %d with error containing %q", code, text, c.code, c.want)
			}
		})
	}
	// Nothing was lost: the server still answers, and counted every 400.
	code, text, _ := post(t, s.url+"/v2/models/sentiment/infer", tokens("[1,1]", `["good"]`))
	if code != 200 {
		t.Fatalf("after bad input: %d %s", code, text)
	}
	if n := testbin.Metric(t, s.reg, "meridian_inference_requests_total", map[string]string{"code": "400"}); n < 20 {
		t.Errorf("requests_total{code=400} = %v, want every bad request counted", n)
	}
}

func TestMetricsExposition(t *testing.T) {
	s := start(t, Options{ModelRepository: testbin.Models(t), CacheSize: 10, CacheTTL: time.Minute})
	analyze(t, s.url, `{"text":"good"}`)
	code, body := get(t, s.url+"/metrics")
	if code != 200 {
		t.Fatal(code)
	}
	// /analyze runs sentiment's newest version, 2; version 1 is loaded
	// (its queue is there) but got no request.
	for _, name := range []string{
		`meridian_inference_requests_total{code="200",model="sentiment",version="2"} 1`,
		`meridian_inference_request_duration_seconds_count{model="sentiment",version="2"} 1`,
		`meridian_inference_queue_duration_seconds_count{model="sentiment",version="2"} 1`,
		`meridian_inference_run_duration_seconds_count{model="sentiment",version="2"} 1`,
		`meridian_inference_batch_size_count{model="sentiment",version="2"} 1`,
		`meridian_inference_queue_depth{model="textdir",version="1"} 0`,
		`meridian_inference_queue_capacity{model="sentiment",version="1"} 256`,
		`meridian_inference_queue_capacity{model="sentiment",version="2"} 256`,
		`meridian_inference_inflight_requests{model="sentiment",version="2"} 0`,
		`meridian_inference_cache_misses_total{model="sentiment",version="2"} 1`,
		`meridian_inference_cache_entries 1`,
	} {
		if !strings.Contains(body, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}
