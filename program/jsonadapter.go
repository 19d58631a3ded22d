package program

import "strings"

// Name returns "JSONAdapter".
func (JSONAdapter) Name() string { return jsonAdapterName }

// Format returns DSPy's JSONAdapter messages: the same system description,
// a structure that shows the outputs as a JSON object, demo answers as JSON
// and a final "Respond with a JSON object…" line.
func (a JSONAdapter) Format(sig *Signature, demos []*Map, inputs map[string]any) []Message {
	return formatMessages(a, sig, demos, inputs)
}

func (JSONAdapter) fieldStructure(sig *Signature) string {
	outputs := NewMap()
	for _, f := range sig.outputs {
		outputs.Set(f.Name, placeholder(f, true))
	}
	parts := []string{
		structureIntro,
		jsonStructureInputsHead,
		placeholderBlocks(sig.inputs, false),
		jsonStructureOutputHead,
		pyJSONDumpsIndent(outputs),
	}
	return pyStrip(strings.Join(parts, "\n\n"))
}

func (JSONAdapter) userContent(sig *Signature, values valueSource, prefix string, mainRequest bool) string {
	parts := append([]string{prefix}, inputBlocks(sig, values)...)
	if mainRequest {
		reqs := make([]string, len(sig.outputs))
		for i, f := range sig.outputs {
			reqs[i] = "`" + f.Name + "`" + typeInfo(f)
		}
		parts = append(parts, respondWithJSONIntro+strings.Join(reqs, ", then ")+".")
	}
	parts = append(parts, "")
	return pyStrip(strings.Join(parts, "\n\n"))
}

// assistantContent is json.dumps of the outputs with indent 2: raw values,
// the missing-field text for absent keys, no completed marker.
func (JSONAdapter) assistantContent(sig *Signature, values valueSource, missing string) string {
	out := NewMap()
	for _, f := range sig.outputs {
		if v, ok := values.Get(f.Name); ok {
			out.Set(f.Name, v)
		} else {
			out.Set(f.Name, missing)
		}
	}
	return pyJSONDumpsIndent(out)
}

// Parse reads a JSON object leniently (json_repair-like), falling back to
// the first balanced {…} in the text, keeps the output keys and types them.
func (JSONAdapter) Parse(sig *Signature, completion string) (*Map, error) {
	v, _ := repairJSON(completion)
	obj, ok := v.(*Map)
	if !ok {
		if sub, found := firstBalancedObject(completion); found {
			completion = sub
			v, _ = repairJSON(sub)
			obj, ok = v.(*Map)
		}
	}
	if !ok {
		return nil, &ParseError{Adapter: jsonAdapterName, Response: completion,
			Expected: sig.OutputNames(), Message: notJSONObjectMessage}
	}
	fields := NewMap()
	for _, k := range obj.keys {
		f, ok := sig.Output(k)
		if !ok {
			continue
		}
		val, err := parseJSONValue(obj.values[k], f.Type)
		if err != nil {
			return nil, &ParseError{Adapter: jsonAdapterName, Response: completion, Expected: sig.OutputNames(),
				Message: "Failed to parse field " + k + " with value " + pyStr(obj.values[k]) + " from the LM response. Error message: " + err.Error()}
		}
		fields.Set(k, val)
	}
	return finishFields(jsonAdapterName, sig, completion, fields)
}
