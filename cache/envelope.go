package cache

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"unsafe"
)

// Codec turns values into bytes for L2 and back. [JSON] is the default.
type Codec[V any] interface {
	Encode(v V) ([]byte, error)
	Decode(data []byte) (V, error)
}

// JSON is the default codec: encoding/json.
type JSON[V any] struct{}

// Encode implements Codec.
func (JSON[V]) Encode(v V) ([]byte, error) { return json.Marshal(v) }

// Decode implements Codec.
func (JSON[V]) Decode(data []byte) (V, error) {
	var v V
	err := json.Unmarshal(data, &v)
	return v, err
}

// StringCodec is a codec for string values that stores their bytes as they
// are, with none of JSON's quoting and escaping.
type StringCodec struct{}

// Encode implements Codec.
func (StringCodec) Encode(v string) ([]byte, error) { return []byte(v), nil }

// Decode implements Codec.
func (StringCodec) Decode(data []byte) (string, error) { return string(data), nil }

// decodeShared returns data as a string without copying it. The cache calls
// it only on bytes nobody writes to again: rueidis hands replies out as
// views of immutable strings.
func (StringCodec) decodeShared(data []byte) string {
	if len(data) == 0 {
		return ""
	}
	return unsafe.String(&data[0], len(data))
}

// sharedDecoder is a codec that can decode without copying bytes that are
// never modified afterwards.
type sharedDecoder[V any] interface{ decodeShared([]byte) V }

// envelope is what every level stores: the value with its life cycle. In L1
// it is kept decoded; in L2 it is marshalled by encodeEnvelope.
type envelope[V any] struct {
	value    V
	notFound bool  // the loader said the key does not exist
	created  int64 // unix nanoseconds
	soft     int64 // fresh until; after it a read serves the value and refreshes it
	hard     int64 // served until; after it the entry is a miss
	tags     []tagStamp
	l1Until  int64 // unix ns when L1 drops it (not stored in L2)
	size     int64 // encoded size of the value, when known (weighs it in a byte-bounded L1)
}

// envelopeOverhead is what an L1 entry costs beyond its key and encoded
// value: the envelope, the entry node, the map slot (an estimate).
const envelopeOverhead = 128

// tagStamp is the epoch a tag had when the value was loaded. The value is
// valid while the tag's current epoch is still this one.
type tagStamp struct {
	tag   string
	epoch uint64
}

// Wire format of an envelope in L2, version 1, little-endian:
//
//	byte     format version (1)
//	byte     flags (bit 0: not found)
//	int64    created, soft, hard (unix ns)
//	uvarint  number of tags, then per tag: uvarint length, bytes, uvarint epoch
//	rest     the codec's bytes of the value (empty when not found)
const envelopeVersion = 1

var errBadEnvelope = errors.New("cache: malformed L2 entry")

func encodeEnvelope[V any](e *envelope[V], codec Codec[V]) ([]byte, error) {
	var payload []byte
	if !e.notFound {
		var err error
		if payload, err = codec.Encode(e.value); err != nil {
			return nil, fmt.Errorf("cache: encode value: %w", err)
		}
	}
	size := 2 + 24 + binary.MaxVarintLen64 + len(payload)
	for _, t := range e.tags {
		size += 2*binary.MaxVarintLen64 + len(t.tag)
	}
	b := make([]byte, 0, size)
	var flags byte
	if e.notFound {
		flags |= 1
	}
	b = append(b, envelopeVersion, flags)
	b = binary.LittleEndian.AppendUint64(b, uint64(e.created))
	b = binary.LittleEndian.AppendUint64(b, uint64(e.soft))
	b = binary.LittleEndian.AppendUint64(b, uint64(e.hard))
	b = binary.AppendUvarint(b, uint64(len(e.tags)))
	for _, t := range e.tags {
		b = binary.AppendUvarint(b, uint64(len(t.tag)))
		b = append(b, t.tag...)
		b = binary.AppendUvarint(b, t.epoch)
	}
	return append(b, payload...), nil
}

// maxTags bounds the tags of one entry, so a corrupt count cannot make the
// decoder allocate without limit.
const maxTags = 256

// decodeEnvelope reads an envelope made by encodeEnvelope. The value may
// share b's memory (see sharedDecoder), so b must not be modified afterwards.
func decodeEnvelope[V any](b []byte, codec Codec[V]) (*envelope[V], error) {
	e := new(envelope[V])
	if err := decodeEnvelopeInto(b, codec, e); err != nil {
		return nil, err
	}
	return e, nil
}

// decodeEnvelopeInto is decodeEnvelope into the caller's envelope, which
// may live on the stack: an L2 hit that does not go into L1 (L1 off, or a
// cold key under tiering) then allocates no envelope.
func decodeEnvelopeInto[V any](b []byte, codec Codec[V], e *envelope[V]) error {
	if len(b) < 26 || b[0] != envelopeVersion || b[1]&^1 != 0 {
		return errBadEnvelope
	}
	*e = envelope[V]{
		notFound: b[1]&1 != 0,
		created:  int64(binary.LittleEndian.Uint64(b[2:])),
		soft:     int64(binary.LittleEndian.Uint64(b[10:])),
		hard:     int64(binary.LittleEndian.Uint64(b[18:])),
	}
	if e.soft > e.hard || e.created > e.soft {
		return errBadEnvelope
	}
	b = b[26:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n > maxTags {
		return errBadEnvelope
	}
	b = b[k:]
	if n > 0 {
		e.tags = make([]tagStamp, 0, n)
	}
	for range n {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return errBadEnvelope
		}
		tag := string(b[k : k+int(l)])
		b = b[k+int(l):]
		epoch, k2 := binary.Uvarint(b)
		if k2 <= 0 {
			return errBadEnvelope
		}
		b = b[k2:]
		e.tags = append(e.tags, tagStamp{tag: tag, epoch: epoch})
	}
	if e.notFound {
		if len(b) != 0 {
			return errBadEnvelope
		}
		return nil
	}
	if sd, ok := any(codec).(sharedDecoder[V]); ok {
		e.value, e.size = sd.decodeShared(b), int64(len(b))
		return nil
	}
	v, err := codec.Decode(b)
	if err != nil {
		return fmt.Errorf("%w: %v", errBadEnvelope, err)
	}
	e.value, e.size = v, int64(len(b))
	return nil
}
