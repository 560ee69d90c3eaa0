package datapath

import (
	"encoding/binary"
	"fmt"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ovsbpf/ovsbpf/bpf"
)

// UpcallReason says why a packet came to user space.
type UpcallReason uint32

// Upcall reasons (enum ovsbpf_upcall_reason).
const (
	UpcallMiss   = UpcallReason(bpf.DatapathOvsbpfUpcallReasonOVSBPF_UPCALL_MISS)
	UpcallAction = UpcallReason(bpf.DatapathOvsbpfUpcallReasonOVSBPF_UPCALL_ACTION)
	UpcallTTL    = UpcallReason(bpf.DatapathOvsbpfUpcallReasonOVSBPF_UPCALL_TTL)
	UpcallCT     = UpcallReason(bpf.DatapathOvsbpfUpcallReasonOVSBPF_UPCALL_CT)
)

func (r UpcallReason) String() string {
	switch r {
	case UpcallMiss:
		return "miss"
	case UpcallAction:
		return "action"
	case UpcallTTL:
		return "ttl"
	case UpcallCT:
		return "ct"
	}
	return fmt.Sprintf("reason(%d)", uint32(r))
}

// MaxUpcallFrame is the most frame bytes an upcall carries.
const MaxUpcallFrame = len(bpf.DatapathOvsbpfUpcall{}.Frame)

// Upcall is one packet the datapath sent to user space.
type Upcall struct {
	Reason   UpcallReason
	Ifindex  uint32    // the interface it came in on
	Key      PacketKey // the parser's key, recirc_id and ct fields included
	Frame    []byte    // the frame, at most MaxUpcallFrame bytes
	FrameLen uint32    // the frame's full length
	// Time is when the datapath sent the upcall, on the monotonic clock
	// (nanoseconds, as MonotonicNow returns).
	Time uint64
}

// MonotonicNow returns the monotonic clock the datapath stamps upcalls
// and flow use with, in nanoseconds. It makes no system call: a handler
// reads it twice per upcall.
func MonotonicNow() uint64 {
	base, at := monotonicBase()
	return base + uint64(time.Since(at))
}

// monotonicBase pairs one reading of CLOCK_MONOTONIC with a time.Time
// taken at the same moment. A time.Time's monotonic reading is that same
// clock, read by the Go runtime through the vDSO, so the time since it
// advances exactly as CLOCK_MONOTONIC does.
var monotonicBase = sync.OnceValues(func() (uint64, time.Time) {
	before := time.Now()
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	after := time.Now()
	return uint64(ts.Nano()), before.Add(after.Sub(before) / 2)
})

// ParseUpcall decodes one ring buffer record. The frame aliases raw.
func ParseUpcall(raw []byte) (Upcall, error) {
	var rec bpf.DatapathOvsbpfUpcall
	if len(raw) < int(unsafe.Offsetof(rec.Frame)) {
		return Upcall{}, fmt.Errorf("upcall record of %d bytes: shorter than its %d-byte header", len(raw), unsafe.Offsetof(rec.Frame))
	}
	u32 := func(off uintptr) uint32 { return binary.LittleEndian.Uint32(raw[off:]) }
	hdr := int(unsafe.Offsetof(rec.Frame))
	u := Upcall{
		Reason:   UpcallReason(u32(unsafe.Offsetof(rec.Reason))),
		FrameLen: u32(unsafe.Offsetof(rec.FrameLen)),
		Ifindex:  u32(unsafe.Offsetof(rec.Ifindex)),
		Time:     binary.LittleEndian.Uint64(raw[unsafe.Offsetof(rec.TsNs):]),
	}
	n := u32(unsafe.Offsetof(rec.Len))
	if int(n) > MaxUpcallFrame || hdr+int(n) > len(raw) {
		return Upcall{}, fmt.Errorf("upcall claims %d frame bytes in a %d-byte record", n, len(raw))
	}
	if _, err := binary.Decode(raw[unsafe.Offsetof(rec.Key):hdr], binary.LittleEndian, &u.Key); err != nil {
		return Upcall{}, fmt.Errorf("decoding upcall key: %w", err)
	}
	u.Frame = raw[hdr : hdr+int(n)]
	return u, nil
}
