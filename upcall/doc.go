// Package upcall will own the slow path: the ring-buffer reader, the
// handler pool that runs flowxlate's interpreter on missed packets and
// installs the megaflows it reports, and the revalidator that expires and
// rewrites cached flows. It is not written yet; see docs/architecture.md.
package upcall
