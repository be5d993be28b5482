// Package inference is Meridian's model server: it loads ONNX models from a
// model repository into ONNX Runtime, batches concurrent requests
// dynamically behind a bounded queue with per-request deadlines, sheds load
// with 429 when the queue is full, caches results, and speaks the Open
// Inference Protocol v2 (KServe / Triton) over HTTP plus Meridian's
// POST /analyze, and over gRPC (inference.GRPCInferenceService, package
// oip) on the same port: the listener takes HTTP/2 (h2c, or h2 by ALPN
// under TLS) beside HTTP/1.1, and application/grpc requests go to a
// grpc.Server whose calls take the HTTP requests' path (auth door,
// lookup, validation, limits, cache, queue, metrics). Every request path
// is instrumented with meridian_inference_* Prometheus metrics.
//
// Hostile input costs little: Serve runs on internal/httpserve's hardened
// listener (header, body and write deadlines, connection and in-flight
// caps); bodies are read as they arrive, never allocated at the length a
// client announces; every model's inputs are bounded per request and per
// batch, padding included, before they are queued (InputLimits, 413
// beyond); and a batch that panics fails its own requests with 500 while
// the model keeps serving.
//
// The pieces, one file each: repository.go (layout on disk and per-model
// config), runtime.go (the ONNX Runtime environment and sessions),
// tensor.go (tensors, validation, batching), limits.go (input limits),
// protocol.go (OIP v2 JSON and binary wire format), scheduler.go (queue,
// batcher, workers), cache.go, metrics.go, text.go (the /analyze
// tokenizer), server.go (HTTP routes), grpc.go (the gRPC service and its
// wire format) and httpio.go (reading bodies, writing answers and errors).
// docs/inference.md is the user-facing reference.
package inference
