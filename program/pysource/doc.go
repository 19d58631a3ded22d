// Package pysource reads the Python file that holds a user's DSPy signature
// classes and pydantic models, and returns what it declares: each
// dspy.Signature class (docstring, input and output fields with their
// annotations, desc and prefix), each module-level
// NAME = dspy.Signature("a -> b", "instructions"), and each pydantic
// BaseModel class (fields, annotations, descriptions, defaults and
// constraints), in declaration order.
//
// It reads the source and never runs it. The file comes from whoever pushes
// a program, and running it would mean a Python interpreter in the service
// and arbitrary code on every worker; signature files are declarations, and
// the small subset of Python they use can be read exactly. Everything else
// in the file (imports, comments, constants, functions, other classes,
// `if __name__ == "__main__":` blocks) is tokenized and skipped. What the
// subset cannot express faithfully (an f-string description, an unknown
// keyword argument, a type program cannot render, a validator on a model)
// is an *Error naming file:line:col and what is unsupported, rather than a
// guess that would make the served prompt differ from DSPy's. The error
// stays with its class: File.Signature and File.Model return it when the
// class is asked for, and a signature using a refused model gets the
// model's error when it is built. A real project's file holds classes the
// served program never names, so only what makes the file unreadable (text
// that does not tokenize, an indented line outside any block, a class
// header that does not parse) fails Read.
//
// Types are program.Type values, parsed with program.ParseType wherever the
// annotation names only built-in types. A reference to a model of the same
// file is a Type whose Name is the model's class name (see ModelRefs);
// SignatureClass.Signature resolves each into a program.Model (its fields
// with their types, descriptions, defaults and default factories), which
// program renders and validates as pydantic does. A model that refers to
// itself is refused, naming the class.
//
// Work is linear in the input and bracket nesting is capped at MaxDepth, so
// hostile input fails with an error instead of exhausting the stack.
package pysource
