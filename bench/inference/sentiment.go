package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	ort "github.com/yalue/onnxruntime_go"
)

// tokens is the one row both sides run.
var tokens = []string{"i", "love", "this", "it", "is", "amazing"}

const (
	p1bWarmup = 300
	p1bBlock  = 100 // raw and server alternate in blocks of this many runs
	p1bMax    = 60 * time.Second
)

type p1bResult struct {
	p50Added, p99Added time.Duration
	errors             int64
}

func (e *env) benchSentiment() (p1bResult, error) {
	var res p1bResult
	spec := e.specs["sentiment"]
	cfg := e.cfg
	fmt.Printf("== P1b sentiment at light load (%s), tokens %q\n", spec.Path, tokens)
	fmt.Printf("session (raw and server alike): %s\n", describeSession(spec))

	ins, outs, err := ort.GetInputOutputInfo(spec.Path)
	if err != nil {
		return res, err
	}
	pPos := -1
	for i, o := range outs {
		if o.Name == "p_pos" {
			pPos = i
		}
	}
	if len(ins) != 1 || pPos < 0 {
		return res, fmt.Errorf("%s: want one input and an output p_pos, got %v -> %v", spec.Path, ins, outs)
	}
	sess, err := openRaw(spec)
	if err != nil {
		return res, err
	}
	defer func() { _ = sess.Destroy() }()
	raw := &rawSentiment{sess: sess, nOut: len(outs), pPos: pPos}
	if _, err := raw.run(); err != nil {
		return res, err
	}

	body, err := json.Marshal(map[string]any{"inputs": []map[string]any{{
		"name": ins[0].Name, "shape": []int{1, len(tokens)}, "datatype": "BYTES", "data": tokens,
	}}})
	if err != nil {
		return res, err
	}
	srv := &serverSentiment{client: newClient(1), url: e.base + "/v2/models/sentiment/infer", body: body, want: raw.last}

	// Warm-up, then measured blocks, raw and server alternating.
	for range p1bWarmup / p1bBlock {
		if _, err := raw.block(p1bBlock); err != nil {
			return res, err
		}
		srv.block(p1bBlock)
	}
	srv.errs, srv.firstErr = 0, ""
	before, err := e.scrape()
	if err != nil {
		return res, err
	}
	var rawLat, srvLat []time.Duration
	var rawTime, srvTime time.Duration
	for len(rawLat) < cfg.requests || len(srvLat) < cfg.requests {
		if rawTime > p1bMax || srvTime > p1bMax {
			fmt.Printf("stopped early: %s per side reached\n", p1bMax)
			break
		}
		t0 := time.Now()
		l, err := raw.block(min(p1bBlock, max(0, cfg.requests-len(rawLat))))
		if err != nil {
			return res, err
		}
		rawLat = append(rawLat, l...)
		t1 := time.Now()
		srvLat = append(srvLat, srv.block(min(p1bBlock, max(0, cfg.requests-len(srvLat))))...)
		rawTime += t1.Sub(t0)
		srvTime += time.Since(t1)
	}
	after, err := e.scrape()
	if err != nil {
		return res, err
	}

	if len(srvLat) == 0 || len(rawLat) == 0 {
		return res, fmt.Errorf("no server request succeeded (%d errors, first: %s)", srv.errs, srv.firstErr)
	}
	fmt.Printf("alternating blocks of %d (raw block, then server block), after %d warm-up runs each; cache off\n", p1bBlock, p1bWarmup)
	fmt.Printf("raw in-process (NewStringTensor + SetContents + Run + read outputs + Destroy): %s\n", summary(rawLat))
	fmt.Printf("server, 1 client, sequential JSON POSTs (%d-byte body), client-side:          %s\n", len(body), summary(srvLat))
	if srv.errs > 0 {
		fmt.Printf("server errors: %d, first: %s\n", srv.errs, srv.firstErr)
	}
	if d, n := before.delta(after, "meridian_inference_request_duration_seconds_count", "sentiment"),
		before.delta(after, "meridian_inference_run_duration_seconds_count", "sentiment"); d > 0 && n > 0 {
		fmt.Printf("server metrics: mean in-handler %s (arrival to answer), mean ONNX Runtime run %s, over %.0f requests\n",
			us(secs(before.delta(after, "meridian_inference_request_duration_seconds_sum", "sentiment")/d)),
			us(secs(before.delta(after, "meridian_inference_run_duration_seconds_sum", "sentiment")/n)), d)
	}
	rp50, rp99 := percentile(rawLat, 0.5), percentile(rawLat, 0.99)
	sp50, sp99 := percentile(srvLat, 0.5), percentile(srvLat, 0.99)
	res.p50Added, res.p99Added = sp50-rp50, sp99-rp99
	res.errors = srv.errs
	fmt.Printf("added by the server: p50 %s (%s - %s), p99 %s (%s - %s)\n",
		us(res.p50Added), us(sp50), us(rp50), us(res.p99Added), us(sp99), us(rp99))
	return res, nil
}

func secs(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

// summary sorts ds and describes it.
func summary(ds []time.Duration) string {
	if len(ds) == 0 {
		return "no samples"
	}
	slices.Sort(ds)
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return fmt.Sprintf("n=%d p50 %s p90 %s p99 %s max %s mean %s",
		len(ds), us(percentile(ds, 0.5)), us(percentile(ds, 0.9)), us(percentile(ds, 0.99)),
		us(ds[len(ds)-1]), us(sum/time.Duration(len(ds))))
}

type rawSentiment struct {
	sess       *ort.DynamicAdvancedSession
	nOut, pPos int
	last       float32 // p_pos of the last run
}

// run does once what the server does per batch: a string tensor created
// and filled, Run with ONNX Runtime allocating the outputs, the outputs
// read, everything destroyed.
func (r *rawSentiment) run() (time.Duration, error) {
	t0 := time.Now()
	in, err := ort.NewStringTensor(ort.NewShape(1, int64(len(tokens))))
	if err != nil {
		return 0, err
	}
	if err := in.SetContents(tokens); err != nil {
		_ = in.Destroy()
		return 0, err
	}
	outs := make([]ort.Value, r.nOut)
	err = r.sess.Run([]ort.Value{in}, outs)
	_ = in.Destroy()
	if err != nil {
		return 0, err
	}
	var p float32
	for i, o := range outs {
		t, ok := o.(*ort.Tensor[float32])
		if !ok || len(t.GetData()) != 1 {
			return 0, fmt.Errorf("output %d is %T, want FP32 [1,1]", i, o)
		}
		if i == r.pPos {
			p = t.GetData()[0]
		}
		_ = o.Destroy()
	}
	d := time.Since(t0)
	r.last = p
	return d, nil
}

func (r *rawSentiment) block(n int) ([]time.Duration, error) {
	out := make([]time.Duration, 0, n)
	for range n {
		d, err := r.run()
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

type serverSentiment struct {
	client   *http.Client
	url      string
	body     []byte
	want     float32 // p_pos the raw run gave
	buf      bytes.Buffer
	errs     int64
	firstErr string
}

// block sends n sequential requests and returns the latencies of those that
// succeeded, measured from sending the request to having read the whole
// response; the response is checked after the clock stops.
func (s *serverSentiment) block(n int) []time.Duration {
	out := make([]time.Duration, 0, n)
	for range n {
		req, err := http.NewRequest(http.MethodPost, s.url, bytes.NewReader(s.body))
		if err != nil {
			s.fail(err)
			continue
		}
		req.Header.Set("Content-Type", "application/json")
		t0 := time.Now()
		resp, err := s.client.Do(req)
		if err != nil {
			s.fail(err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		s.buf.Reset()
		_, err = s.buf.ReadFrom(resp.Body)
		_ = resp.Body.Close()
		d := time.Since(t0)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("status %s: %.200s", resp.Status, s.buf.Bytes())
		}
		if err == nil {
			err = s.check(s.buf.Bytes())
		}
		if err != nil {
			s.fail(err)
			continue
		}
		out = append(out, d)
	}
	return out
}

func (s *serverSentiment) check(body []byte) error {
	var r struct {
		Outputs []struct {
			Name string    `json:"name"`
			Data []float64 `json:"data"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("response is not JSON: %w", err)
	}
	for _, o := range r.Outputs {
		if o.Name == "p_pos" && len(o.Data) == 1 && math.Abs(o.Data[0]-float64(s.want)) < 1e-5 {
			return nil
		}
	}
	return fmt.Errorf("response has no p_pos equal to the raw run's %v: %.200s", s.want, strings.TrimSpace(string(body)))
}

func (s *serverSentiment) fail(err error) {
	s.errs++
	if s.firstErr == "" {
		s.firstErr = err.Error()
	}
}
