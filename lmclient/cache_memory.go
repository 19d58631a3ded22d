package lmclient

import (
	"context"
	"fmt"

	lru "github.com/hashicorp/golang-lru/v2"
)

// memoryLayer is the in-process LRU (DSPy's cachetools.LRUCache), bounded by
// entries. golang-lru is HashiCorp's well-kept, thread-safe LRU.
type memoryLayer struct {
	lru *lru.Cache[string, entry]
}

func newMemoryLayer(entries int) (*memoryLayer, error) {
	c, err := lru.New[string, entry](entries)
	if err != nil {
		return nil, fmt.Errorf("create memory cache: %w", err)
	}
	return &memoryLayer{lru: c}, nil
}

func (m *memoryLayer) name() string { return "memory" }

func (m *memoryLayer) get(_ context.Context, key string) (entry, bool, error) {
	e, ok := m.lru.Get(key)
	return e, ok, nil
}

func (m *memoryLayer) put(_ context.Context, key string, e entry) error {
	m.lru.Add(key, e)
	return nil
}

func (m *memoryLayer) close() error { return nil }
