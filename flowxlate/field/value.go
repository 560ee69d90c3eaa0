package field

import (
	"fmt"
	"math/bits"
	"strings"
)

// Value is an unsigned integer of up to 128 bits: the value of one field or
// subfield, right-aligned (bit 0 is the field's least significant bit).
type Value struct {
	Hi, Lo uint64
}

// U64 returns a Value holding x.
func U64(x uint64) Value { return Value{Lo: x} }

// Ones returns a Value whose low n bits are 1 (n ≤ 128).
func Ones(n int) Value {
	switch {
	case n <= 0:
		return Value{}
	case n < 64:
		return Value{Lo: 1<<uint(n) - 1}
	case n == 64:
		return Value{Lo: ^uint64(0)}
	case n < 128:
		return Value{Hi: 1<<uint(n-64) - 1, Lo: ^uint64(0)}
	default:
		return Value{Hi: ^uint64(0), Lo: ^uint64(0)}
	}
}

// Range returns a Value whose bits ofs..ofs+n-1 are 1.
func Range(ofs, n int) Value { return Ones(n).Shl(ofs) }

// And returns v & w.
func (v Value) And(w Value) Value { return Value{v.Hi & w.Hi, v.Lo & w.Lo} }

// Or returns v | w.
func (v Value) Or(w Value) Value { return Value{v.Hi | w.Hi, v.Lo | w.Lo} }

// Xor returns v ^ w.
func (v Value) Xor(w Value) Value { return Value{v.Hi ^ w.Hi, v.Lo ^ w.Lo} }

// Not returns ^v.
func (v Value) Not() Value { return Value{^v.Hi, ^v.Lo} }

// AndNot returns v &^ w.
func (v Value) AndNot(w Value) Value { return Value{v.Hi &^ w.Hi, v.Lo &^ w.Lo} }

// IsZero reports whether v is 0.
func (v Value) IsZero() bool { return v.Hi == 0 && v.Lo == 0 }

// Shl returns v << n.
func (v Value) Shl(n int) Value {
	switch {
	case n <= 0:
		return v
	case n >= 128:
		return Value{}
	case n >= 64:
		return Value{Hi: v.Lo << uint(n-64)}
	default:
		return Value{Hi: v.Hi<<uint(n) | v.Lo>>uint(64-n), Lo: v.Lo << uint(n)}
	}
}

// Shr returns v >> n.
func (v Value) Shr(n int) Value {
	switch {
	case n <= 0:
		return v
	case n >= 128:
		return Value{}
	case n >= 64:
		return Value{Lo: v.Hi >> uint(n-64)}
	default:
		return Value{Hi: v.Hi >> uint(n), Lo: v.Lo>>uint(n) | v.Hi<<uint(64-n)}
	}
}

// Bit reports whether bit i of v is 1.
func (v Value) Bit(i int) bool {
	if i < 64 {
		return v.Lo>>uint(i)&1 == 1
	}
	return v.Hi>>uint(i-64)&1 == 1
}

// SetBit returns v with bit i set to b.
func (v Value) SetBit(i int, b bool) Value {
	m := Range(i, 1)
	if b {
		return v.Or(m)
	}
	return v.AndNot(m)
}

// Cmp compares v and w as unsigned integers: -1, 0 or +1.
func (v Value) Cmp(w Value) int {
	switch {
	case v.Hi < w.Hi:
		return -1
	case v.Hi > w.Hi:
		return 1
	case v.Lo < w.Lo:
		return -1
	case v.Lo > w.Lo:
		return 1
	}
	return 0
}

// Width returns the number of significant bits in v (0 for 0).
func (v Value) Width() int {
	if v.Hi != 0 {
		return 128 - bits.LeadingZeros64(v.Hi)
	}
	return 64 - bits.LeadingZeros64(v.Lo)
}

// OnesCount returns the number of 1 bits in v.
func (v Value) OnesCount() int { return bits.OnesCount64(v.Hi) + bits.OnesCount64(v.Lo) }

// TrailingZeros returns the index of the lowest 1 bit (128 for 0).
func (v Value) TrailingZeros() int {
	if v.Lo != 0 {
		return bits.TrailingZeros64(v.Lo)
	}
	if v.Hi != 0 {
		return 64 + bits.TrailingZeros64(v.Hi)
	}
	return 128
}

// Bytes returns the low n bytes of v, most significant first.
func (v Value) Bytes(n int) []byte {
	b := make([]byte, n)
	v.PutBytes(b)
	return b
}

// PutBytes stores the low len(b) bytes of v into b, most significant first.
func (v Value) PutBytes(b []byte) {
	x := v
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = byte(x.Lo)
		x = x.Shr(8)
	}
}

// FromBytes reads b (most significant byte first, at most 16 bytes) as a Value.
func FromBytes(b []byte) Value {
	var v Value
	for _, c := range b {
		v = v.Shl(8)
		v.Lo |= uint64(c)
	}
	return v
}

// Hex formats v as OVS does for hexadecimal values: "0x" followed by the
// significant bytes, or "0".
func (v Value) Hex() string {
	if v.IsZero() {
		return "0"
	}
	b := v.Bytes(16)
	i := 0
	for b[i] == 0 {
		i++
	}
	var s strings.Builder
	fmt.Fprintf(&s, "0x%x", b[i])
	for _, c := range b[i+1:] {
		fmt.Fprintf(&s, "%02x", c)
	}
	return s.String()
}

// String formats v in hexadecimal.
func (v Value) String() string { return v.Hex() }
