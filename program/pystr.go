package program

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// This file holds the Python str methods the DSPy byte rules depend on. Each
// mirrors CPython 3.12 exactly on valid UTF-8; an invalid byte is treated as
// one ordinary, non-space character so that no input can panic.

// pyIsSpace reports whether r is whitespace for Python's str.isspace (and so
// for strip, lstrip, rstrip and split without arguments). Go's unicode.IsSpace
// lacks the information separators U+001C..U+001F, which Python counts.
func pyIsSpace(r rune) bool {
	if r >= 0x1c && r <= 0x1f {
		return true
	}
	return unicode.IsSpace(r)
}

// pyIsLineBreak reports whether r ends a line for Python's str.splitlines.
func pyIsLineBreak(r rune) bool {
	switch r {
	case '\n', '\r', '\v', '\f', 0x1c, 0x1d, 0x1e, 0x85, 0x2028, 0x2029:
		return true
	}
	return false
}

// pyStrip is Python's str.strip() with no arguments.
func pyStrip(s string) string { return pyRStrip(pyLStrip(s)) }

// pyLStrip is Python's str.lstrip() with no arguments.
func pyLStrip(s string) string {
	for s != "" {
		r, n := utf8.DecodeRuneInString(s)
		if !isValidRune(r, n) || !pyIsSpace(r) {
			break
		}
		s = s[n:]
	}
	return s
}

// pyRStrip is Python's str.rstrip() with no arguments.
func pyRStrip(s string) string {
	for s != "" {
		r, n := utf8.DecodeLastRuneInString(s)
		if !isValidRune(r, n) || !pyIsSpace(r) {
			break
		}
		s = s[:len(s)-n]
	}
	return s
}

// isValidRune tells a real rune from the RuneError that decoding reports for
// an invalid byte.
func isValidRune(r rune, n int) bool { return r != utf8.RuneError || n > 1 }

// pySplitLines is Python's str.splitlines(): it splits on every line
// boundary Python knows ("\r\n" counts once) and a trailing boundary does not
// produce an empty last line.
func pySplitLines(s string) []string {
	var lines []string
	start := 0
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if !isValidRune(r, n) || !pyIsLineBreak(r) {
			i += n
			continue
		}
		lines = append(lines, s[start:i])
		i += n
		if r == '\r' && i < len(s) && s[i] == '\n' {
			i++
		}
		start = i
	}
	if start < len(s) {
		lines = append(lines, s[start:])
	}
	return lines
}

// pyExpandTabs is Python's str.expandtabs(8): the column restarts after
// "\n" and "\r" and counts code points.
func pyExpandTabs(s string) string {
	if !strings.Contains(s, "\t") {
		return s
	}
	var b strings.Builder
	col := 0
	for _, r := range s {
		switch r {
		case '\t':
			pad := 8 - col%8
			b.WriteString(strings.Repeat(" ", pad))
			col += pad
		case '\n', '\r':
			b.WriteRune(r)
			col = 0
		default:
			b.WriteRune(r)
			col++
		}
	}
	return b.String()
}

// runeLen counts code points the way Python's len does (an invalid byte
// counts as one).
func runeLen(s string) int { return utf8.RuneCountInString(s) }

// cleandoc is Python 3.12's inspect.cleandoc, which DSPy applies every time
// a signature's instructions are read.
func cleandoc(doc string) string {
	lines := strings.Split(pyExpandTabs(doc), "\n")
	margin := -1
	for _, line := range lines[1:] {
		content := runeLen(pyLStrip(line))
		if content > 0 {
			indent := runeLen(line) - content
			if margin < 0 || indent < margin {
				margin = indent
			}
		}
	}
	lines[0] = pyLStrip(lines[0])
	if margin > 0 {
		for i := 1; i < len(lines); i++ {
			lines[i] = dropRunes(lines[i], margin)
		}
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	for len(lines) > 0 && lines[0] == "" {
		lines = lines[1:]
	}
	return strings.Join(lines, "\n")
}

// dropRunes returns s without its first n code points (s[n:] in Python).
func dropRunes(s string, n int) string {
	for i := 0; i < n && s != ""; i++ {
		_, w := utf8.DecodeRuneInString(s)
		s = s[w:]
	}
	return s
}

// dedent is Python 3.12's textwrap.dedent: lines of only spaces and tabs are
// emptied, then the longest common leading run of spaces and tabs is removed.
// Lines are "\n"-separated here, as in the re.MULTILINE patterns it uses.
func dedent(text string) string {
	lines := strings.Split(text, "\n")
	for i, line := range lines {
		if line != "" && strings.Trim(line, " \t") == "" {
			lines[i] = ""
		}
	}
	margin, have := "", false
	for _, line := range lines {
		if line == "" {
			continue
		}
		indent := line[:len(line)-len(strings.TrimLeft(line, " \t"))]
		switch {
		case !have:
			margin, have = indent, true
		case strings.HasPrefix(indent, margin):
		case strings.HasPrefix(margin, indent):
			margin = indent
		default:
			i := 0
			for i < len(margin) && i < len(indent) && margin[i] == indent[i] {
				i++
			}
			margin = margin[:i]
		}
	}
	if margin == "" {
		return strings.Join(lines, "\n")
	}
	for i, line := range lines {
		lines[i] = strings.TrimPrefix(line, margin)
	}
	return strings.Join(lines, "\n")
}

// pyCapitalize is Python's str.capitalize(): the first character in title
// case, every other character lower-cased.
func pyCapitalize(s string) string {
	if s == "" {
		return s
	}
	r, n := utf8.DecodeRuneInString(s)
	first := s[:n]
	if isValidRune(r, n) {
		first = string(unicode.ToTitle(r))
	}
	return first + strings.Map(unicode.ToLower, s[n:])
}

// pyIsUpper is Python's str.isupper(): at least one cased character and no
// lower-case or title-case one.
func pyIsUpper(s string) bool {
	cased := false
	for _, r := range s {
		if unicode.IsLower(r) || unicode.IsTitle(r) {
			return false
		}
		if unicode.IsUpper(r) {
			cased = true
		}
	}
	return cased
}

// pyTitle is Python's str.title(): a letter following a cased letter is
// lower-cased, any other letter is title-cased. Pydantic derives field
// titles with it.
func pyTitle(s string) string {
	var b strings.Builder
	prevCased := false
	for _, r := range s {
		switch {
		case unicode.IsLetter(r) && (unicode.IsUpper(r) || unicode.IsLower(r) || unicode.IsTitle(r)):
			if prevCased {
				b.WriteRune(unicode.ToLower(r))
			} else {
				b.WriteRune(unicode.ToTitle(r))
			}
			prevCased = true
		default:
			b.WriteRune(r)
			prevCased = false
		}
	}
	return b.String()
}

// isWordRune is Python re's \w for str patterns: alphanumeric (letters and
// numbers of any script) or underscore.
func isWordRune(r rune) bool {
	return r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r)
}
