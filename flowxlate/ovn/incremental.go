package ovn

import "strings"

// rowIndex indexes the rows of the current snapshot that logical flows
// refer to.
type rowIndex struct {
	dpGroups map[string]*DatapathGroup
}

func indexRows(sb *Southbound) rowIndex {
	ri := rowIndex{dpGroups: make(map[string]*DatapathGroup, len(sb.DatapathGroups))}
	for i := range sb.DatapathGroups {
		ri.dpGroups[sb.DatapathGroups[i].UUID] = &sb.DatapathGroups[i]
	}
	return ri
}

// upsert replaces rows of *rows whose UUID matches one in updated, appends
// the others, and drops those whose UUID is in deleted. It returns the
// replaced and dropped old rows and the changed new ones.
func upsert[T any](rows *[]T, updated []T, deleted []string, uuid func(*T) string) (old []T) {
	if len(updated) == 0 && len(deleted) == 0 {
		return nil
	}
	idx := make(map[string]int, len(*rows))
	for i := range *rows {
		idx[uuid(&(*rows)[i])] = i
	}
	drop := make(map[string]bool, len(deleted))
	for _, u := range deleted {
		drop[u] = true
	}
	for _, r := range updated {
		u := uuid(&r)
		if i, ok := idx[u]; ok {
			old = append(old, (*rows)[i])
			(*rows)[i] = r
		} else {
			idx[u] = len(*rows)
			*rows = append(*rows, r)
		}
	}
	if len(drop) > 0 {
		kept := (*rows)[:0]
		for _, r := range *rows {
			if drop[uuid(&r)] {
				old = append(old, r)
				continue
			}
			kept = append(kept, r)
		}
		*rows = kept
	}
	return old
}

// Apply updates the pipeline with one batch of Southbound changes. It
// recompiles the logical flows the change touches: changed flows, flows
// that use a changed address set, port group or datapath group, and flows
// that name ports of a datapath whose ports changed. A change to the set of
// datapaths rebuilds everything.
func (t *Translator) Apply(ch *Change) error {
	if t.prog == nil {
		return t.Load(&ch.Updated)
	}
	t.ensureIndexes()
	up, del := &ch.Updated, ch.Deleted
	affected := map[string]bool{}
	mark := func(set map[string]bool) {
		for u := range set {
			affected[u] = true
		}
	}

	dpChanged := ch.Rebuilds()
	upsert(&t.sb.Datapaths, up.Datapaths, del[TableDatapathBinding], func(r *Datapath) string { return r.UUID })

	// Datapaths whose port names may resolve differently now.
	portDPs := map[string]bool{}
	for _, p := range upsert(&t.sb.Ports, up.Ports, del[TablePortBinding], func(r *Port) string { return r.UUID }) {
		portDPs[p.Datapath] = true
	}
	for _, p := range up.Ports {
		portDPs[p.Datapath] = true
	}
	for _, g := range upsert(&t.sb.MulticastGroups, up.MulticastGroups, del[TableMulticastGroup], func(r *MulticastGroup) string { return r.UUID }) {
		portDPs[g.Datapath] = true
	}
	for _, g := range up.MulticastGroups {
		portDPs[g.Datapath] = true
	}
	for _, as := range upsert(&t.sb.AddressSets, up.AddressSets, del[TableAddressSet], func(r *AddressSet) string { return r.UUID }) {
		mark(t.asRefs[as.Name])
	}
	for _, as := range up.AddressSets {
		mark(t.asRefs[as.Name])
	}
	for _, pg := range upsert(&t.sb.PortGroups, up.PortGroups, del[TablePortGroup], func(r *PortGroup) string { return r.UUID }) {
		mark(t.pgRefs[pg.Name])
	}
	for _, pg := range up.PortGroups {
		mark(t.pgRefs[pg.Name])
	}
	groups := map[string]bool{}
	for _, g := range upsert(&t.sb.DatapathGroups, up.DatapathGroups, del[TableLogicalDPGroup], func(r *DatapathGroup) string { return r.UUID }) {
		groups[g.UUID] = true
	}
	for _, g := range up.DatapathGroups {
		groups[g.UUID] = true
	}
	dhcpChanged := len(up.DHCPOptions)+len(up.DHCPv6Options)+len(del[TableDHCPOptions])+len(del[TableDHCPv6Options]) > 0
	t.applyRows(ch)
	for _, lf := range upsert(&t.sb.LogicalFlows, up.LogicalFlows, del[TableLogicalFlow], func(r *LogicalFlow) string { return r.UUID }) {
		affected[lf.UUID] = true
	}
	for _, lf := range up.LogicalFlows {
		affected[lf.UUID] = true
	}
	if dpChanged {
		t.rebuild()
		return nil
	}

	for u := range portDPs {
		for f := range t.dpRefs[u] {
			if cf := t.flows[f]; cf != nil && dependsOnDatapath(cf.lf) {
				affected[f] = true
			}
		}
	}
	for u, cf := range t.flows {
		if groups[cf.lf.DatapathGroup] || dhcpChanged && strings.Contains(cf.lf.Actions, "put_dhcp") {
			affected[u] = true
		}
	}
	// Flows that failed to compile may compile now.
	for u, cf := range t.flows {
		if len(cf.skips) > 0 {
			affected[u] = true
		}
	}

	t.rows = indexRows(&t.sb)
	t.w = buildWorld(&t.sb)
	t.otabs = optionTablesFrom(&t.sb)
	for _, dp := range t.w.datapaths {
		t.addPipelines(dp)
	}
	for _, cf := range t.flows {
		cf.origin.w = t.w
	}
	byUUID := make(map[string]*LogicalFlow, len(affected))
	for i := range t.sb.LogicalFlows {
		if lf := &t.sb.LogicalFlows[i]; affected[lf.UUID] {
			byUUID[lf.UUID] = lf
		}
	}
	for u := range affected {
		t.removeFlow(u)
	}
	for i := range t.sb.LogicalFlows {
		// Re-add in snapshot order so that equal-priority rules keep a
		// stable order.
		if lf := &t.sb.LogicalFlows[i]; byUUID[lf.UUID] != nil {
			t.addFlow(lf)
		}
	}
	t.log.Debug("applied southbound change", "recompiled_flows", len(affected), "rules", t.Stats().Rules)
	return nil
}

// applyRows merges the rows that only the world uses.
func (t *Translator) applyRows(ch *Change) {
	up, del := &ch.Updated, ch.Deleted
	upsert(&t.sb.MACBindings, up.MACBindings, del[TableMACBinding], func(r *MACBinding) string { return r.UUID })
	upsert(&t.sb.FDBs, up.FDBs, del[TableFDB], func(r *FDB) string { return r.UUID })
	upsert(&t.sb.LoadBalancers, up.LoadBalancers, del[TableLoadBalancer], func(r *LoadBalancer) string { return r.UUID })
	upsert(&t.sb.DHCPOptions, up.DHCPOptions, del[TableDHCPOptions], func(r *DHCPOption) string { return r.UUID })
	upsert(&t.sb.DHCPv6Options, up.DHCPv6Options, del[TableDHCPv6Options], func(r *DHCPOption) string { return r.UUID })
}

// dependsOnDatapath reports whether a flow names ports or port groups,
// whose meaning depends on the datapath, or uses a router's common NAT
// zone, which depends on the datapath's snat-ct-zone.
func dependsOnDatapath(lf *LogicalFlow) bool {
	return strings.IndexByte(lf.Match, '"') >= 0 || strings.IndexByte(lf.Match, '@') >= 0 ||
		strings.IndexByte(lf.Actions, '"') >= 0 || strings.IndexByte(lf.Actions, '@') >= 0 ||
		strings.Contains(lf.Actions, "_in_czone")
}
