package inference

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// ModelConfig is a model's config.yaml, shared by all its versions. Every
// field has a working zero value; see docs/inference.md.
type ModelConfig struct {
	// MaxBatchSize is the largest batch, in rows of the first dimension,
	// that one model run takes. 0 turns batching off: the model's first
	// dimension is then not a batch dimension and each request runs alone.
	MaxBatchSize int64 `json:"max_batch_size"`
	// MaxQueueDelay is how long a worker that has some requests waits for
	// more before it runs a batch smaller than MaxBatchSize. 0 (the
	// default) runs whatever is queued as soon as a worker is free, which
	// keeps latency lowest at light load and still forms large batches
	// under load, because requests queue while the model runs.
	MaxQueueDelay Duration `json:"max_queue_delay"`
	// QueueSize bounds the requests waiting for a worker; beyond it the
	// server answers 429 at once. Default 128.
	QueueSize int `json:"queue_size"`
	// Workers is the number of batches of this model version that run at
	// the same time on its one shared session. Default 1.
	Workers int `json:"workers"`
	// IntraOpThreads is ONNX Runtime's thread count inside one run.
	// 0 lets ONNX Runtime use every core.
	IntraOpThreads int `json:"intra_op_threads"`
	// PadInputs names inputs whose last dimension may differ between
	// requests; they are padded with zeros or empty strings to the longest
	// so the requests still share a batch. Only for models where padding
	// does not change the answer (the sentiment model ignores "").
	PadInputs []string `json:"pad_inputs"`
	// NoCache turns the result cache off for this model; set it for
	// stateful or non-deterministic models.
	NoCache bool `json:"no_cache"`
	// Text, when set, lets POST /analyze drive this model with raw text.
	Text *TextConfig `json:"text,omitempty"`
	// Limits override, field by field, the server's input limits for this
	// model (see InputLimits).
	Limits InputLimits `json:"limits"`
}

// TextConfig wires a text model to POST /analyze.
type TextConfig struct {
	// Tokenizer names the tokenizer: "words" (see text.go).
	Tokenizer string `json:"tokenizer"`
	// Input is the BYTES input of shape [1, T] that receives the tokens.
	Input string `json:"input"`
	// Output is the FP32 output holding the probability that the text is
	// positive.
	Output string `json:"output"`
	// Score is an optional FP32 output whose sign decides the label
	// (positive, negative, or 0 for NEUTRAL). Without it the label comes
	// from Output alone.
	Score string `json:"score"`
}

// Duration is a time.Duration written as "5ms" in config files.
type Duration struct{ time.Duration }

// UnmarshalJSON parses a Go duration string such as "2ms".
func (d *Duration) UnmarshalJSON(b []byte) error {
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return fmt.Errorf("duration must be a string such as \"2ms\", got %s", b)
	}
	d.Duration, err = time.ParseDuration(s)
	return err
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(d.String())), nil }

func (c *ModelConfig) setDefaults() {
	if c.QueueSize == 0 {
		c.QueueSize = 128
	}
	if c.Workers == 0 {
		c.Workers = 1
	}
}

func (c *ModelConfig) validate() error {
	var errs []error
	if c.MaxBatchSize < 0 {
		errs = append(errs, errors.New("max_batch_size must be >= 0"))
	}
	if c.MaxQueueDelay.Duration < 0 || c.MaxQueueDelay.Duration > time.Second {
		errs = append(errs, errors.New("max_queue_delay must be between 0 and 1s"))
	}
	if c.QueueSize < 1 {
		errs = append(errs, errors.New("queue_size must be >= 1"))
	}
	if c.Workers < 1 || c.Workers > 64 {
		errs = append(errs, errors.New("workers must be between 1 and 64"))
	}
	if c.IntraOpThreads < 0 {
		errs = append(errs, errors.New("intra_op_threads must be >= 0"))
	}
	if l := c.Limits; l.MaxDim < 0 || l.MaxRequestElements < 0 || l.MaxRequestBytes < 0 || l.MaxBatchElements < 0 || l.MaxBatchBytes < 0 {
		errs = append(errs, errors.New("limits must be positive (or left out for the server's)"))
	}
	if t := c.Text; t != nil && (t.Tokenizer != "words" || t.Input == "" || t.Output == "") {
		errs = append(errs, errors.New(`text needs tokenizer: words, input and output`))
	}
	return errors.Join(errs...)
}

// ModelSpec is one version of one model found in the repository.
type ModelSpec struct {
	Name    string
	Version int64
	// Path is the version's model.onnx.
	Path string
	// Digest is the SHA-256 of model.onnx; it keys the result cache, so a
	// replaced file can never serve answers cached from the old one.
	Digest string
	Config ModelConfig
}

// ScanRepository reads a model repository laid out as
//
//	<root>/<model>/config.yaml          (optional; defaults otherwise)
//	<root>/<model>/<version>/model.onnx (version: a positive integer)
//
// and returns every version found, ordered by name then version. A model
// directory without any version is reported as an error, so a missing
// download is noticed rather than silently skipped.
func ScanRepository(root string) ([]ModelSpec, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("reading model repository: %w (pass --models DIR)", err)
	}
	var specs []ModelSpec
	for _, e := range entries {
		if !e.IsDir() || e.Name()[0] == '.' {
			continue
		}
		found, err := scanModel(filepath.Join(root, e.Name()), e.Name())
		if err != nil {
			return nil, err
		}
		specs = append(specs, found...)
	}
	if len(specs) == 0 {
		return nil, fmt.Errorf("model repository %s holds no models (<model>/<version>/model.onnx)", root)
	}
	return specs, nil
}

func scanModel(dir, name string) ([]ModelSpec, error) {
	var cfg ModelConfig
	switch b, err := os.ReadFile(filepath.Join(dir, "config.yaml")); {
	case err == nil:
		if err := yaml.UnmarshalStrict(b, &cfg); err != nil {
			return nil, fmt.Errorf("model %s: config.yaml: %w", name, err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("model %s: %w", name, err)
	}
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("model %s: config.yaml: %w", name, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", name, err)
	}
	var specs []ModelSpec
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		v, err := strconv.ParseInt(e.Name(), 10, 64)
		if err != nil || v < 1 {
			return nil, fmt.Errorf("model %s: version directory %q is not a positive integer", name, e.Name())
		}
		path := filepath.Join(dir, e.Name(), "model.onnx")
		digest, err := fileDigest(path)
		if err != nil {
			return nil, fmt.Errorf("model %s version %d: %w (run `make deps` for the bundled models)", name, v, err)
		}
		specs = append(specs, ModelSpec{Name: name, Version: v, Path: path, Digest: digest, Config: cfg})
	}
	if len(specs) == 0 {
		return nil, fmt.Errorf("model %s has no version directory with a model.onnx (run `make deps` for the bundled models)", name)
	}
	slices.SortFunc(specs, func(a, b ModelSpec) int { return cmp.Compare(a.Version, b.Version) })
	return specs, nil
}

// OnlyVersions keeps, of each model named in only, just the version it
// names; a model or version that is not there is an error naming the
// versions that are.
func OnlyVersions(specs []ModelSpec, only map[string]int64) ([]ModelSpec, error) {
	if len(only) == 0 {
		return specs, nil
	}
	have := map[string][]string{}
	var out []ModelSpec
	for _, s := range specs {
		v, ok := only[s.Name]
		if !ok || v == s.Version {
			out = append(out, s)
		}
		have[s.Name] = append(have[s.Name], strconv.FormatInt(s.Version, 10))
	}
	for _, name := range slices.Sorted(maps.Keys(only)) {
		found := false
		for _, s := range out {
			found = found || s.Name == name
		}
		switch {
		case len(have[name]) == 0:
			return nil, fmt.Errorf("no model %s to serve version %d of", name, only[name])
		case !found:
			return nil, fmt.Errorf("model %s has no version %d (versions here: %s); add %s/%d/model.onnx", name, only[name], strings.Join(have[name], ", "), name, only[name])
		}
	}
	return out, nil
}

func fileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// FindRepository returns the model repository to serve: explicit if set,
// else ./models, else the models directory beside the binary's parent (the
// checkout's bundled models when run as bin/meridian).
func FindRepository(explicit string) (string, error) {
	if explicit != "" {
		return explicit, nil
	}
	candidates := []string{"models"}
	if exe, err := os.Executable(); err == nil {
		candidates = append(candidates, filepath.Join(filepath.Dir(exe), "..", "models"))
	}
	for _, c := range candidates {
		if st, err := os.Stat(c); err == nil && st.IsDir() {
			return filepath.Abs(c)
		}
	}
	return "", fmt.Errorf("no model repository found (looked in %v); pass --models DIR", candidates)
}
