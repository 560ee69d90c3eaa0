//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * layout: compiles bpf/include/ct.h alone so that bpf2go -type gives
 * package ct the conntrack structs and enums from their one definition.
 * The object holds ct.h's maps and no program; ct embeds it only for its
 * BTF, and tests may load it for standalone maps.
 */
#include "ct.h"

char LICENSE[] SEC("license") = "GPL";
