package inference

import (
	"strings"
	"unicode"
)

// Tokenize is the "words" tokenizer behind POST /analyze: it lower-cases
// the text and returns its words, where a word is a run of letters, digits,
// apostrophes and hyphens (so "can't" and "cover-up" stay whole, as in the
// AFINN lexicon), with apostrophes and hyphens trimmed from both ends.
// Typographic apostrophes (’ and ‘) count as '. Everything else separates
// words.
func Tokenize(text string) []string {
	var words []string
	var b strings.Builder
	flush := func() {
		w := strings.Trim(b.String(), "'-")
		if w != "" {
			words = append(words, w)
		}
		b.Reset()
	}
	for _, r := range text {
		switch {
		case r == '’' || r == '‘':
			b.WriteByte('\'')
		case r == '\'' || r == '-' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(unicode.ToLower(r))
		default:
			flush()
		}
	}
	flush()
	return words
}

// Sentiment labels returned by POST /analyze.
const (
	Positive = "POSITIVE"
	Negative = "NEGATIVE"
	Neutral  = "NEUTRAL"
)

// label turns the model's probability of "positive" (and, when the model
// has one, its raw score) into /analyze's label and confidence: the
// probability of the label chosen. A text with no sentiment-bearing word
// scores exactly 0, which is NEUTRAL with confidence 1 - |2p - 1|.
func label(pPos float64, score float64, hasScore bool) (string, float64) {
	if !hasScore {
		score = pPos - 0.5
	}
	switch {
	case score > 0:
		return Positive, pPos
	case score < 0:
		return Negative, 1 - pPos
	}
	d := 2*pPos - 1
	if d < 0 {
		d = -d
	}
	return Neutral, 1 - d
}
