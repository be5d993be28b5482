package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"meridian.dev/meridian/inference"
)

// textdir's input x is FP32 [B,3,48,192]; its output softmax_0.tmp_0 is
// FP32 [B,2].
const (
	imageFloats = 3 * 48 * 192
	nImages     = 8 // distinct synthetic images, cycled
)

var batchSizes = []int{1, 2, 4, 8, 16, 32}

type p1aResult struct {
	// CPU seconds per image: the server child over the server-binary
	// slices, raw Run over the interleaved raw slices at the best batch.
	srvCPUPerImage, rawCPUPerImage, cpuRatio float64
	// The load generator's CPU seconds per request, the cores the server
	// used and the other processes' and the hypervisor's cores, over the
	// server-binary slices.
	loadgenCPUPerReq, srvCores, others, steal float64
	ratio, jsonRatio, meanBatch               float64
	errors                                    int64
}

// nearestBatch is the swept batch size nearest b on a log scale; 0 if b is 0.
func nearestBatch(b float64) int {
	if b <= 0 {
		return 0
	}
	best := batchSizes[0]
	for _, s := range batchSizes {
		if math.Abs(math.Log(float64(s)/b)) < math.Abs(math.Log(float64(best)/b)) {
			best = s
		}
	}
	return best
}

// rawResult is one raw in-process phase at a fixed batch size.
type rawResult struct {
	batch, runs, callers int
	meter
}

// runTime is the mean time one Run took (callers run at once).
func (r rawResult) runTime() time.Duration {
	return time.Duration(float64(r.wall) * float64(r.callers) / float64(r.runs))
}

func (r rawResult) imagesPerSecond() float64 {
	return float64(r.runs*r.batch) / r.wall.Seconds()
}

// cpuPerImage is the CPU seconds this process spent per image.
func (r rawResult) cpuPerImage() float64 {
	if r.runs == 0 {
		return 0
	}
	return r.cpu.Seconds() / float64(r.runs*r.batch)
}

func (r *rawResult) add(o rawResult) {
	r.runs += o.runs
	r.meter.add(o.meter)
}

func (e *env) benchTextdir() (p1aResult, error) {
	var res p1aResult
	spec := e.specs["textdir"]
	cfg := e.cfg
	fmt.Printf("== P1a textdir at saturation (%s)\n", spec.Path)
	fmt.Printf("session (raw and server alike): %s\n", describeSession(spec))

	sess, err := openRaw(spec)
	if err != nil {
		return res, err
	}
	defer func() { _ = sess.Destroy() }()
	images := makeImages()

	// Raw sweep: each batch size after a warm-up, best one kept.
	callers := cfg.rawCallers
	if callers == 0 {
		callers = spec.Config.Workers
	}
	fmt.Printf("raw in-process Run from %d goroutine(s) on one session, each batch size for %s after a warm-up (NewTensor + Run + read + Destroy per run):\n",
		callers, cfg.sweep)
	var best rawResult
	sweep := make(map[int]rawResult, len(batchSizes))
	for _, b := range batchSizes {
		in := batchOf(images, b)
		if _, err := rawTextdir(sess, in, b, callers, 300*time.Millisecond, 3); err != nil { // warm-up
			return res, err
		}
		r, err := rawTextdir(sess, in, b, callers, cfg.sweep, 1<<30)
		if err != nil {
			return res, err
		}
		fmt.Printf("  raw batch=%-2d %8.1f img/s  %5d runs  %s/run  cores %.2f  CPU %4.0fus/img  (%s)\n",
			b, r.imagesPerSecond(), r.runs, ms(r.runTime()), r.cores(), r.cpuPerImage()*1e6, r.noise())
		sweep[b] = r
		if best.runs == 0 || r.imagesPerSecond() > best.imagesPerSecond() {
			best = r
		}
	}
	fmt.Printf("raw sweep best: batch=%d %.1f img/s, CPU %.0fus/img\n", best.batch, best.imagesPerSecond(), best.cpuPerImage()*1e6)

	// Server, binary bodies, alternating with raw at the best batch size.
	client := newClient(cfg.concurrency)
	url := e.base + "/v2/models/textdir/infer"
	bin := binaryBodies(images)
	if r := load(client, url, bin, checkBinary, cfg.concurrency, time.Second); r.ok == 0 { // warm-up, connections opened
		return res, fmt.Errorf("server warm-up: no request succeeded: %s", r.firstErr)
	}
	slice := cfg.duration / time.Duration(cfg.slices)
	fmt.Printf("server, binary tensor extension, %d keep-alive connections, 1 image per request, %d slices of %s alternating with raw batch=%d:\n",
		cfg.concurrency, cfg.slices, slice, best.batch)
	bestIn := batchOf(images, best.batch)
	before, err := e.scrape()
	if err != nil {
		return res, err
	}
	var srvBin loadResult
	var paired, cpuPaired []float64 // per slice: server over the raw slice right after it, img/s and CPU per image
	rawAgain := rawResult{batch: best.batch, callers: callers}
	fmt.Println("  (server: its process's cores and CPU per image; load generator: this process's cores and CPU per request;\n" +
		"   raw: this process's cores and CPU per image, the idle server's cores; others/steal: the rest of the machine)")
	for i := range cfg.slices {
		s := load(client, url, bin, checkBinary, cfg.concurrency, slice)
		r, err := rawTextdir(sess, bestIn, best.batch, callers, slice, 1<<30)
		if err != nil {
			return res, err
		}
		fmt.Printf("  slice %d: server %7.1f img/s, cores %.2f, CPU %4.0fus/img; load generator cores %.2f, %3.0fus/req; %s; %d errors\n",
			i+1, s.perSecond(), s.srvCores(), s.srvCPUPerImage()*1e6, s.cores(), s.cpuPerRequest()*1e6, s.noise(), s.errs)
		fmt.Printf("           raw batch=%d %7.1f img/s, cores %.2f, CPU %4.0fus/img; idle server cores %.2f; %s\n",
			best.batch, r.imagesPerSecond(), r.cores(), r.cpuPerImage()*1e6, r.srvCores(), r.noise())
		srvBin.add(s)
		rawAgain.add(r)
		paired = append(paired, s.perSecond()/r.imagesPerSecond())
		if r.cpuPerImage() > 0 {
			cpuPaired = append(cpuPaired, s.srvCPUPerImage()/r.cpuPerImage())
		}
	}
	after, err := e.scrape()
	if err != nil {
		return res, err
	}
	printServer("server binary", srvBin, before, after)
	res.meanBatch = meanBatch(before, after)
	if near := nearestBatch(res.meanBatch); near > 0 {
		r := sweep[near]
		runPerImage := before.delta(after, "meridian_inference_run_duration_seconds_sum", "textdir") /
			before.delta(after, "meridian_inference_batch_size_sum", "textdir")
		fmt.Printf("  at equal batch size: raw sweep batch=%d (nearest the server's mean %.2f) %.1f img/s, Run %.3f ms/img, CPU %.0fus/img; server Run %.3f ms/img; server/raw img/s %.3f, CPU per image %.3f\n",
			near, res.meanBatch, r.imagesPerSecond(), r.runTime().Seconds()*1e3/float64(r.batch), r.cpuPerImage()*1e6, runPerImage*1e3,
			srvBin.perSecond()/r.imagesPerSecond(), srvBin.srvCPUPerImage()/r.cpuPerImage())
	}
	rawBest := max(best.imagesPerSecond(), rawAgain.imagesPerSecond())
	fmt.Printf("raw batch=%d interleaved: %.1f img/s over %s, cores %.2f, %s; raw best (max of sweep and interleaved) %.1f img/s\n",
		best.batch, rawAgain.imagesPerSecond(), rawAgain.wall.Round(time.Millisecond), rawAgain.cores(), rawAgain.noise(), rawBest)
	res.ratio = srvBin.perSecond() / rawBest
	slices.Sort(paired)
	fmt.Printf("img/s ratio server binary / raw best = %.3f   (vs interleaved raw alone: %.3f; per-slice pairs %.3f..%.3f, median %.3f)\n",
		res.ratio, srvBin.perSecond()/rawAgain.imagesPerSecond(), paired[0], paired[len(paired)-1], paired[len(paired)/2])
	res.srvCPUPerImage, res.rawCPUPerImage = srvBin.srvCPUPerImage(), rawAgain.cpuPerImage()
	if res.rawCPUPerImage > 0 {
		res.cpuRatio = res.srvCPUPerImage / res.rawCPUPerImage
	}
	res.loadgenCPUPerReq, res.srvCores, res.others, res.steal = srvBin.cpuPerRequest(), srvBin.srvCores(), srvBin.others(), srvBin.per(srvBin.stl)
	slices.Sort(cpuPaired)
	if len(cpuPaired) > 0 {
		fmt.Printf("CPU per image, server process / raw batch=%d interleaved = %.0f / %.0f us = %.3f   (per-slice pairs %.3f..%.3f, median %.3f; raw sweep's best batch alone: %.0f us)\n",
			best.batch, res.srvCPUPerImage*1e6, res.rawCPUPerImage*1e6, res.cpuRatio,
			cpuPaired[0], cpuPaired[len(cpuPaired)-1], cpuPaired[len(cpuPaired)/2], best.cpuPerImage()*1e6)
	}

	// Server, JSON bodies (informational).
	js := jsonBodies(images)
	_ = load(client, url, js, checkJSON, cfg.concurrency, time.Second) // warm-up
	before, err = e.scrape()
	if err != nil {
		return res, err
	}
	fmt.Printf("server, plain JSON bodies (%d KiB each, encoded once), %d connections, %s:\n",
		len(js[0].body)>>10, cfg.concurrency, cfg.duration)
	srvJSON := load(client, url, js, checkJSON, cfg.concurrency, cfg.duration)
	after, err = e.scrape()
	if err != nil {
		return res, err
	}
	printServer("server JSON", srvJSON, before, after)
	res.jsonRatio = srvJSON.perSecond() / rawBest
	res.errors = srvBin.errs + srvJSON.errs

	if cfg.cpuProfile != "" || cfg.memProfile != "" {
		if err := e.profileServer(client, url, bin); err != nil {
			return res, err
		}
	}
	return res, nil
}

// printServer prints a server phase and what the server's metrics say it
// did in it.
func printServer(name string, r loadResult, before, after snapshot) {
	d := func(series string) float64 { return before.delta(after, series, "textdir") }
	fmt.Printf("%s: %d ok, %d errors in %s -> %.1f img/s; server process cores %.2f, CPU %.0fus/img; load generator cores %.2f, %.0fus/req; %s\n",
		name, r.ok, r.errs, r.wall.Round(time.Millisecond), r.perSecond(), r.srvCores(), r.srvCPUPerImage()*1e6,
		r.cores(), r.cpuPerRequest()*1e6, r.noise())
	if r.firstErr != "" {
		fmt.Printf("  first error: %s\n", r.firstErr)
	}
	fmt.Printf("  client latency p50 %s p99 %s\n", ms(percentile(r.latencies, 0.5)), ms(percentile(r.latencies, 0.99)))
	batches, runs, queued := d("meridian_inference_batch_size_count"), d("meridian_inference_run_duration_seconds_count"), d("meridian_inference_queue_duration_seconds_count")
	if batches > 0 && runs > 0 && queued > 0 {
		run := d("meridian_inference_run_duration_seconds_sum")
		fmt.Printf("  server metrics: %.0f batches, mean batch size %.2f, mean run %.2f ms, ONNX Runtime busy %.1f%% of wall, mean queue wait %.2f ms\n",
			batches, d("meridian_inference_batch_size_sum")/batches, run/runs*1e3, 100*run/r.wall.Seconds(),
			d("meridian_inference_queue_duration_seconds_sum")/queued*1e3)
	}
	if r.ok > 0 {
		alloc, gcs := before.delta(after, "go_memstats_alloc_bytes_total", ""), before.delta(after, "go_gc_duration_seconds_count", "")
		fmt.Printf("  Go heap (server process): %.0f KiB allocated per request, %.0f GCs (%.1f/s)\n",
			alloc/float64(r.ok)/1024, gcs, gcs/r.wall.Seconds())
	}
}

// meanBatch is the mean batch size the server formed between two scrapes.
func meanBatch(before, after snapshot) float64 {
	n := before.delta(after, "meridian_inference_batch_size_count", "textdir")
	if n == 0 {
		return 0
	}
	return before.delta(after, "meridian_inference_batch_size_sum", "textdir") / n
}

// profileServer runs one more, unmeasured, server-binary phase with the
// server child's CPU profile on and/or every allocation sampled (the child
// writes the files).
func (e *env) profileServer(client *http.Client, url string, bin []request) error {
	if err := e.server.command("profile start"); err != nil {
		return err
	}
	r := load(client, url, bin, checkBinary, e.cfg.concurrency, e.cfg.duration)
	if err := e.server.command("profile stop"); err != nil {
		return err
	}
	fmt.Printf("profiled server binary phase: %d images in %s, %.1f img/s; server process CPU %.2fs, cores %.2f, %.0fus/img; %s\n",
		r.ok, r.wall.Round(time.Millisecond), r.perSecond(), r.srv.Seconds(), r.srvCores(), r.srvCPUPerImage()*1e6, r.noise())
	if f := e.cfg.cpuProfile; f != "" {
		fmt.Printf("  CPU profile of the server process in %s (go tool pprof -top %s)\n", f, f)
	}
	if f := e.cfg.memProfile; f != "" {
		fmt.Printf("  allocation profile of the server process in %s (go tool pprof -sample_index=alloc_space -base %s.base -top %s)\n",
			f, f, f)
	}
	return nil
}

func writeAllocs(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// rawTextdir runs batches of b images through the session from callers
// goroutines at once (as many as the server has workers on its one shared
// session) until d has passed or each ran maxRuns. Each run does what the
// server's session.run does: wrap the Go input in a tensor, Run with ONNX
// Runtime allocating the output, read the output, destroy both.
func rawTextdir(sess *ort.DynamicAdvancedSession, in []float32, b, callers int, d time.Duration, maxRuns int) (rawResult, error) {
	shape := ort.NewShape(int64(b), 3, 48, 192)
	m := startMeter()
	var runs atomic.Int64
	errs := make(chan error, callers)
	for range callers {
		go func() {
			for n := 0; n < maxRuns && (n == 0 || time.Since(m.wall0) < d); n++ {
				if err := rawTextdirRun(sess, shape, in, b); err != nil {
					errs <- err
					return
				}
				runs.Add(1)
			}
			errs <- nil
		}()
	}
	var err error
	for range callers {
		err = errors.Join(err, <-errs)
	}
	m.stop()
	return rawResult{batch: b, runs: int(runs.Load()), callers: callers, meter: m}, err
}

func rawTextdirRun(sess *ort.DynamicAdvancedSession, shape ort.Shape, in []float32, b int) error {
	t, err := ort.NewTensor(shape, in)
	if err != nil {
		return err
	}
	outs := []ort.Value{nil}
	err = sess.Run([]ort.Value{t}, outs)
	_ = t.Destroy()
	if err != nil {
		return err
	}
	out, ok := outs[0].(*ort.Tensor[float32])
	if !ok {
		return fmt.Errorf("output is %T, want FP32 tensor", outs[0])
	}
	p := out.GetData()
	if len(p) != 2*b || math.Abs(float64(p[0]+p[1])-1) > 1e-3 {
		return fmt.Errorf("raw output %v is not %d probability pairs", p[:min(4, len(p))], b)
	}
	return out.Destroy()
}

// makeImages returns synthetic images in [-1, 1]: text-like dark stripes on
// a light ground (as scripts/textdir-request.sh draws) plus seeded noise, so
// no two are alike.
func makeImages() [][]float32 {
	rng := rand.New(rand.NewPCG(1, 2))
	out := make([][]float32, nImages)
	for k := range out {
		img := make([]float32, imageFloats)
		period := 9 + k
		for c := range 3 {
			for y := range 48 {
				for x := range 192 {
					v := float32(0.9)
					if y > 14 && y < 34 && x%period < period/2+1 {
						v = -0.8
					}
					v += float32(rng.Float64()*0.2 - 0.1)
					img[(c*48+y)*192+x] = max(-1, min(1, v))
				}
			}
		}
		out[k] = img
	}
	return out
}

// batchOf concatenates b images (cycling) into one [b,3,48,192] input.
func batchOf(images [][]float32, b int) []float32 {
	out := make([]float32, 0, b*imageFloats)
	for i := range b {
		out = append(out, images[i%len(images)]...)
	}
	return out
}

// binaryBodies encodes one request per image with the binary tensor
// extension: a JSON header, then the image's FP32 little-endian bytes, and
// asks for the output in binary too.
func binaryBodies(images [][]float32) []request {
	out := make([]request, len(images))
	for i, img := range images {
		header := fmt.Sprintf(`{"inputs":[{"name":"x","shape":[1,3,48,192],"datatype":"FP32","parameters":{"binary_data_size":%d}}],"parameters":{"binary_data_output":true}}`, 4*len(img))
		body := make([]byte, 0, len(header)+4*len(img))
		body = append(body, header...)
		for _, f := range img {
			body = binary.LittleEndian.AppendUint32(body, math.Float32bits(f))
		}
		out[i] = request{body: body, header: len(header), length: strconv.Itoa(len(header))}
	}
	return out
}

// jsonBodies encodes the same requests as plain JSON.
func jsonBodies(images [][]float32) []request {
	out := make([]request, len(images))
	for i, img := range images {
		b := []byte(`{"inputs":[{"name":"x","shape":[1,3,48,192],"datatype":"FP32","data":[`)
		for j, f := range img {
			if j > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendFloat(b, float64(f), 'g', -1, 32)
		}
		b = append(b, "]}]}"...)
		out[i] = request{body: b, header: -1}
	}
	return out
}

// checkBinary accepts a binary response whose one output is two FP32
// probabilities summing to 1.
func checkBinary(h http.Header, body []byte) error {
	n, err := strconv.Atoi(h.Get(inference.HeaderLength))
	if err != nil || n < 0 || n > len(body) {
		return fmt.Errorf("response %s %q is not a length within the %d-byte body", inference.HeaderLength, h.Get(inference.HeaderLength), len(body))
	}
	blob := body[n:]
	if len(blob) != 8 {
		return fmt.Errorf("binary output has %d bytes, want 8 (FP32 [1,2])", len(blob))
	}
	p0 := math.Float32frombits(binary.LittleEndian.Uint32(blob))
	p1 := math.Float32frombits(binary.LittleEndian.Uint32(blob[4:]))
	if math.Abs(float64(p0+p1)-1) > 1e-3 {
		return fmt.Errorf("probabilities %v + %v do not sum to 1", p0, p1)
	}
	return nil
}

// checkJSON accepts a JSON response whose output holds two probabilities
// summing to 1.
func checkJSON(_ http.Header, body []byte) error {
	var r struct {
		Outputs []struct {
			Name string    `json:"name"`
			Data []float64 `json:"data"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("response is not JSON: %w", err)
	}
	if len(r.Outputs) != 1 || len(r.Outputs[0].Data) != 2 {
		return errors.New("response does not hold one output of two values")
	}
	if d := r.Outputs[0].Data; math.Abs(d[0]+d[1]-1) > 1e-3 {
		return fmt.Errorf("probabilities %v do not sum to 1", d)
	}
	return nil
}
