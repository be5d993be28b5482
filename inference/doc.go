// Package inference is Meridian's model server: it loads ONNX models from a
// model repository into ONNX Runtime, batches concurrent requests
// dynamically behind a bounded queue with per-request deadlines, sheds load
// with 429 when the queue is full, caches results, and speaks the Open
// Inference Protocol v2 (KServe / Triton) over HTTP plus Meridian's
// POST /analyze. Every request path is instrumented with
// meridian_inference_* Prometheus metrics.
//
// The pieces, one file each: repository.go (layout on disk and per-model
// config), runtime.go (the ONNX Runtime environment and sessions),
// tensor.go (tensors, validation, batching), protocol.go (OIP v2 JSON and
// binary wire format), scheduler.go (queue, batcher, workers), cache.go,
// metrics.go, text.go (the /analyze tokenizer) and server.go (HTTP).
// docs/inference.md is the user-facing reference.
package inference
