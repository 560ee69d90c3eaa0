package datapath

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/ovsbpf/ovsbpf/bpf"
)

// MaxPorts bounds datapath port numbers: 1..MaxPorts-1 (OVSBPF_MAX_PORTS).
const MaxPorts = uint16(bpf.DatapathOvsbpfLimitOVSBPF_MAX_PORTS)

// Port is one datapath port: an interface whose ingress the datapath
// handles and that megaflows can output to.
type Port struct {
	No      uint16 // datapath port number, 1..MaxPorts-1
	Ifindex uint32 // the host-side interface
	Name    string // for logs and dpif/show
	// Peer delivers with bpf_redirect_peer: straight into the other end of
	// a veth pair (the VM's side), skipping the host side's transmit.
	Peer bool
}

type portState struct {
	Port
	link link.Link // nil when the ingress is not attached
}

// ErrPortInUse is returned when a port number or interface is taken.
var ErrPortInUse = errors.New("port in use")

// AddPort adds a port and attaches the datapath to its interface's ingress
// (TCX). Packets from the interface go through the megaflow cache from
// then on; packets the cache sends to it leave through it.
func (d *Datapath) AddPort(p Port) error {
	if err := d.SetPort(p); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.attachLocked(p.No); err != nil {
		d.deletePortLocked(p.No)
		return err
	}
	return nil
}

// SetPort adds a port to the port tables without attaching to its
// interface: the datapath can output to it and knows packets from it, but
// does not see them until they are run through it (tests and benchmarks).
func (d *Datapath) SetPort(p Port) error {
	if p.No == 0 || p.No >= MaxPorts {
		return fmt.Errorf("port %d (%s): number must be 1..%d", p.No, p.Name, MaxPorts-1)
	}
	if p.Ifindex == 0 {
		return fmt.Errorf("port %d (%s): no interface index", p.No, p.Name)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, q := range d.ports {
		if q.No == p.No && q.Ifindex != p.Ifindex {
			return fmt.Errorf("port %d (%s): %w by %s (ifindex %d)", p.No, p.Name, ErrPortInUse, q.Name, q.Ifindex)
		}
		if q.Ifindex == p.Ifindex && q.No != p.No {
			return fmt.Errorf("interface %s (ifindex %d): %w as port %d", p.Name, p.Ifindex, ErrPortInUse, q.No)
		}
	}
	var flags uint32
	if p.Peer {
		flags |= uint32(bpf.DatapathOvsbpfPortFlagOVSBPF_PORT_PEER)
	}
	if err := d.objs.Ports.Update(uint32(p.No), bpf.DatapathOvsbpfPort{Ifindex: p.Ifindex, Flags: flags}, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("port %d (%s): writing the port table: %w", p.No, p.Name, err)
	}
	if err := d.setIfindexPort(p.Ifindex, uint32(p.No)); err != nil {
		return fmt.Errorf("port %d (%s): writing the interface table: %w", p.No, p.Name, err)
	}
	if old := d.ports[p.No]; old != nil {
		old.Port = p
	} else {
		d.ports[p.No] = &portState{Port: p}
	}
	return nil
}

func (d *Datapath) linkPin(ifindex uint32) string {
	return filepath.Join(d.pinDir, "links", "ingress-"+strconv.FormatUint(uint64(ifindex), 10))
}

func (d *Datapath) attachLocked(no uint16) error {
	ps := d.ports[no]
	if ps.link != nil {
		return nil
	}
	l, err := link.AttachTCX(link.TCXOptions{
		Interface: int(ps.Ifindex),
		Program:   d.objs.OvsbpfIngress,
		Attach:    ebpf.AttachTCXIngress,
	})
	if err != nil {
		return fmt.Errorf("port %d (%s): attaching to ifindex %d ingress: %w", no, ps.Name, ps.Ifindex, err)
	}
	if d.pinDir != "" {
		if err := l.Pin(d.linkPin(ps.Ifindex)); err != nil {
			l.Close()
			return fmt.Errorf("port %d (%s): pinning its attachment: %w", no, ps.Name, err)
		}
	}
	ps.link = l
	d.log.Info("port attached", "port", no, "name", ps.Name, "ifindex", ps.Ifindex, "peer", ps.Peer)
	return nil
}

// DeletePort detaches a port, removes it from the port tables and deletes
// every megaflow that comes in on it or outputs to it, so it neither sends
// nor receives through the datapath from the moment this returns.
func (d *Datapath) DeletePort(no uint16) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ports[no] == nil {
		return fmt.Errorf("port %d: no such port", no)
	}
	err := d.detachLocked(no)
	d.deletePortLocked(no)
	n := d.flows.deleteWhere(func(f *flowEntry) bool {
		if f.key.InPort == no {
			return true
		}
		for _, a := range f.actions {
			if a.Type == ActionOutput && a.Port == no {
				return true
			}
		}
		return false
	})
	d.log.Info("port deleted", "port", no, "flows_deleted", n)
	return err
}

func (d *Datapath) detachLocked(no uint16) error {
	ps := d.ports[no]
	if ps == nil || ps.link == nil {
		return nil
	}
	var errs []error
	if d.pinDir != "" {
		if err := ps.link.Unpin(); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := ps.link.Close(); err != nil {
		errs = append(errs, err)
	}
	ps.link = nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("port %d (%s): detaching: %w", no, ps.Name, err)
	}
	return nil
}

func (d *Datapath) deletePortLocked(no uint16) {
	ps := d.ports[no]
	if ps == nil {
		return
	}
	d.objs.Ports.Update(uint32(no), bpf.DatapathOvsbpfPort{}, ebpf.UpdateAny)
	d.setIfindexPort(ps.Ifindex, 0)
	delete(d.ports, no)
}

func (d *Datapath) closeLinks() {
	for _, ps := range d.ports {
		if ps.link != nil {
			ps.link.Close() // a pinned attachment stays in the kernel
			ps.link = nil
		}
	}
}

// Ports returns the ports, ordered by number.
func (d *Datapath) Ports() []Port {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Port, 0, len(d.ports))
	for _, ps := range d.ports {
		out = append(out, ps.Port)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].No < out[j].No })
	return out
}

// recoverPorts takes over the attachments a previous daemon pinned: their
// ports come back into the table and their links onto the new program.
// The port table holds each port's number, interface and flags, and a
// pinned link is named by its interface; the name is the interface's
// (bpffs holds no other files, so nothing else is kept beside the pins).
// Ports that cannot come back are dropped with a warning, never fatally:
// the daemon will add them again from the local database.
func (d *Datapath) recoverPorts() error {
	if d.pinDir == "" {
		return nil
	}
	var entry bpf.DatapathOvsbpfPort
	byIfindex := map[uint32]uint16{}
	for no := uint32(1); no < uint32(MaxPorts); no++ {
		if err := d.objs.Ports.Lookup(no, &entry); err != nil {
			return fmt.Errorf("reading port %d: %w", no, err)
		}
		if entry.Ifindex != 0 {
			d.ports[uint16(no)] = &portState{Port: Port{No: uint16(no), Ifindex: entry.Ifindex, Peer: entry.Flags&uint32(bpf.DatapathOvsbpfPortFlagOVSBPF_PORT_PEER) != 0}}
			byIfindex[entry.Ifindex] = uint16(no)
		}
	}
	dir := filepath.Join(d.pinDir, "links")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("reading pinned ports: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, "ingress-") {
			continue
		}
		path := filepath.Join(dir, name)
		ifindex, err := strconv.ParseUint(strings.TrimPrefix(name, "ingress-"), 10, 32)
		no, ok := byIfindex[uint32(ifindex)]
		if err == nil && !ok {
			err = fmt.Errorf("no port has ifindex %d", ifindex)
		}
		l, lerr := link.LoadPinnedLink(path, nil)
		if err != nil || lerr != nil {
			// The interface is gone (its attachment went with it) or
			// the pin names no port: forget it.
			d.log.Warn("dropping a pinned port that cannot be recovered", "pin", path, "err", err, "link_err", lerr)
			if l != nil {
				l.Close()
			}
			os.Remove(path)
			continue
		}
		ps := d.ports[no]
		if err := l.Update(d.objs.OvsbpfIngress); err != nil {
			// A defunct attachment: its interface went away.
			d.log.Warn("dropping a pinned port whose attachment cannot move to the new program",
				"port", no, "ifindex", ps.Ifindex, "err", err)
			l.Unpin()
			l.Close()
			d.deletePortLocked(no)
			continue
		}
		// Only an attached port gets its name back: the daemon keeps
		// a port whose interface it still wants by name, and one with
		// no attachment must be added again to be attached.
		if ifi, err := net.InterfaceByIndex(int(ps.Ifindex)); err == nil {
			ps.Name = ifi.Name
		}
		ps.link = l
	}
	return nil
}

// ifindexSlots is OVSBPF_IFINDEX_SLOTS: interfaces below it are found in
// an array, the rest in a hash.
const ifindexSlots = uint32(bpf.DatapathOvsbpfTableSizeOVSBPF_IFINDEX_SLOTS)

// setIfindexPort records that ifindex is port no (0: no port).
func (d *Datapath) setIfindexPort(ifindex, no uint32) error {
	if ifindex < ifindexSlots {
		return d.objs.PortOfIfindex.Update(ifindex, no, ebpf.UpdateAny)
	}
	if no == 0 {
		err := d.objs.PortOfBigIfindex.Delete(ifindex)
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil
		}
		return err
	}
	return d.objs.PortOfBigIfindex.Update(ifindex, no, ebpf.UpdateAny)
}
