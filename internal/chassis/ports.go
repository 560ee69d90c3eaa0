package chassis

import (
	"fmt"
	"log/slog"
	"net"

	"golang.org/x/sys/unix"

	"github.com/ovsbpf/ovsbpf/datapath"
	"github.com/ovsbpf/ovsbpf/ovsdb"
)

// PortTable is what Ports needs of a datapath.
type PortTable interface {
	AddPort(datapath.Port) error
	DeletePort(no uint16) error
	Ports() []datapath.Port
}

// Ports keeps the datapath's ports in line with the interfaces the local
// database binds to logical ports.
type Ports struct {
	dp  PortTable
	log *slog.Logger
	// lport of each attached datapath port.
	lports map[uint16]string
	// interfaces already reported missing, so the log says it once.
	missing map[string]bool
}

// NewPorts returns a reconciler for dp. Ports dp already has (pinned by an
// earlier daemon) are kept if the database still names them.
func NewPorts(dp PortTable, log *slog.Logger) *Ports {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Ports{dp: dp, log: log, lports: map[uint16]string{}, missing: map[string]bool{}}
}

// Result is what Reconcile did.
type Result struct {
	// Bindings maps each attached datapath port to its logical port.
	Bindings map[uint16]string
	// OFPorts maps Interface UUIDs to the ofport to report: the datapath
	// port, or -1 for an interface that could not be attached. Only
	// changes are listed.
	OFPorts map[string]int
	// Errors maps Interface UUIDs to the error column to write ("" clears
	// it), as ovs-vswitchd reports why an interface is not in use. Only
	// changes are listed.
	Errors map[string]string
}

// LocalPort is ofport of a bridge's internal interface in OVS (OFPP_LOCAL).
// ovsbpfd creates no such device; OVN does not need one.
const LocalPort = 65534

// Reconcile attaches every bound interface that exists in this network
// namespace, detaches ports whose interface is no longer bound (or was
// recreated), and returns the bindings.
func (p *Ports) Reconcile(st ovsdb.LocalState) Result {
	res := Result{Bindings: map[uint16]string{}, OFPorts: map[string]int{}, Errors: map[string]string{}}
	errText := map[string]string{} // the error column each bound interface should have
	have := map[string]datapath.Port{}
	used := map[uint16]bool{}
	for _, port := range p.dp.Ports() {
		have[port.Name] = port
		used[port.No] = true
	}
	want := map[string]bool{}
	for _, li := range st.Interfaces {
		want[li.Name] = true
	}
	// Detach first, so numbers and interfaces free up.
	for name, port := range have {
		ifi, err := net.InterfaceByName(name)
		if want[name] && err == nil && uint32(ifi.Index) == port.Ifindex {
			continue
		}
		if err := p.dp.DeletePort(port.No); err != nil {
			p.log.Error("cannot detach port", "port", port.No, "name", name, "err", err)
			continue
		}
		p.log.Info("port detached", "port", port.No, "name", name, "lport", p.lports[port.No])
		delete(p.lports, port.No)
		delete(have, name)
		delete(used, port.No)
	}
	for _, li := range st.Interfaces {
		if port, ok := have[li.Name]; ok {
			p.lports[port.No] = li.IfaceID
			res.Bindings[port.No] = li.IfaceID
			res.OFPorts[li.UUID] = int(port.No)
			continue
		}
		ifi, err := net.InterfaceByName(li.Name)
		if err != nil {
			if !p.missing[li.Name] {
				p.log.Warn("bound interface not found in this network namespace", "name", li.Name, "lport", li.IfaceID)
				p.missing[li.Name] = true
			}
			res.OFPorts[li.UUID] = -1
			errText[li.UUID] = "could not open network device " + li.Name + " (No such device) in ovsbpfd's network namespace"
			continue
		}
		delete(p.missing, li.Name)
		no := pickNumber(li, used)
		if no == 0 {
			p.log.Error("no free datapath port number", "name", li.Name)
			res.OFPorts[li.UUID] = -1
			continue
		}
		port := datapath.Port{No: no, Ifindex: uint32(ifi.Index), Name: li.Name, Peer: isVeth(li.Name)}
		if err := p.dp.AddPort(port); err != nil {
			p.log.Error("cannot attach port", "name", li.Name, "lport", li.IfaceID, "err", err)
			res.OFPorts[li.UUID] = -1
			errText[li.UUID] = "ovsbpfd cannot attach the datapath: " + err.Error()
			continue
		}
		used[no] = true
		p.lports[no] = li.IfaceID
		res.Bindings[no] = li.IfaceID
		res.OFPorts[li.UUID] = int(no)
		p.log.Info("port attached", "port", no, "name", li.Name, "ifindex", ifi.Index, "lport", li.IfaceID, "peer_redirect", port.Peer)
	}
	// Interfaces bound to no logical port: a bridge's internal port gets
	// OVS's local port number, the rest are reported unused and why.
	for _, li := range st.Unbound {
		if li.Type == "internal" {
			res.OFPorts[li.UUID] = LocalPort
			errText[li.UUID] = ""
		} else {
			res.OFPorts[li.UUID] = -1
			errText[li.UUID] = "not bound to a logical port: ovsbpfd attaches interfaces with external_ids:iface-id"
		}
	}
	all := append(append([]ovsdb.LocalInterface(nil), st.Interfaces...), st.Unbound...)
	for _, li := range all {
		if want, ok := res.OFPorts[li.UUID]; ok && li.OFPort == want {
			delete(res.OFPorts, li.UUID) // already reported
		}
		if want := errText[li.UUID]; want != li.Error {
			res.Errors[li.UUID] = want
		}
	}
	return res
}

// pickNumber honours ofport_request, then the ofport the interface had,
// then takes the lowest free number.
func pickNumber(li ovsdb.LocalInterface, used map[uint16]bool) uint16 {
	for _, n := range []int{li.OFPortRequest, li.OFPort} {
		if n > 0 && n < int(datapath.MaxPorts) && !used[uint16(n)] {
			return uint16(n)
		}
	}
	for n := uint16(1); n < datapath.MaxPorts; n++ {
		if !used[n] {
			return n
		}
	}
	return 0
}

// isVeth reports whether name is a veth, whose peer a packet can be
// redirected into directly.
func isVeth(name string) bool {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	info, err := unix.IoctlGetEthtoolDrvinfo(fd, name)
	if err != nil {
		return false
	}
	return unix.ByteSliceToString(info.Driver[:]) == "veth"
}

// String describes a binding for logs.
func (r Result) String() string { return fmt.Sprintf("%d ports bound", len(r.Bindings)) }
