package ct

import "errors"

// Params are one ct() action's parameters, as the datapath reads them from
// ct_params: the zone, whether to commit, and the mark and label writes a
// commit makes (OVN's `ct_commit { ct_mark.blocked = 1; }`). NAT and load
// balancing have room in the raw struct and no field here yet.
type Params struct {
	Zone   uint16
	Commit bool // store the connection if it is new
	Force  bool // a connection met in its reply direction ends (and, with Commit, starts anew)

	SetMark  bool // with Commit: mark = mark&^MarkMask | Mark&MarkMask
	Mark     uint32
	MarkMask uint32

	SetLabel  bool     // with Commit: the same for the 128-bit label
	Label     [16]byte // big endian, as the flow key holds ct_label
	LabelMask [16]byte
}

// Encode gives the struct ovsbpf_ct_params the datapath reads. Writes
// without Commit are refused, as OVS refuses ct(set_field) without commit.
func (p Params) Encode() (RawParams, error) {
	var r RawParams
	if (p.SetMark || p.SetLabel) && !p.Commit {
		return r, errors.New("ct params: mark and label writes need commit")
	}
	r.Zone = p.Zone
	var f uint16
	if p.Commit {
		f |= uint16(layoutOvsbpfCtParamFlagOVSBPF_CTP_COMMIT)
	}
	if p.Force {
		f |= uint16(layoutOvsbpfCtParamFlagOVSBPF_CTP_FORCE)
	}
	if p.SetMark {
		f |= uint16(layoutOvsbpfCtParamFlagOVSBPF_CTP_SET_MARK)
		r.Mark, r.MarkMask = p.Mark&p.MarkMask, p.MarkMask
	}
	if p.SetLabel {
		f |= uint16(layoutOvsbpfCtParamFlagOVSBPF_CTP_SET_LABEL)
		for i := range p.Label {
			r.Label[i] = p.Label[i] & p.LabelMask[i]
		}
		r.LabelMask = p.LabelMask
	}
	r.Flags = f
	return r, nil
}

// DecodeParams gives back the Params that Encode turned into r.
func DecodeParams(r RawParams) Params {
	f := r.Flags
	p := Params{Zone: r.Zone,
		Commit:   f&uint16(layoutOvsbpfCtParamFlagOVSBPF_CTP_COMMIT) != 0,
		Force:    f&uint16(layoutOvsbpfCtParamFlagOVSBPF_CTP_FORCE) != 0,
		SetMark:  f&uint16(layoutOvsbpfCtParamFlagOVSBPF_CTP_SET_MARK) != 0,
		SetLabel: f&uint16(layoutOvsbpfCtParamFlagOVSBPF_CTP_SET_LABEL) != 0}
	if p.SetMark {
		p.Mark, p.MarkMask = r.Mark, r.MarkMask
	}
	if p.SetLabel {
		p.Label, p.LabelMask = r.Label, r.LabelMask
	}
	return p
}
