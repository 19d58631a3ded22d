package docstest

import (
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, want, got string
		ok              bool
		err             string
	}{
		{"exact", "a\nb\n", "a\nb\n", true, ""},
		{"trailing spaces and blank lines", "a  \nb\n\n", "a\r\nb \n\n\n", true, ""},
		{"inline ellipsis", `{"id":"…","status":"queued"}`, `{"id":"2114ab","status":"queued"}` + "\n", true, ""},
		{"inline ellipsis is one line", "a…z", "a\nz\n", false, `line 1 of the text block, "a…z"`},
		{"several inline", "HTTP/1.1 202 …\nLocation: /v1/jobs/…", "HTTP/1.1 202 Accepted\nLocation: /v1/jobs/ab12\n", true, ""},
		{"line ellipsis: many lines", "first\n…\nlast", "first\nx\ny\nlast\n", true, ""},
		{"line ellipsis: none", "first\n…\nlast", "first\nlast\n", true, ""},
		{"line ellipsis at the end", "first\n…", "first\nmore\nmore\n", true, ""},
		{"mismatch names the line", "a\nb\nc", "a\nB\nc\n", false, `line 2 of the text block, "b", does not match the output from there:` + "\n    B\n    c"},
		{"more output than shown", "a", "a\nb\n", false, "the output goes on after the last line shown:\n    b"},
		{"less output than shown", "a\nb", "a\n", false, `line 2 of the text block, "b"`},
		{"nothing", "", "", true, ""},
		{"regexp characters are literal", "a.c (x)*", "a.c (x)*\n", true, ""},
		{"literal is literal", "a.c", "abc\n", false, "line 1"},
	} {
		err := Match(tc.want, tc.got)
		if (err == nil) != tc.ok || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: Match(%q, %q) = %v", tc.name, tc.want, tc.got, err)
		}
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	md := "# T\n\n```sh\necho hi\n```\n\n```text\nhi\n```\n\nprose\n\n```sh no-test\nmake run\n```\n```json\n{}\n```\n" +
		"```sh\nls\n```\nprose\n```text\nnot attached\n```\n"
	bs := Parse(md)
	if len(bs) != 5 {
		t.Fatalf("%d blocks: %+v", len(bs), bs)
	}
	if b := bs[0]; !b.Runs() || b.Line != 3 || b.Code != "echo hi\n" || b.Want == nil || b.Want.Code != "hi\n" || b.Want.Line != 7 {
		t.Errorf("block 0 = %+v, want %+v", b, b.Want)
	}
	if b := bs[1]; b.Runs() || b.Lang != "sh" || b.Info != "no-test" || b.Code != "make run\n" {
		t.Errorf("block 1 = %+v", b)
	}
	if b := bs[2]; b.Runs() || b.Lang != "json" || bs[1].Want != nil {
		t.Errorf("block 2 = %+v", b)
	}
	if b := bs[3]; !b.Runs() || b.Want != nil {
		t.Errorf("block 3 (prose before its text block) = %+v", b)
	}
	if b := bs[4]; b.Lang != "text" {
		t.Errorf("block 4 = %+v", b)
	}
}
