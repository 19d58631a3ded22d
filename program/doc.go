// Package program is a DSPy-compatible runtime for the QA program: it
// produces, byte for byte, the prompts DSPy 3.3.1 sends and reads answers
// the way DSPy reads them.
//
// It owns:
//
//   - Signatures as data (Signature, Field, Type), built in Go or parsed
//     from DSPy's string syntax with ParseSignature; pydantic models as
//     Types (Model), with pydantic's JSON schemas and lax validation
//     (Type.CheckValue checks an input);
//   - Predict and ChainOfThought (NewPredict, NewChainOfThought);
//   - ChatAdapter and JSONAdapter (formatting and parsing), with DSPy's
//     fallback from chat to JSON with structured outputs (the
//     response_format LiteLLM sends, when the LM supports a response
//     schema) to JSON mode;
//   - saved state: loading what module.save(path, save_program=False)
//     writes from DSPy 2.6 through 3.3 (Program.WithState, LoadQA), whole
//     or not at all, and saving it back in the 3.x bytes
//     (Program.MarshalState);
//   - running a program against an LM (Program.Run), with usage in DSPy's
//     shape, cache-hit reporting and streaming of chosen output fields
//     whose chunks concatenate to exactly the parsed values;
//   - the QA program of the Python deployment (NewQA, LoadQA);
//   - the LM interface it consumes (LM, Request, Completion), which
//     lmclient implements.
//
// The Python string, JSON and number rules DSPy's output depends on
// (splitlines, strip, inspect.cleandoc, textwrap.dedent, json.dumps,
// orjson, float repr) live in small functions of their own, each tested
// against Python's behaviour. The package uses only the standard library.
package program
