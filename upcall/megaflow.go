package upcall

import (
	"fmt"

	"github.com/ovsbpf/ovsbpf/datapath"
)

// Megaflow is a cache entry as the slow path installs it: packets whose
// narrow key, masked with Mask, equals Key run Actions.
type Megaflow struct {
	Mask    datapath.Mask
	Key     datapath.Key // already masked
	Actions []datapath.Action
}

// CacheEntry returns the megaflow that caches dec, the pipeline's decision
// on the packet pk, whose datapath actions are acts (BuildActions of dec's
// outputs). It fails, wrapping ErrUncacheable, when the decision must stay
// in the slow path: the pipeline said so, it read bits the narrow key lacks,
// or its action list is longer than a megaflow holds. The handlers and the
// soundness tests both derive megaflows here, so the tests check what the
// handlers install.
func CacheEntry(pk *datapath.PacketKey, dec *Decision, acts []datapath.Action) (Megaflow, error) {
	if dec.NoCache != "" {
		return Megaflow{}, fmt.Errorf("%s: %w", dec.NoCache, ErrUncacheable)
	}
	mask, err := MegaflowMask(&dec.Mask, pk)
	if err != nil {
		return Megaflow{}, err
	}
	if len(acts) > datapath.MaxActions {
		// A flood to more ports than a megaflow holds (512 actions);
		// delivering it fails too, and says so.
		return Megaflow{}, fmt.Errorf("%d actions, more than the %d a megaflow holds: %w", len(acts), datapath.MaxActions, ErrUncacheable)
	}
	return Megaflow{Mask: mask, Key: pk.Narrow().And(&mask), Actions: acts}, nil
}

// Overlaps reports whether some packet matches both megaflows.
func (f *Megaflow) Overlaps(g *Megaflow) bool {
	fk, gk := f.Key.Raw(), g.Key.Raw()
	fm, gm := f.Mask.Raw(), g.Mask.Raw()
	for i := range fk {
		if (fk[i]^gk[i])&fm[i]&gm[i] != 0 {
			return false
		}
	}
	return true
}
