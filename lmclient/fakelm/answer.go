package fakelm

import (
	"bytes"
	"encoding/json"
	"hash/fnv"
	"regexp"
	"strings"
	"unicode"
)

// Lines that DSPy's ChatAdapter and JSONAdapter put at the end of the final
// user message; the fake reads the requested output fields from them.
const (
	chatRespondLine = "Respond with the corresponding output fields"
	jsonRespondLine = "Respond with a JSON object in the following order of fields:"
)

var (
	chatFieldRE  = regexp.MustCompile("`\\[\\[ ## ([^ `\\]]+) ## \\]\\]`")
	jsonFieldRE  = regexp.MustCompile("`([^`]+)`")
	inputBlockRE = regexp.MustCompile(`(?m)^\[\[ ## ([^ \]]+) ## \]\]\n`)
)

// prompt is what the fake understood of a request's last user message.
type prompt struct {
	// fields are the requested output fields in order; empty for a plain chat.
	fields []string
	// jsonFields is true when the fields came from JSONAdapter's line.
	jsonFields bool
	// question is the first input field's value (or the whole message).
	question string
}

// parsePrompt reads the output fields and the question from the last user
// message of a DSPy prompt. It never fails: unknown text is a plain question.
func parsePrompt(lastUser string) prompt {
	var p prompt
	body := lastUser
	if i := strings.Index(lastUser, jsonRespondLine); i >= 0 {
		line := firstLine(lastUser[i+len(jsonRespondLine):])
		for _, m := range jsonFieldRE.FindAllStringSubmatch(line, -1) {
			p.fields = append(p.fields, m[1])
		}
		p.jsonFields = true
		body = lastUser[:i]
	} else if i := strings.Index(lastUser, chatRespondLine); i >= 0 {
		line := firstLine(lastUser[i:])
		for _, m := range chatFieldRE.FindAllStringSubmatch(line, -1) {
			if m[1] != "completed" {
				p.fields = append(p.fields, m[1])
			}
		}
		body = lastUser[:i]
	}
	p.question = strings.TrimSpace(body)
	// The question is the value of the "question" input, else of the first.
	locs := inputBlockRE.FindAllStringSubmatchIndex(body, -1)
	for k, loc := range locs {
		end := len(body)
		if k+1 < len(locs) {
			end = locs[k+1][0]
		}
		value := strings.TrimSpace(body[loc[1]:end])
		name := body[loc[2]:loc[3]]
		if k == 0 || name == "question" {
			p.question = value
		}
		if name == "question" {
			break
		}
	}
	return p
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

var stopWords = map[string]bool{
	"what": true, "which": true, "when": true, "where": true, "does": true, "that": true,
	"this": true, "with": true, "from": true, "have": true, "your": true, "about": true,
	"would": true, "should": true, "could": true, "there": true, "their": true, "they": true,
	"them": true, "into": true, "than": true, "then": true, "were": true, "been": true,
	"will": true, "some": true, "many": true, "much": true, "more": true, "most": true,
	"explain": true, "think": true, "fakelm": true, "the": true, "and": true, "for": true,
	"are": true, "was": true, "why": true, "how": true, "who": true, "can": true, "you": true,
	"its": true, "has": true, "had": true, "not": true, "but": true, "did": true, "any": true,
}

// keywords returns up to n distinct content words of s, in order.
func keywords(s string, n int) []string {
	var out []string
	seen := map[string]bool{}
	for _, w := range strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		lw := strings.ToLower(w)
		if len(lw) < 3 || stopWords[lw] || seen[lw] {
			continue
		}
		seen[lw] = true
		out = append(out, lw)
		if len(out) == n {
			break
		}
	}
	return out
}

// questionType classifies a question the way the demo signature expects.
func questionType(q string) string {
	lq := strings.ToLower(q)
	for _, w := range []string{"should", "best", "opinion", "better", "favorite", "favourite", "prefer", "worth"} {
		if strings.Contains(lq, w) {
			return "opinion"
		}
	}
	for _, w := range []string{"why", "how", "explain", "compare", "analy", "impact", "cause", "difference"} {
		if strings.Contains(lq, w) {
			return "analytical"
		}
	}
	return "factual"
}

// answerer produces deterministic, plausible field values for one request.
type answerer struct {
	seed  uint64
	words []string
	qtype string
	// schemas are the output fields' JSON schemas read from the system
	// message; a field without one is a str.
	schemas map[string]json.RawMessage
	// root is the response_format's json_schema, when the request sent one;
	// rootProps and rootOrder are its properties.
	root      json.RawMessage
	rootProps map[string]json.RawMessage
	rootOrder []string
}

func newAnswerer(seedText string, p prompt) answerer {
	h := fnv.New64a()
	_, _ = h.Write([]byte(seedText))
	words := keywords(p.question, 5)
	if len(words) == 0 {
		words = []string{"the question"}
	}
	return answerer{seed: h.Sum64(), words: words, qtype: questionType(p.question)}
}

// typed returns a copy of a that answers each output field with a value of
// its type, read from the request's system message and, for JSONAdapter's
// structured outputs, from the response_format's schema.
func (a answerer) typed(system string, responseSchema json.RawMessage) answerer {
	a.schemas = fieldSchemas(system)
	a.root = responseSchema
	var root struct {
		Properties json.RawMessage `json:"properties"`
	}
	if json.Unmarshal(responseSchema, &root) == nil && json.Unmarshal(root.Properties, &a.rootProps) == nil {
		a.rootOrder = objectKeys(root.Properties)
	}
	return a
}

// schema is field's JSON schema, nil for a str.
func (a answerer) schema(field string) json.RawMessage {
	if s, ok := a.rootProps[field]; ok {
		return s
	}
	return a.schemas[field]
}

// typedValue is field's value as JSON text, or ok false for a str field,
// whose text is value's.
func (a answerer) typedValue(g *valueGen, field string) (text string, ok bool) {
	schema := a.schema(field)
	if schema == nil {
		return "", false
	}
	var b bytes.Buffer
	g.value(&b, schema, field, field, -1, 0)
	return b.String(), true
}

func (a answerer) pick(options ...string) string { return options[a.seed%uint64(len(options))] }

func (a answerer) topic() string { return a.words[0] }

func (a answerer) list() string {
	switch len(a.words) {
	case 1:
		return a.words[0]
	case 2:
		return a.words[0] + " and " + a.words[1]
	}
	return strings.Join(a.words[:len(a.words)-1], ", ") + " and " + a.words[len(a.words)-1]
}

func (a answerer) value(field string) string {
	switch field {
	case "reasoning", "rationale":
		return a.pick(
			"The question is about "+a.topic()+". To answer it well, we consider "+a.list()+" and how they relate.",
			"This asks about "+a.topic()+". The key points involve "+a.list()+", which together give a clear picture.",
			"To answer, recall what is known about "+a.topic()+" and connect it with "+a.list()+".",
		)
	case "answer":
		return a.pick(
			"In short, "+a.topic()+" is best understood through "+a.list()+".",
			"The answer centres on "+a.topic()+", seen through "+a.list()+".",
			"Considering "+a.list()+", the answer is that "+a.topic()+" follows from them.",
		)
	case "key_concepts":
		return strings.Join(a.words, ", ")
	case "question_type":
		return a.qtype
	}
	return "A " + strings.ReplaceAll(field, "_", " ") + " about " + a.topic() + "."
}

// chatText formats the fields in ChatAdapter format, ending with the
// completed marker.
func (a answerer) chatText(fields []string) string {
	g := newValueGen(a, a.root)
	var b strings.Builder
	for _, f := range fields {
		v := a.value(f)
		if typed, ok := a.typedValue(g, f); ok {
			v = typed
			// DSPy writes str values (a Literal's, an Optional[str]'s) bare.
			var s string
			if json.Unmarshal([]byte(typed), &s) == nil {
				v = s
			}
		}
		b.WriteString("[[ ## " + f + " ## ]]\n" + v + "\n\n")
	}
	b.WriteString("[[ ## completed ## ]]")
	return b.String()
}

// jsonText formats the fields as one JSON object, in order.
func (a answerer) jsonText(fields []string) string {
	g := newValueGen(a, a.root)
	var b strings.Builder
	b.WriteString("{")
	for i, f := range fields {
		if i > 0 {
			b.WriteString(", ")
		}
		k, _ := json.Marshal(f)
		v, _ := json.Marshal(a.value(f))
		if typed, ok := a.typedValue(g, f); ok {
			v = []byte(typed)
		}
		b.Write(k)
		b.WriteString(": ")
		b.Write(v)
	}
	b.WriteString("}")
	return b.String()
}

// garbageText is prose with no markers and no JSON.
func (a answerer) garbageText() string {
	return "Well, I am not sure how to structure this, but " + a.topic() + " is interesting because of " + a.list() + "."
}

// text is the whole answer for p.
func (a answerer) text(p prompt, wantJSON bool) string {
	fields := p.fields
	switch {
	case wantJSON || p.jsonFields:
		if len(fields) == 0 {
			fields = a.rootOrder
		}
		if len(fields) == 0 {
			fields = []string{"answer"}
		}
		return a.jsonText(fields)
	case len(fields) > 0:
		return a.chatText(fields)
	}
	return a.value("answer")
}

// tokenize splits text into token-like pieces that concatenate back to it:
// each piece is a run of non-space characters followed by its spaces.
func tokenize(s string) []string {
	var out []string
	start := 0
	for i := 1; i < len(s); i++ {
		if s[i] != ' ' && s[i] != '\n' && (s[i-1] == ' ' || s[i-1] == '\n') {
			out = append(out, s[start:i])
			start = i
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

// approxTokens estimates tokens as OpenAI's rule of thumb: 4 characters each.
func approxTokens(chars int) int64 { return int64((chars + 3) / 4) }
