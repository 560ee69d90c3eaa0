package testframe

import (
	"encoding/binary"
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/ovsbpf/ovsbpf/flowxlate/field"
)

// Frame bits of flowxlate's field values that have no name there.
const (
	vlanPresent = 0x1000 // vlan_tci's CFI bit: a tag is present, as in OVS
	fragAny     = 1 << 0 // ip_frag: the packet is a fragment
	fragLater   = 1 << 1 // ...and not the first one

	// laterFragmentOffset is where a later fragment starts, in 8-byte
	// units: anything but 0 makes it a later fragment.
	laterFragmentOffset = 185
)

// FromFields builds the frame whose headers hold the packet fields of k,
// followed by payload: Ethernet, an 802.1Q tag if vlan_tci has its
// present bit, then ARP, IPv4 or IPv6 by eth_type (any other type carries
// payload alone), then TCP, UDP, SCTP, ICMP or ICMPv6 (neighbour
// solicitations and advertisements with their target and link-layer
// option) by nw_proto, unless the packet is a later fragment. Registers,
// metadata and conntrack fields are not packet bits and are ignored, as
// are header fields a frame of that kind does not have.
func FromFields(t testing.TB, k *field.Key, payload []byte) []byte {
	t.Helper()
	get := func(id field.ID) uint64 { return k.Get(id).Lo }
	bytesOf := func(id field.ID) []byte { return k.Get(id).Bytes(field.Lookup(id).Size) }
	mac := func(id field.ID) net.HardwareAddr { return net.HardwareAddr(bytesOf(id)) }

	ethType := layers.EthernetType(get(field.EthType))
	ls := []gopacket.SerializableLayer{&layers.Ethernet{SrcMAC: mac(field.EthSrc), DstMAC: mac(field.EthDst), EthernetType: ethType}}
	if tci := uint16(get(field.VLANTCI)); tci&vlanPresent != 0 {
		eth := ls[0].(*layers.Ethernet)
		eth.EthernetType = layers.EthernetTypeDot1Q
		ls = append(ls, &layers.Dot1Q{Priority: uint8(tci >> 13), VLANIdentifier: tci & 0x0fff, Type: ethType})
	}

	frag := get(field.IPFrag)
	proto := layers.IPProtocol(get(field.IPProto))
	switch ethType {
	case layers.EthernetTypeARP:
		ls = append(ls, &layers.ARP{
			AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation:         uint16(get(field.ARPOp)),
			SourceHwAddress:   mac(field.ARPSHA),
			SourceProtAddress: bytesOf(field.ARPSPA),
			DstHwAddress:      mac(field.ARPTHA),
			DstProtAddress:    bytesOf(field.ARPTPA),
		})
		return Serialize(t, append(ls, gopacket.Payload(payload))...)
	case layers.EthernetTypeIPv4:
		ip := &layers.IPv4{Version: 4, IHL: 5, TOS: uint8(k.Get(field.IPDSCP).Lo<<2 | k.Get(field.IPECN).Lo),
			TTL: uint8(get(field.IPTTL)), Protocol: proto, SrcIP: bytesOf(field.IPv4Src), DstIP: bytesOf(field.IPv4Dst)}
		if frag&fragAny != 0 {
			ip.Flags = layers.IPv4MoreFragments
		}
		if frag&fragLater != 0 {
			ip.FragOffset = laterFragmentOffset
		}
		ls = append(ls, ip)
	case layers.EthernetTypeIPv6:
		ip := &layers.IPv6{Version: 6, TrafficClass: uint8(k.Get(field.IPDSCP).Lo<<2 | k.Get(field.IPECN).Lo),
			FlowLabel: uint32(get(field.IPv6Label)), HopLimit: uint8(get(field.IPTTL)), NextHeader: proto,
			SrcIP: bytesOf(field.IPv6Src), DstIP: bytesOf(field.IPv6Dst)}
		ls = append(ls, ip)
		if frag&fragAny != 0 {
			ip.NextHeader = layers.IPProtocolIPv6Fragment
			fh := &layers.IPv6Fragment{NextHeader: proto, MoreFragments: true, Identification: 1}
			if frag&fragLater != 0 {
				fh.FragmentOffset = laterFragmentOffset
			}
			ls = append(ls, fh)
		}
	default:
		return Serialize(t, append(ls, gopacket.Payload(payload))...)
	}
	if frag&fragLater != 0 {
		return Serialize(t, append(ls, gopacket.Payload(payload))...)
	}

	l4src, l4dst := uint16(get(field.TCPSrc)), uint16(get(field.TCPDst))
	switch {
	case proto == layers.IPProtocolTCP:
		flags := uint16(get(field.TCPFlags))
		ls = append(ls, &layers.TCP{SrcPort: layers.TCPPort(l4src), DstPort: layers.TCPPort(l4dst), Window: 512,
			FIN: flags&0x01 != 0, SYN: flags&0x02 != 0, RST: flags&0x04 != 0, PSH: flags&0x08 != 0,
			ACK: flags&0x10 != 0, URG: flags&0x20 != 0, ECE: flags&0x40 != 0, CWR: flags&0x80 != 0, NS: flags&0x100 != 0})
	case proto == layers.IPProtocolUDP:
		ls = append(ls, &layers.UDP{SrcPort: layers.UDPPort(l4src), DstPort: layers.UDPPort(l4dst)})
	case proto == layers.IPProtocolSCTP:
		ls = append(ls, &layers.SCTP{SrcPort: layers.SCTPPort(l4src), DstPort: layers.SCTPPort(l4dst), VerificationTag: 1})
	case proto == layers.IPProtocolICMPv4 && ethType == layers.EthernetTypeIPv4:
		ls = append(ls, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(uint8(l4src), uint8(l4dst)), Id: 1, Seq: 1})
	case proto == layers.IPProtocolICMPv6 && ethType == layers.EthernetTypeIPv6:
		typ, code := uint8(l4src), uint8(l4dst)
		ls = append(ls, &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, code)})
		target := bytesOf(field.NDTarget)
		switch {
		case code == 0 && typ == layers.ICMPv6TypeNeighborSolicitation:
			ls = append(ls, &layers.ICMPv6NeighborSolicitation{TargetAddress: target,
				Options: layers.ICMPv6Options{{Type: layers.ICMPv6OptSourceAddress, Data: mac(field.NDSLL)}}})
		case code == 0 && typ == layers.ICMPv6TypeNeighborAdvertisement:
			ls = append(ls, &layers.ICMPv6NeighborAdvertisement{TargetAddress: target, Flags: 0x60, // solicited, override
				Options: layers.ICMPv6Options{{Type: layers.ICMPv6OptTargetAddress, Data: mac(field.NDTLL)}}})
		default:
			// The rest of the ICMPv6 header: an echo's identifier and
			// sequence number, or unused.
			var rest [4]byte
			binary.BigEndian.PutUint32(rest[:], 0x00010001)
			ls = append(ls, gopacket.Payload(rest[:]))
		}
	}
	return Serialize(t, append(ls, gopacket.Payload(payload))...)
}
