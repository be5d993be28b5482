package inference

import (
	"crypto/sha256"
	"encoding/binary"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
)

// resultCache remembers model outputs by model file and exact input bytes.
// Keys start with the SHA-256 of the model file, not its version number,
// so a new version, or a version directory whose model.onnx was replaced,
// can never be answered from an old entry.
type resultCache struct {
	lru *expirable.LRU[[sha256.Size]byte, []*Tensor]
}

// newResultCache returns nil (no caching) when size or ttl is 0.
func newResultCache(size int, ttl time.Duration) *resultCache {
	if size <= 0 || ttl <= 0 {
		return nil
	}
	return &resultCache{lru: expirable.NewLRU[[sha256.Size]byte, []*Tensor](size, nil, ttl)}
}

// key hashes everything that decides the answer: the model file and each
// input's name, type, shape and data (inputs are in the model's order).
func cacheKey(digest string, inputs []*Tensor) [sha256.Size]byte {
	h := sha256.New()
	var n [8]byte
	field := func(b []byte) {
		binary.LittleEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	field([]byte(digest))
	for _, t := range inputs {
		field([]byte(t.Name))
		field([]byte(t.Datatype))
		binary.LittleEndian.PutUint64(n[:], uint64(len(t.Shape)))
		h.Write(n[:])
		for _, d := range t.Shape {
			binary.LittleEndian.PutUint64(n[:], uint64(d))
			h.Write(n[:])
		}
		field(t.Raw)
		for _, s := range t.Strings {
			field([]byte(s))
		}
	}
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

func (c *resultCache) get(k [sha256.Size]byte) ([]*Tensor, bool) { return c.lru.Get(k) }

func (c *resultCache) add(k [sha256.Size]byte, outputs []*Tensor) { c.lru.Add(k, outputs) }

func (c *resultCache) len() int { return c.lru.Len() }
