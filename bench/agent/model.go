package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"meridian.dev/meridian/internal/loadgen"
)

// textdirRepo is the bundled textdir model with one ORT thread per
// replica, so replicas, not threads, add capacity.
func textdirRepo() (string, error) {
	dir, err := os.MkdirTemp("", "meridian-p6-")
	if err != nil {
		return "", err
	}
	src, err := filepath.Abs("models/textdir/1/model.onnx")
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Join(dir, "textdir", "1"), 0o755); err != nil {
		return "", err
	}
	if err := os.Symlink(src, filepath.Join(dir, "textdir", "1", "model.onnx")); err != nil {
		return "", err
	}
	cfg := "max_batch_size: 8\nqueue_size: 512\nworkers: 1\nintra_op_threads: 1\nno_cache: true\n"
	return dir, os.WriteFile(filepath.Join(dir, "textdir", "config.yaml"), []byte(cfg), 0o644)
}

// textdirBody is one 3x48x192 image in the binary tensor extension, so
// the replicas spend their CPU on the model rather than on JSON numbers.
func textdirBody() []byte {
	raw := make([]byte, 0, 4*3*48*192)
	for i := range 3 * 48 * 192 {
		v := float32(0.9)
		if i%192%12 < 7 && i/192%48 > 14 && i/192%48 < 34 {
			v = -0.8
		}
		raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(v))
	}
	header := fmt.Sprintf(`{"inputs":[{"name":"x","datatype":"FP32","shape":[1,3,48,192],"parameters":{"binary_data_size":%d}}]}`, len(raw))
	headerLen = strconv.Itoa(len(header))
	return append([]byte(header), raw...)
}

// headerLen is the Inference-Header-Content-Length of textdirBody.
var headerLen string

func serveArgs(repo string) []string {
	lib, _ := filepath.Abs(".cache/onnxruntime/libonnxruntime.so.1")
	return []string{"--models", repo, "--ort-lib", lib, "--cache-size", "0", "--log-level", "warn"}
}

// calibrate measures one replica's closed-loop throughput and its p95 at
// one request at a time. They size the load; the p95 target is not
// derived from them (see -p95-target).
func calibrate(bin, repo string, img []byte) (float64, time.Duration, error) {
	cmd := exec.Command(bin, append([]string{"serve", "--listen", "127.0.0.1:18631"}, serveArgs(repo)...)...)
	if err := cmd.Start(); err != nil {
		return 0, 0, fmt.Errorf("starting the calibration replica: %w", err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	url := "http://127.0.0.1:18631"
	for i := 0; !ready(url); i++ {
		if i > 300 {
			return 0, 0, fmt.Errorf("calibration replica never became ready")
		}
		time.Sleep(50 * time.Millisecond)
	}
	ctx := context.Background()
	var lat []time.Duration
	for range 100 {
		start := time.Now()
		if err := infer(ctx, url, img); err != nil {
			return 0, 0, fmt.Errorf("calibrating: %w", err)
		}
		lat = append(lat, time.Since(start))
	}
	var done atomic.Int64
	stop := time.Now().Add(3 * time.Second)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for time.Now().Before(stop) {
				if infer(ctx, url, img) == nil {
					done.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return float64(done.Load()) / 3, loadgen.Percentile(lat, 0.95), nil
}

// httpClient holds up to 512 connections to a replica; requests beyond
// wait for one, and that wait is part of their latency. Requests are
// bounded by their context (requestTimeout).
var httpClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512, MaxConnsPerHost: 512}}

func infer(ctx context.Context, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v2/models/textdir/infer", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Inference-Header-Content-Length", headerLen)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// ready says whether a model endpoint answers its readiness check.
func ready(endpoint string) bool {
	if endpoint == "" {
		return false
	}
	resp, err := http.Get(endpoint + "/v2/health/ready")
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
