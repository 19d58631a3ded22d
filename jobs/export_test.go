package jobs

// UnmarshalOutputsTokens is the token reader Outputs.UnmarshalJSON falls
// back to, for comparing its fast path with.
func UnmarshalOutputsTokens(data []byte) (Outputs, error) {
	var o Outputs
	err := o.unmarshalTokens(data)
	return o, err
}

// DecodeSpec is the decoder ParseSpec falls back to, for comparing its one
// pass with.
func DecodeSpec(b []byte) (Spec, error) { return decodeSpec(b) }
