package inference

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"meridian.dev/meridian/internal/tracing"
)

// errQueueFull is returned when a request would overflow the bounded
// queue; the server answers 429 with Retry-After.
var errQueueFull = errors.New("the model's queue is full; retry later")

// errStopped is returned once the model version is shutting down.
var errStopped = errors.New("the server is shutting down")

// job is one request waiting for, or in, a batch.
type job struct {
	ctx      context.Context
	inputs   []*Tensor // in the model's input order
	rows     int64
	key      string // requests batch together only when their keys match
	enqueued time.Time
	done     chan jobResult // buffered: a worker never blocks on it
}

type jobResult struct {
	outputs []*Tensor // in the model's output order
	err     error
}

// modelVersion is one loaded version: its shared session, its bounded
// queue and the workers that batch from it.
type modelVersion struct {
	spec    ModelSpec
	version string
	sess    *session
	padded  map[string]bool
	limits  InputLimits
	metrics *metrics
	log     *slog.Logger

	// beforeRun, when set (by tests), is called by a worker just before it
	// runs a batch; it lets a test hold the model busy, or make it panic.
	beforeRun func()

	mu      sync.RWMutex // guards stopped against close(queue)
	stopped bool
	queue   chan *job
	workers sync.WaitGroup
}

func newModelVersion(spec ModelSpec, sess *session, limits InputLimits, m *metrics, log *slog.Logger) *modelVersion {
	v := &modelVersion{
		spec:    spec,
		version: strconv.FormatInt(spec.Version, 10),
		sess:    sess,
		padded:  make(map[string]bool),
		limits:  limits,
		metrics: m,
		log:     log,
		queue:   make(chan *job, spec.Config.QueueSize),
	}
	for _, name := range spec.Config.PadInputs {
		v.padded[name] = true
	}
	for range spec.Config.Workers {
		v.workers.Add(1)
		go v.work()
	}
	return v
}

// batching reports whether the model's first dimension is a batch.
func (v *modelVersion) batching() bool { return v.spec.Config.MaxBatchSize > 0 }

// saturated reports whether the queue is full, so new requests are shed.
func (v *modelVersion) saturated() bool { return len(v.queue) >= cap(v.queue) }

// prepare checks the request's inputs against the model and its limits,
// and orders them as the model expects. A request over a limit is a 413,
// any other mismatch a plain error (400).
func (v *modelVersion) prepare(inputs []*Tensor) (*job, error) {
	byName := make(map[string]*Tensor, len(inputs))
	for _, t := range inputs {
		byName[t.Name] = t
	}
	j := &job{inputs: make([]*Tensor, len(v.sess.inputs)), done: make(chan jobResult, 1)}
	var key strings.Builder
	for i, want := range v.sess.inputs {
		t, ok := byName[want.Name]
		if !ok {
			return nil, fmt.Errorf("missing input %q (%s %v)", want.Name, want.Datatype, want.Shape)
		}
		delete(byName, want.Name)
		if t.Datatype != want.Datatype {
			return nil, fmt.Errorf("input %q must be %s, got %s", t.Name, want.Datatype, t.Datatype)
		}
		if len(t.Shape) != len(want.Shape) {
			return nil, fmt.Errorf("input %q must have shape %v, got %v", t.Name, want.Shape, t.Shape)
		}
		for d, size := range want.Shape {
			if t.Shape[d] == 0 {
				return nil, fmt.Errorf("input %q has an empty dimension in shape %v", t.Name, t.Shape)
			}
			if size >= 0 && t.Shape[d] != size && !(d == 0 && v.batching()) {
				return nil, fmt.Errorf("input %q must have shape %v, got %v", t.Name, want.Shape, t.Shape)
			}
		}
		if v.batching() {
			rows := t.rows()
			if i > 0 && rows != j.rows {
				return nil, fmt.Errorf("input %q has %d rows but %q has %d; all inputs share the batch dimension", t.Name, rows, j.inputs[0].Name, j.rows)
			}
			if rows > v.spec.Config.MaxBatchSize {
				return nil, fmt.Errorf("input %q has %d rows, more than max_batch_size %d; split the request", t.Name, rows, v.spec.Config.MaxBatchSize)
			}
			j.rows = rows
			key.WriteString(t.shapeKey(v.padded[t.Name]))
			key.WriteByte(';')
		}
		j.inputs[i] = t
	}
	for name := range byName {
		return nil, fmt.Errorf("the model has no input %q; it takes %v", name, names(v.sess.inputs))
	}
	if err := v.limits.checkRequest(j.inputs); err != nil {
		return nil, err
	}
	j.key = key.String()
	return j, nil
}

// submit queues the job without blocking: a full queue is errQueueFull.
func (v *modelVersion) submit(j *job) error {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if v.stopped {
		return errStopped
	}
	j.enqueued = time.Now()
	select {
	case v.queue <- j:
		return nil
	default:
		return errQueueFull
	}
}

// stop lets the workers finish what is queued, then waits for them.
func (v *modelVersion) stop() {
	v.mu.Lock()
	if !v.stopped {
		v.stopped = true
		close(v.queue)
	}
	v.mu.Unlock()
	v.workers.Wait()
}

// work takes whatever is queued, up to MaxBatchSize rows of one shape, and
// runs it as one batch. With MaxQueueDelay 0 it never waits for more, so a
// lone request runs at once while requests that arrive during a run form
// the next batch.
func (v *modelVersion) work() {
	defer v.workers.Done()
	var carry *job
	for {
		first := carry
		carry = nil
		if first == nil {
			var ok bool
			if first, ok = <-v.queue; !ok {
				return
			}
		}
		if v.expired(first) {
			continue
		}
		batch := []*job{first}
		if v.batching() {
			batch, carry = v.collect(first)
		}
		v.runRecovering(batch)
	}
}

// runRecovering runs the batch; a panic in it (ONNX Runtime's bindings,
// a bug of ours) fails that batch's requests with 500 and leaves the
// worker serving the next one.
func (v *modelVersion) runRecovering(batch []*job) {
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		v.metrics.panics.WithLabelValues(v.spec.Name, v.version).Inc()
		v.log.Error("a batch panicked; its requests fail, the model keeps serving", "model", v.spec.Name, "version", v.version,
			"requests", len(batch), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		err := fmt.Errorf("model %s version %s failed on this batch (the server logged why)", v.spec.Name, v.version)
		for _, j := range batch {
			select { // a job answered before the panic keeps its answer
			case j.done <- jobResult{err: err}:
			default:
			}
		}
	}()
	v.run(batch)
}

// collect gathers jobs compatible with first until the batch is full, the
// queue is empty and the delay has passed, or an incompatible job arrives
// or one that would take the batch over its limits, padding included
// (returned as carry, to lead the next batch).
func (v *modelVersion) collect(first *job) (batch []*job, carry *job) {
	batch = []*job{first}
	size := load{}.with(first)
	var timeout <-chan time.Time
	if d := v.spec.Config.MaxQueueDelay.Duration - time.Since(first.enqueued); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	for size.rows < v.spec.Config.MaxBatchSize {
		var j *job
		var ok bool
		select {
		case j, ok = <-v.queue:
		default:
			if timeout == nil {
				return batch, nil
			}
			select {
			case j, ok = <-v.queue:
			case <-timeout:
				return batch, nil
			}
		}
		if !ok {
			return batch, nil
		}
		if v.expired(j) {
			continue
		}
		next := size.with(j)
		if j.key != first.key || next.rows > v.spec.Config.MaxBatchSize || !next.fits(j, v.limits) {
			return batch, j
		}
		batch = append(batch, j)
		size = next
	}
	return batch, nil
}

// expired answers a job whose deadline passed or whose client left while it
// was queued, so it never reaches the model.
func (v *modelVersion) expired(j *job) bool {
	if err := j.ctx.Err(); err != nil {
		v.metrics.expired.WithLabelValues(v.spec.Name, v.version).Inc()
		j.done <- jobResult{err: err}
		return true
	}
	return false
}

// trace records, under each traced request's span, a serve.queue span
// (from its arrival in the queue to its batch's start) and a serve.batch
// span (the model's run of the batch it rode in, sized in rows and
// requests). Requests that are not traced cost one context lookup.
func (v *modelVersion) trace(batch []*job, rows int64, start, end time.Time, err error) {
	for _, j := range batch {
		parent := trace.SpanFromContext(j.ctx)
		if !parent.IsRecording() {
			continue
		}
		t := parent.TracerProvider().Tracer(tracing.Scope)
		wait := float64(start.Sub(j.enqueued).Microseconds()) / 1000
		model := []attribute.KeyValue{tracing.AttrModel.String(v.spec.Name), tracing.AttrModelVersion.String(v.version)}
		_, q := t.Start(j.ctx, "serve.queue", trace.WithTimestamp(j.enqueued),
			trace.WithAttributes(model...), trace.WithAttributes(tracing.AttrQueueWaitMS.Float64(wait)))
		q.End(trace.WithTimestamp(start))
		_, b := t.Start(j.ctx, "serve.batch", trace.WithTimestamp(start), trace.WithAttributes(model...),
			trace.WithAttributes(
				tracing.AttrBatchSize.Int64(rows), tracing.AttrBatchRequests.Int(len(batch)),
				tracing.AttrRequestRows.Int64(j.rows), tracing.AttrQueueWaitMS.Float64(wait),
				tracing.AttrRunMS.Float64(float64(end.Sub(start).Microseconds())/1000)))
		if err != nil {
			b.RecordError(err)
			b.SetStatus(codes.Error, "the model's run failed")
		}
		b.End(trace.WithTimestamp(end))
	}
}

// run executes one batch and hands each job its rows of the outputs.
func (v *modelVersion) run(batch []*job) {
	if v.beforeRun != nil {
		v.beforeRun()
	}
	start := time.Now()
	var rows int64
	for _, j := range batch {
		v.metrics.queueDuration.WithLabelValues(v.spec.Name, v.version).Observe(start.Sub(j.enqueued).Seconds())
		rows += j.rows
	}
	inputs := batch[0].inputs
	if len(batch) > 1 {
		inputs = make([]*Tensor, len(v.sess.inputs))
		parts := make([]*Tensor, len(batch))
		for i, in := range v.sess.inputs {
			for k, j := range batch {
				parts[k] = j.inputs[i]
			}
			inputs[i] = concat(parts, v.padded[in.Name])
		}
	}
	outputs, err := v.sess.run(inputs)
	end := time.Now()
	v.metrics.runDuration.WithLabelValues(v.spec.Name, v.version).Observe(end.Sub(start).Seconds())
	v.trace(batch, rows, start, end, err)
	if v.batching() {
		v.metrics.batchSize.WithLabelValues(v.spec.Name, v.version).Observe(float64(rows))
	}
	if err != nil {
		err = fmt.Errorf("model %s version %s failed: %w", v.spec.Name, v.version, err)
		for _, j := range batch {
			j.done <- jobResult{err: err}
		}
		return
	}
	if len(batch) == 1 {
		batch[0].done <- jobResult{outputs: outputs}
		return
	}
	for _, o := range outputs {
		if o.rows() != rows {
			err := fmt.Errorf("model %s output %q has %d rows for a batch of %d; set max_batch_size: 0 if its first dimension is not a batch", v.spec.Name, o.Name, o.rows(), rows)
			for _, j := range batch {
				j.done <- jobResult{err: err}
			}
			return
		}
	}
	var from int64
	for _, j := range batch {
		mine := make([]*Tensor, len(outputs))
		for i, o := range outputs {
			mine[i] = o.sliceRows(from, j.rows)
		}
		from += j.rows
		j.done <- jobResult{outputs: mine}
	}
}
