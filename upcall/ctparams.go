package upcall

import "github.com/ovsbpf/ovsbpf/ct"

// CTParams are a conntrack action's parameters, as the datapath's
// ct_params table holds them.
type CTParams = ct.Params
