package docstest

import (
	"fmt"
	"regexp"
	"strings"
)

// ellipsis elides text in a ```text block: within a line, any run of
// characters on that line; alone on a line, any number of lines.
const ellipsis = "…"

// Match compares a block's output with the ```text block shown after it
// (see the package doc for the rules). The error shows the first line of
// want that does not match and the output from there.
func Match(want, got string) error {
	wl, gl := lines(want), lines(got)
	text := ""
	if len(gl) > 0 {
		text = strings.Join(gl, "\n") + "\n"
	}
	if pattern(wl, true).MatchString(text) {
		return nil
	}
	// The most lines of want that match the start of the output say where
	// it went wrong.
	k := len(wl)
	for k > 0 && !pattern(wl[:k], false).MatchString(text) {
		k--
	}
	rest := text[pattern(wl[:k], false).FindStringIndex(text)[1]:]
	if k == len(wl) {
		return fmt.Errorf("the output goes on after the last line shown:\n%s", indent(rest))
	}
	return fmt.Errorf("line %d of the text block, %q, does not match the output from there:\n%s", k+1, wl[k], indent(rest))
}

// lines splits s into lines without trailing spaces or trailing blank
// lines.
func lines(s string) []string {
	ls := strings.Split(s, "\n")
	for i, l := range ls {
		ls[i] = strings.TrimRight(l, " \t\r")
	}
	for len(ls) > 0 && ls[len(ls)-1] == "" {
		ls = ls[:len(ls)-1]
	}
	return ls
}

// pattern is the regexp of want's lines; whole, it must match the whole
// output, else a prefix of it.
func pattern(want []string, whole bool) *regexp.Regexp {
	var b strings.Builder
	b.WriteString(`^`)
	for _, l := range want {
		if l == ellipsis {
			b.WriteString(`(?:[^\n]*\n)*?`)
			continue
		}
		parts := strings.Split(l, ellipsis)
		for i, p := range parts {
			parts[i] = regexp.QuoteMeta(p)
		}
		b.WriteString(strings.Join(parts, `[^\n]*`) + `\n`)
	}
	if whole {
		b.WriteString(`$`)
	}
	return regexp.MustCompile(b.String())
}

func indent(s string) string {
	ls := lines(s)
	if len(ls) > 20 {
		ls = append(ls[:20], "…")
	}
	if len(ls) == 0 {
		return "    (nothing)"
	}
	return "    " + strings.Join(ls, "\n    ")
}
