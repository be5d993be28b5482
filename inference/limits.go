package inference

import (
	"errors"
	"fmt"
	"net/http"
)

// InputLimits bound what a request, and a batch, may ask of a model, so
// that no input (a padded one least of all) can make the server allocate
// far beyond the body it sent. The server's flags set every model's
// limits; a model's config.yaml may set its own ("limits:"), field by
// field. Requests over a limit are refused 413 before they are queued;
// a request that would take a forming batch over a batch limit waits for
// the next batch instead.
type InputLimits struct {
	// MaxDim caps every dimension of every input, the batch dimension and
	// padded last dimensions included (a batch pads to its longest row,
	// so this also caps the padding). Default 65536 (--max-input-dim).
	MaxDim int64 `json:"max_dim,omitempty"`
	// MaxRequestElements caps the elements of a request's inputs
	// together. Default 16Mi (--max-request-elements).
	MaxRequestElements int64 `json:"max_request_elements,omitempty"`
	// MaxRequestBytes caps the bytes of a request's inputs together:
	// numeric elements at their width, BYTES elements at their length.
	// Default 64 MiB (--max-request-bytes).
	MaxRequestBytes int64 `json:"max_request_bytes,omitempty"`
	// MaxBatchElements caps the elements of one batch's inputs, padding
	// included. Default 16Mi (--max-batch-elements); at least
	// MaxRequestElements.
	MaxBatchElements int64 `json:"max_batch_elements,omitempty"`
	// MaxBatchBytes caps the bytes of one batch's inputs, padding
	// included. Default 256 MiB (--max-batch-bytes); at least
	// MaxRequestBytes.
	MaxBatchBytes int64 `json:"max_batch_bytes,omitempty"`
}

// DefaultInputLimits are the limits a server applies when neither its
// options nor a model's config set them.
var DefaultInputLimits = InputLimits{
	MaxDim:             1 << 16,
	MaxRequestElements: 1 << 24,
	MaxRequestBytes:    64 << 20,
	MaxBatchElements:   1 << 24,
	MaxBatchBytes:      256 << 20,
}

// over returns l with every field that o sets taken from o.
func (l InputLimits) over(o InputLimits) InputLimits {
	set := func(dst *int64, v int64) {
		if v != 0 {
			*dst = v
		}
	}
	set(&l.MaxDim, o.MaxDim)
	set(&l.MaxRequestElements, o.MaxRequestElements)
	set(&l.MaxRequestBytes, o.MaxRequestBytes)
	set(&l.MaxBatchElements, o.MaxBatchElements)
	set(&l.MaxBatchBytes, o.MaxBatchBytes)
	return l
}

func (l InputLimits) validate() error {
	var errs []error
	if l.MaxDim < 1 || l.MaxRequestElements < 1 || l.MaxRequestBytes < 1 || l.MaxBatchElements < 1 || l.MaxBatchBytes < 1 {
		errs = append(errs, fmt.Errorf("input limits must be positive, got %+v", l))
	}
	if l.MaxBatchElements < l.MaxRequestElements {
		errs = append(errs, fmt.Errorf("max_batch_elements %d is below max_request_elements %d: a request the server accepts could never run", l.MaxBatchElements, l.MaxRequestElements))
	}
	if l.MaxBatchBytes < l.MaxRequestBytes {
		errs = append(errs, fmt.Errorf("max_batch_bytes %d is below max_request_bytes %d: a request the server accepts could never run", l.MaxBatchBytes, l.MaxRequestBytes))
	}
	return errors.Join(errs...)
}

func tooLarge(err error) error { return &requestError{http.StatusRequestEntityTooLarge, err} }

// checkRequest refuses a request (its inputs in the model's order) over
// the request limits.
func (l InputLimits) checkRequest(inputs []*Tensor) error {
	var elements, bytes int64
	for _, t := range inputs {
		for d, size := range t.Shape {
			if size > l.MaxDim {
				return tooLarge(fmt.Errorf("input %q: dimension %d is %d, over the model's limit of %d (max_dim)", t.Name, d, size, l.MaxDim))
			}
		}
		elements += Elements(t.Shape)
		bytes += t.dataBytes()
	}
	if elements > l.MaxRequestElements {
		return tooLarge(fmt.Errorf("the inputs hold %d elements, over the model's limit of %d per request (max_request_elements); split the request", elements, l.MaxRequestElements))
	}
	if bytes > l.MaxRequestBytes {
		return tooLarge(fmt.Errorf("the inputs hold %d bytes, over the model's limit of %d per request (max_request_bytes); split the request", bytes, l.MaxRequestBytes))
	}
	return nil
}

// dataBytes is what the tensor's elements weigh: numeric ones at their
// width, BYTES ones at their length.
func (t *Tensor) dataBytes() int64 {
	if t.Datatype != BYTES {
		return int64(len(t.Raw))
	}
	var n int64
	for _, s := range t.Strings {
		n += int64(len(s))
	}
	return n
}

// load is what a forming batch will ask of the model, padding included:
// its rows and, per input, the longest last dimension and the BYTES
// elements' total length.
type load struct {
	rows     int64
	last     []int64
	strBytes []int64
}

// with returns the load of l's batch with j added; l is not changed.
func (l load) with(j *job) load {
	n := load{rows: l.rows + j.rows, last: make([]int64, len(j.inputs)), strBytes: make([]int64, len(j.inputs))}
	for i, t := range j.inputs {
		if len(t.Shape) > 0 {
			n.last[i] = t.Shape[len(t.Shape)-1]
		}
		if l.last != nil {
			n.last[i] = max(n.last[i], l.last[i])
			n.strBytes[i] = l.strBytes[i]
		}
		if t.Datatype == BYTES {
			n.strBytes[i] += t.dataBytes()
		}
	}
	return n
}

// fits reports whether a batch of this load (jobs shaped like j, which
// share its shape key) stays within the batch limits.
func (l load) fits(j *job, lim InputLimits) bool {
	var elements, bytes int64
	for i, t := range j.inputs {
		e := l.rows
		if len(t.Shape) > 1 {
			e *= Elements(t.Shape[1:len(t.Shape)-1]) * l.last[i]
		}
		elements += e
		if t.Datatype == BYTES {
			bytes += l.strBytes[i]
		} else {
			bytes += e * int64(t.Datatype.Size())
		}
	}
	return elements <= lim.MaxBatchElements && bytes <= lim.MaxBatchBytes
}
