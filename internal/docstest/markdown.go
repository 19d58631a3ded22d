package docstest

import (
	"strings"
)

// Block is a fenced code block of a Markdown file.
type Block struct {
	// Line is the line of the opening fence, from 1.
	Line int
	// Lang is the first word after the fence ("sh", "text"); Info is the
	// rest ("no-test").
	Lang, Info string
	// Code is the block's text, each line ending in "\n".
	Code string
	// Want is the ```text block right after a ```sh block, if any.
	Want *Block
}

// Runs reports whether TestDocs runs the block: ```sh without no-test.
func (b Block) Runs() bool {
	return b.Lang == "sh" && !strings.Contains(" "+b.Info+" ", " no-test ")
}

// Parse returns md's fenced code blocks (``` fences at the start of a line),
// each ```text block that follows a ```sh block with only blank lines
// between attached to it as Want instead of listed.
func Parse(md string) []Block {
	var out []Block
	var cur *Block
	blankSince := false // only blank lines since the last block closed
	for i, line := range strings.SplitAfter(md, "\n") {
		trimmed := strings.TrimRight(line, "\r\n")
		if cur != nil {
			if strings.TrimSpace(trimmed) == "```" {
				prev := len(out) - 1
				if cur.Lang == "text" && blankSince && prev >= 0 && out[prev].Lang == "sh" && out[prev].Want == nil {
					out[prev].Want = cur
				} else {
					out = append(out, *cur)
				}
				cur, blankSince = nil, true
				continue
			}
			cur.Code += trimmed + "\n"
			continue
		}
		if rest, ok := strings.CutPrefix(trimmed, "```"); ok {
			lang, info, _ := strings.Cut(strings.TrimSpace(rest), " ")
			cur = &Block{Line: i + 1, Lang: lang, Info: strings.TrimSpace(info)}
			continue
		}
		if strings.TrimSpace(trimmed) != "" {
			blankSince = false
		}
	}
	return out
}
