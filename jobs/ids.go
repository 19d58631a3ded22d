package jobs

import (
	"crypto/rand"
	"encoding/hex"
)

// NewJobID returns a random 128-bit id.
func NewJobID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	return hex.EncodeToString(b[:])
}

// NewBatchID returns a random batch id: "batch_" and 32 hex digits.
func NewBatchID() string {
	var r [16]byte
	_, _ = rand.Read(r[:])
	return "batch_" + hex.EncodeToString(r[:])
}
