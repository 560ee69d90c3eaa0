// Package trace holds the tree a pipeline run records and prints it in the
// three styles ovn-trace users know: detailed (every table visited), summary
// (the actions, nested by pipeline) and minimal (only what happens to the
// packet).
package trace

import (
	"strings"
)

// Kind classifies a trace node. The first four may have children.
type Kind uint8

// Node kinds.
const (
	Output         Kind = iota // where a packet goes ("/* output to ... */")
	Modify                     // a change to the packet ("eth.dst = ...")
	Action                     // an action as written, or a note about it
	Error                      // something went wrong ("*** no MAC binding")
	Pipeline                   // entering a pipeline ("ingress(dp=..., inport=...)")
	Table                      // a table lookup and the rule it hit
	Transformation             // a derived packet (ct, arp, clone, ...)
)

// Node is one line of a trace with its children.
type Node struct {
	Kind Kind
	Text string
	// AlwaysIndent indents the children of a node that is the last of its
	// siblings, as for each member of a multicast group.
	AlwaysIndent bool
	Children     []*Node
}

// Add appends a child and returns it.
func (n *Node) Add(kind Kind, text string) *Node {
	if n == nil {
		return nil // not tracing
	}
	c := &Node{Kind: kind, Text: text}
	n.Children = append(n.Children, c)
	return c
}

func (k Kind) terminal() bool { return k <= Error }

// Detailed prints the full tree.
func Detailed(roots []*Node) string {
	var b strings.Builder
	printDetails(&b, roots, 0)
	return b.String()
}

func printDetails(b *strings.Builder, nodes []*Node, level int) {
	for i, n := range nodes {
		if n.Kind == Modify {
			continue
		}
		more := 0
		if i != len(nodes)-1 || n.AlwaysIndent || n.Kind.terminal() {
			more = 1
		}
		title := n.Kind == Pipeline || n.Kind == Transformation
		indent := strings.Repeat(" ", (level+more)*4)
		if title {
			b.WriteByte('\n')
		}
		b.WriteString(indent)
		b.WriteString(n.Text)
		b.WriteByte('\n')
		if title {
			b.WriteString(indent)
			b.WriteString(strings.Repeat("-", len(n.Text)))
			b.WriteByte('\n')
		}
		printDetails(b, n.Children, level+2*more)
	}
}

// Summary prints the tree without tables and packet changes.
func Summary(roots []*Node) string {
	var b strings.Builder
	printSummary(&b, prune(roots, func(k Kind) bool { return k == Modify || k == Table }), 0)
	return b.String()
}

// Minimal prints only the changes to the packet, its outputs and errors.
func Minimal(roots []*Node) string {
	var b strings.Builder
	printSummary(&b, prune(roots, func(k Kind) bool {
		return k == Action || k == Pipeline || k == Table || k == Output
	}), 0)
	return b.String()
}

// prune returns a copy of nodes in which every node whose kind drop selects
// is replaced by its (pruned) children.
func prune(nodes []*Node, drop func(Kind) bool) []*Node {
	var out []*Node
	for _, n := range nodes {
		kids := prune(n.Children, drop)
		if drop(n.Kind) {
			out = append(out, kids...)
			continue
		}
		out = append(out, &Node{Kind: n.Kind, Text: n.Text, AlwaysIndent: n.AlwaysIndent, Children: kids})
	}
	return out
}

func printSummary(b *strings.Builder, nodes []*Node, level int) {
	for _, n := range nodes {
		if n.Kind == Action && strings.HasPrefix(n.Text, "next(") {
			continue
		}
		indent := strings.Repeat(" ", level*4)
		b.WriteString(indent)
		b.WriteString(n.Text)
		if len(n.Children) > 0 {
			b.WriteString(" {\n")
			printSummary(b, n.Children, level+1)
			b.WriteString(indent)
			b.WriteByte('}')
		}
		if n.Kind != Action {
			b.WriteByte(';')
		}
		b.WriteByte('\n')
	}
}
