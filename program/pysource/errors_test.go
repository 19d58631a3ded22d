package pysource

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// sigHead is the start of a one-class file; a case's body follows it, so
// its first line is line 4.
const sigHead = "import dspy\nfrom pydantic import BaseModel, Field\nclass S(dspy.Signature):\n"

func TestReadErrors(t *testing.T) {
	t.Parallel()
	deep := strings.Repeat("list[", MaxDepth+1) + "str" + strings.Repeat("]", MaxDepth+1)
	// class is the class the error belongs to, "" for what makes the
	// whole file unreadable.
	cases := []struct {
		name, class, src, want string
	}{
		{"f-string desc", "S", sigHead + `    x: str = dspy.InputField(desc=f"about {topic}")` + "\n",
			`f.py:4:35: field x: desc= is an f-string, computed when Python runs; write a plain string`},
		{"desc from a constant", "S", sigHead + "    x: str = dspy.InputField(desc=DESC)\n",
			`f.py:4:35: field x: desc= must be a string literal`},
		{"unknown keyword", "S", sigHead + `    x: str = dspy.InputField(default="a")` + "\n",
			`f.py:4:30: field x: dspy.InputField(default=...) is not supported`},
		{"positional argument", "S", sigHead + `    x: str = dspy.OutputField("a")` + "\n",
			`f.py:4:31: field x: dspy.OutputField takes keyword arguments only`},
		{"dspy.Image", "S", sigHead + "    img: dspy.Image = dspy.InputField()\n    y: str = dspy.OutputField()\n",
			`f.py:4:10: unsupported type dspy.Image (DSPy's special types such as Image, Audio, History and Tool are not served)`},
		{"dspy.History in a list", "S", sigHead + "    h: list[dspy.History] = dspy.InputField()\n",
			`f.py:4:13: unsupported type dspy.History (DSPy's special types such as Image, Audio, History and Tool are not served)`},
		{"unknown class", "S", sigHead + "    x: Person = dspy.InputField()\n",
			`f.py:4:8: unsupported type Person`},
		{"Callable", "S", sigHead + "    x: Callable[[int], str] = dspy.InputField()\n",
			`f.py:4:8: unsupported type Callable`},
		{"unknown forward reference", "S", sigHead + "    x: Optional[\"Missing\"] = dspy.InputField()\n",
			`f.py:4:18: unsupported type Missing`},
		{"field without InputField", "S", sigHead + "    x: str\n",
			`f.py:4:5: class S: field x must be declared with dspy.InputField or dspy.OutputField`},
		{"duplicate field", "S", sigHead + "    x: str = dspy.InputField()\n    x: int = dspy.OutputField()\n",
			`f.py:5:5: class S: field x is declared twice`},
		{"empty docstring", "S", sigHead + "    \"\"\"\"\"\"\n    x: str = dspy.InputField()\n",
			`f.py:3:1: class S: an empty docstring makes DSPy send no instructions; write them or remove the docstring`},
		{"f-string docstring", "S", sigHead + "    f\"\"\"Do {x}.\"\"\"\n",
			`f.py:4:5: an f-string or bytes docstring is not a docstring in Python; write a plain string`},
		{"statement in body", "S", sigHead + "    x, y = 1, 2\n",
			`f.py:4:5: class S: unsupported statement in a Signature body`},
		{"two bases", "S", "import dspy\nclass S(dspy.Signature, Mixin):\n    pass\n",
			`f.py:2:1: class S: more than one base class is not supported`},
		{"decorated signature", "S", "import dspy\n@register\nclass S(dspy.Signature):\n    pass\n",
			`f.py:3:1: class S: decorators on a Signature or model class are not supported`},
		{"input becomes output", "T", sigHead + "    x: str = dspy.InputField()\nclass T(S):\n    x: str = dspy.OutputField()\n",
			`f.py:6:5: class T: field x changes from input to output or back; DSPy would move it`},
		{"unterminated string", "", sigHead + "    x: str = dspy.InputField(desc=\"abc)\n",
			`f.py:4:35: unterminated string`},
		{"unclosed bracket", "", sigHead + "    x: str = dspy.InputField(desc=\"abc\"\n",
			`f.py:4:29: "(" is never closed`},
		{"class declared twice", "S", sigHead + "    pass\nclass S(BaseModel):\n    x: int\n",
			`f.py:5:1: class S is declared twice; Python would keep only the last`},
		{"string signature in a chain", "QA", "import dspy\nQA = dspy.Signature(\"q -> a\").with_instructions(\"Be brief.\")\n",
			`f.py:2:6: QA: only QA = dspy.Signature("inputs -> outputs", "instructions") is read`},
		{"string signature with a model", "QA", "import dspy\nQA = dspy.Signature(\"q -> a: Report\")\n",
			`f.py:2:6: QA: parse signature "q -> a: Report": outputs: parse type "Report": unsupported type "Report" ` +
				`(supported types: str, int, float, bool, list[...], dict[...], tuple[...], set[...], frozenset[...], Literal[...], Optional[...], Union[...], X | None, Any)`},
		{"unmatched bracket", "", "x = 1]\n", `f.py:1:6: unmatched "]"`},
		{"deep nesting", "", sigHead + "    x: " + deep + " = dspy.InputField()\n",
			`f.py:4:` + strconv.Itoa(7+5*(MaxDepth+1)) + `: brackets nested deeper than 64`},
		{"unexpected indent", "", "import dspy\n  x = 1\n", `f.py:2:3: unexpected indent`},
		{"unexpected indent in a body", "S", sigHead + "    x: str = dspy.InputField()\n        y: str = dspy.OutputField()\n",
			`f.py:5:9: unexpected indent`},
		{"bad escape", "", sigHead + `    x: str = dspy.InputField(desc="\N{BULLET}")` + "\n",
			`f.py:4:35: string: unsupported escape \N{...}`},
		{"model validator", "M", "from pydantic import BaseModel, field_validator\nclass M(BaseModel):\n    x: int\n    @field_validator(\"x\")\n    def check(cls, v):\n        return v\n",
			`f.py:4:6: class M: @field_validator changes the model's values or schema and is not supported`},
		{"model_config", "M", "from pydantic import BaseModel, ConfigDict\nclass M(BaseModel):\n    model_config = ConfigDict(extra=\"forbid\")\n    x: int\n",
			`f.py:3:5: class M: model_config is not supported (it can change the schema)`},
		{"nested Config", "M", "from pydantic import BaseModel\nclass M(BaseModel):\n    x: int\n    class Config:\n        extra = \"forbid\"\n",
			`f.py:4:5: class M: a nested class (such as pydantic v1's Config) is not supported`},
		{"Field alias", "M", "from pydantic import BaseModel, Field\nclass M(BaseModel):\n    x: int = Field(alias=\"X\")\n",
			`f.py:3:20: field x: Field(alias=...) is not supported`},
		{"computed default", "M", "from pydantic import BaseModel\nclass M(BaseModel):\n    at: str = now()\n",
			`f.py:3:15: field at: the default must be a literal or Field(...)`},
		{"model attribute without annotation", "M", "from pydantic import BaseModel\nclass M(BaseModel):\n    x = 3\n",
			`f.py:3:5: class M: x without an annotation is not supported`},
		{"default_factory lambda", "M", "from pydantic import BaseModel, Field\nclass M(BaseModel):\n    x: list[str] = Field(default_factory=lambda: [])\n",
			`f.py:3:48: unsupported expression at ":"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f, err := Read("f.py", []byte(c.src))
			switch {
			case c.class == "" && err == nil:
				t.Fatalf("Read succeeded; want %s", c.want)
			case c.class != "" && err != nil:
				t.Fatalf("Read: %v; want the error kept with class %s", err, c.class)
			case c.class != "":
				if _, err = f.Signature(c.class); errors.Is(err, ErrNotDeclared) {
					_, err = f.Model(c.class)
				}
				if err == nil {
					t.Fatalf("class %s read; want %s", c.class, c.want)
				}
			}
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("error %T %v is not an *Error", err, err)
			}
			if err.Error() != c.want {
				t.Errorf("error\n got %s\nwant %s", err, c.want)
			}
		})
	}
}
