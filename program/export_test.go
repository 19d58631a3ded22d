package program

// ValidateValue exposes validateValue (pydantic's lax
// TypeAdapter(T).validate_python) to the external tests.
var ValidateValue = validateValue
