package ovn

// Rebuilds reports whether applying ch rebuilds the whole pipeline, as
// costly as a Load: it changes the set of datapaths, which every logical
// flow's placement depends on.
func (ch *Change) Rebuilds() bool {
	return len(ch.Updated.Datapaths) > 0 || len(ch.Deleted[TableDatapathBinding]) > 0
}

// Rebuilt returns a new Translator holding t's rows with ch applied, built
// from scratch, as Apply would rebuild t. t is left as it was, and only
// read: a caller may go on running packets through t meanwhile and
// publish the new Translator when it is done.
func (t *Translator) Rebuilt(ch *Change) *Translator {
	nt := NewTranslator(t.opts)
	nt.zones = t.zones
	nt.sb = t.sb.clone()
	up, del := &ch.Updated, ch.Deleted
	upsert(&nt.sb.Datapaths, up.Datapaths, del[TableDatapathBinding], func(r *Datapath) string { return r.UUID })
	upsert(&nt.sb.Ports, up.Ports, del[TablePortBinding], func(r *Port) string { return r.UUID })
	upsert(&nt.sb.MulticastGroups, up.MulticastGroups, del[TableMulticastGroup], func(r *MulticastGroup) string { return r.UUID })
	upsert(&nt.sb.AddressSets, up.AddressSets, del[TableAddressSet], func(r *AddressSet) string { return r.UUID })
	upsert(&nt.sb.PortGroups, up.PortGroups, del[TablePortGroup], func(r *PortGroup) string { return r.UUID })
	upsert(&nt.sb.DatapathGroups, up.DatapathGroups, del[TableLogicalDPGroup], func(r *DatapathGroup) string { return r.UUID })
	nt.applyRows(ch)
	upsert(&nt.sb.LogicalFlows, up.LogicalFlows, del[TableLogicalFlow], func(r *LogicalFlow) string { return r.UUID })
	nt.rebuild()
	return nt
}

// clone copies the row slices, which upsert changes in place; the rows
// themselves are replaced whole, never changed, so they are shared.
func (sb *Southbound) clone() Southbound {
	return Southbound{
		Datapaths:       append([]Datapath(nil), sb.Datapaths...),
		Ports:           append([]Port(nil), sb.Ports...),
		MulticastGroups: append([]MulticastGroup(nil), sb.MulticastGroups...),
		LogicalFlows:    append([]LogicalFlow(nil), sb.LogicalFlows...),
		DatapathGroups:  append([]DatapathGroup(nil), sb.DatapathGroups...),
		AddressSets:     append([]AddressSet(nil), sb.AddressSets...),
		PortGroups:      append([]PortGroup(nil), sb.PortGroups...),
		MACBindings:     append([]MACBinding(nil), sb.MACBindings...),
		FDBs:            append([]FDB(nil), sb.FDBs...),
		LoadBalancers:   append([]LoadBalancer(nil), sb.LoadBalancers...),
		DHCPOptions:     append([]DHCPOption(nil), sb.DHCPOptions...),
		DHCPv6Options:   append([]DHCPOption(nil), sb.DHCPv6Options...),
	}
}
